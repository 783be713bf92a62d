"""Progress bars for long CLI work (tqdm on stderr, quiet when not a terminal unless forced)."""

from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int | None, desc: str, unit: str = "wafer", **kw: object) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.3, **kw)

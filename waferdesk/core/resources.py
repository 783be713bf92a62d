"""Where the shipped resources (taxonomy, default model, sample wafers, icons) live.

The repository keeps them in the top-level ``resources/`` folder; a wheel carries the same
folder as ``waferdesk/_resources`` and a PyInstaller bundle unpacks it under
``sys._MEIPASS``. ``WAFERDESK_RESOURCES`` overrides all of them (tests, odd installs).
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../waferdesk


@lru_cache(maxsize=1)
def resources_dir() -> Path:
    """Return the resources folder, the first of the known places that holds a taxonomy."""
    candidates: list[Path] = []
    env = os.environ.get("WAFERDESK_RESOURCES")
    if env:
        candidates.append(Path(env))
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "waferdesk" / "_resources")
    candidates += [_PACKAGE_DIR / "_resources", _PACKAGE_DIR.parent / "resources"]
    for path in candidates:
        if (path / "taxonomy.json").is_file():
            return path
    raise FileNotFoundError("WaferDesk resources not found (looked in: " + ", ".join(map(str, candidates)) + ")")


def resource_path(*parts: str) -> Path:
    """Path of a file under the resources folder (it need not exist)."""
    return resources_dir().joinpath(*parts)

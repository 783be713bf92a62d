"""PNG pictures of wafer maps, with or without the class overlay (export only).

A PNG is a picture, not a wafer file: it is written, never read back. Dies are enlarged by
an integer factor (every die the same number of pixels, no blur), drawn with the same
colours as the app (:mod:`waferdesk.core.render`), optionally with a legend of the classes
present and their failing-die counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..records import WaferRecord
from ..render import auto_cell, overlay_rgb, upscale
from ..taxonomy import default_taxonomy
from ..wafer import LabelMask, WaferMap

SUFFIX = ".png"


def picture(
    wafer: WaferMap,
    mask: LabelMask | None = None,
    target: int = 512,
    legend: bool = False,
    colorblind: bool = False,
    opacity: float = 0.85,
) -> np.ndarray:
    """(H, W, 3) uint8 picture of ``wafer`` (and ``mask``), about ``target`` pixels on its long side."""
    cell = auto_cell(wafer.shape, target)
    img = upscale(overlay_rgb(wafer, mask, opacity, colorblind), cell, gap=1 if cell >= 6 else 0)
    if legend:
        img = _with_legend(img, wafer, mask, colorblind)
    return img


def _with_legend(img: np.ndarray, wafer: WaferMap, mask: LabelMask | None, colorblind: bool) -> np.ndarray:
    from PIL import Image, ImageDraw

    tax = default_taxonomy()
    entries: list[tuple[tuple[int, int, int], str]] = [
        (tax.die_colors["pass"], f"pass {wafer.n_dies - wafer.n_fail}"),
        (tax.die_colors["fail"], f"fail {wafer.n_fail}"),
    ]
    if mask is not None:
        counts = mask.counts(len(tax))
        entries += [(c.rgb(colorblind), f"{c.name} {int(counts[c.index])}") for c in tax.classes if counts[c.index]]
    row_h, pad = 16, 6
    width = max(img.shape[1], 160)
    canvas = Image.new("RGB", (width, img.shape[0] + pad + row_h * len(entries) + pad), (255, 255, 255))
    canvas.paste(Image.fromarray(img), (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = img.shape[0] + pad
    for rgb, text in entries:
        draw.rectangle([pad, y + 2, pad + 11, y + 13], fill=tuple(rgb), outline=(60, 60, 60))
        draw.text((pad + 18, y + 2), text, fill=(20, 20, 20))
        y += row_h
    return np.asarray(canvas)


def write_png(
    path: str | Path,
    wafer: WaferMap,
    mask: LabelMask | None = None,
    target: int = 512,
    legend: bool = False,
    colorblind: bool = False,
) -> Path:
    """Write one wafer's picture to ``path``."""
    from PIL import Image

    out = Path(path)
    img = picture(wafer, mask, target=target, legend=legend, colorblind=colorblind)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(np.ascontiguousarray(img)).save(out, format="PNG")
    except (OSError, ValueError) as exc:
        raise FormatError(out, f"cannot write PNG ({exc})") from None
    return out


def write_pngs(
    path: str | Path, records: Iterable[WaferRecord | WaferMap], with_mask: bool = True, **kw: object
) -> list[Path]:
    """One PNG per record: ``path`` itself for a single record, else ``stem-0001.png``, ..."""
    out = Path(path)
    recs = [r if isinstance(r, WaferRecord) else WaferRecord(r) for r in records]
    if len(recs) == 1:
        names = [out]
    else:
        names = [out.with_name(f"{out.stem}-{i + 1:04d}{out.suffix or SUFFIX}") for i in range(len(recs))]
    return [
        write_png(name, r.wafer, r.mask if with_mask else None, **kw)  # type: ignore[arg-type]
        for name, r in zip(names, recs, strict=True)
    ]

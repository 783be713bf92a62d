"""Draw the WaferDesk app icon (resources/icons/waferdesk.png and .ico) from the taxonomy.

A wafer seen from above: a disc of pass dies on a dark tile, an edge arc and a scratch in
their class colours, the notch at the bottom. Drawn at 1024 px and reduced, so the small
sizes of the .ico (16-256 px) stay clean. Re-run after a taxonomy colour change:
``PYTHONPATH=. python packaging/make_icon.py``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from waferdesk.core.taxonomy import default_taxonomy

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "icons"
BIG = 1024
GRID = 13  # dies across


def draw(size: int = BIG) -> Image.Image:
    tax = default_taxonomy()
    colour = {c.name: c.rgb() for c in tax.classes}
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    pad = size * 0.04
    d.rounded_rectangle((pad, pad, size - pad, size - pad), radius=size * 0.18, fill=(30, 33, 39, 255))
    c, r = size / 2, size * 0.40
    d.ellipse((c - r, c - r, c + r, c + r), fill=(58, 63, 71, 255))  # the wafer rim
    pitch = 2 * r / GRID
    gap = pitch * 0.12
    for row in range(GRID):
        for col in range(GRID):
            x0, y0 = c - r + col * pitch, c - r + row * pitch
            cx, cy = x0 + pitch / 2 - c, y0 + pitch / 2 - c
            dist = (cx * cx + cy * cy) ** 0.5
            if dist > r - pitch * 0.75:
                continue
            fill = (207, 214, 222, 255)
            if dist > r - pitch * 2.2 and cy < 0 and cx > -r * 0.3:
                fill = (*colour["edge"], 255)
            elif abs((row - 2) - (col - 2) * 0.9) < 0.6 and 3 <= col <= 10:
                fill = (*colour["scratch"], 255)
            d.rectangle((x0 + gap, y0 + gap, x0 + pitch - gap, y0 + pitch - gap), fill=fill)
    notch = size * 0.035
    d.polygon([(c - notch, c + r + 1), (c + notch, c + r + 1), (c, c + r - notch * 1.3)], fill=(240, 168, 72, 255))
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    big = draw()
    png = big.resize((256, 256), Image.Resampling.LANCZOS)
    png.save(OUT / "waferdesk.png", optimize=True)
    big.resize((256, 256), Image.Resampling.LANCZOS).save(
        OUT / "waferdesk.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
    )
    print(f"wrote {OUT / 'waferdesk.png'} and {OUT / 'waferdesk.ico'}")


if __name__ == "__main__":
    main()

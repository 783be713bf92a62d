"""The wafer view (die grid, overlays, tool input) and the graphics items drawn over it."""

from .waferview import WaferView

__all__ = ["WaferView"]

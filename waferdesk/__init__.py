"""WaferDesk: find, attribute and label defect patterns on semiconductor wafer maps.

The package splits along the design's dependency rule (``app -> client -> core <- server``,
``ml -> core``): :mod:`waferdesk.core` is pure numpy/onnxruntime and imports nothing else of
ours; :mod:`waferdesk.ml` (torch) and :mod:`waferdesk.app` (Qt) are optional extras.
"""

__version__ = "0.1.0"

"""The inference engine: ONNX Runtime on GPU or CPU, batched, cached (numpy + onnxruntime only).

>>> seg = Segmenter("model.onnx")           # card beside it: model.card.json
>>> seg.provider, seg.provider_note         # what really runs, and why
>>> pred = seg.predict(wafer)               # mask, probs, summary, uncertainty, embedding
>>> for pred in seg.predict_many(wafers):   # input order, equal canvas sizes batched
...     ...

``onnxruntime`` is imported when a session is made, so importing this package is cheap.
"""

from ..active.scores import UNCERTAINTY_KEYS, uncertainty_scores
from .cache import PredictionCache
from .prediction import Prediction, softmax
from .providers import (
    PROVIDER_CHOICES,
    SessionInfo,
    available_providers,
    choose_providers,
    make_session,
    physical_cores,
)
from .segmenter import Segmenter

__all__ = [
    "PROVIDER_CHOICES",
    "UNCERTAINTY_KEYS",
    "Prediction",
    "PredictionCache",
    "Segmenter",
    "SessionInfo",
    "available_providers",
    "choose_providers",
    "make_session",
    "physical_cores",
    "softmax",
    "uncertainty_scores",
]

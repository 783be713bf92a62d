"""The model card: the JSON file beside every ONNX model, read by every consumer.

It says what the model is (architecture, classes in output order, input encoding version),
how it was made (training data fingerprint, seeds, config), how good it is (metrics) and
which file it describes (sha256, size, precision, opset, input/output names). A consumer
calls :func:`check_compatible` and refuses a model whose encoding version or classes it does
not understand, instead of producing silently wrong masks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_open
from .encoding import CHANNELS, ENCODING_VERSION
from .errors import ModelError
from .resources import resource_path
from .taxonomy import Taxonomy, default_taxonomy

CARD_FORMAT = "waferdesk-model-card"
CARD_VERSION = 1
INPUT_NAME = "input"
OUTPUT_SCORES = "logits"
OUTPUT_EMBEDDING = "embedding"
DEFAULT_MODEL_NAME = "waferdesk-unet-r50"


def card_path_for(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.card.json`` (the card always sits beside its model)."""
    p = Path(model_path)
    return p.with_name(p.stem + ".card.json")


def default_model_path() -> Path:
    return resource_path("models", DEFAULT_MODEL_NAME + ".onnx")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelCard:
    """Parsed card. ``raw`` keeps every field, including ones this version does not model."""

    version: str
    architecture: dict[str, Any]
    classes: list[str]
    encoding_version: int
    channels: list[str]
    sha256: str
    onnx: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_dim(self) -> int | None:
        return self.onnx.get("embedding_dim")

    @property
    def default_views(self) -> object:
        """Views to average at inference unless the user says otherwise (``inference.views``;
        1 when absent). Every consumer runs this by default, so the card's metrics, measured
        with it, are what users get. Checked by the consumer (:func:`~waferdesk.core.inference.views.check_views`)."""
        inference = self.raw.get("inference") or {}
        return inference.get("views", 1) if isinstance(inference, dict) else inference

    def to_json(self) -> dict[str, Any]:
        out = dict(self.raw)
        out.update(
            {
                "format": CARD_FORMAT,
                "card_version": CARD_VERSION,
                "model_version": self.version,
                "architecture": self.architecture,
                "classes": self.classes,
                "encoding": {"version": self.encoding_version, "channels": self.channels},
                "sha256": self.sha256,
                "onnx": self.onnx,
                "training": self.training,
                "metrics": self.metrics,
            }
        )
        return out

    def save(self, path: str | Path) -> Path:
        """Write the card atomically: an interrupted write leaves the previous card whole."""
        p = Path(path)
        with atomic_open(p) as fh:
            json.dump(self.to_json(), fh, indent=2, sort_keys=False)
            fh.write("\n")
        return p

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "model card") -> ModelCard:
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise ModelError(f"{where}: not a WaferDesk model card (format must be {CARD_FORMAT!r})")
        try:
            enc = data["encoding"]
            return cls(
                version=str(data["model_version"]),
                architecture=dict(data["architecture"]),
                classes=[str(c) for c in data["classes"]],
                encoding_version=int(enc["version"]),
                channels=[str(c) for c in enc.get("channels", CHANNELS)],
                sha256=str(data["sha256"]),
                onnx=dict(data.get("onnx", {})),
                training=dict(data.get("training", {})),
                metrics=dict(data.get("metrics", {})),
                raw=data,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: missing or malformed field {exc}") from None


def load_card(path: str | Path) -> ModelCard:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{p}: model card not found (every model needs its .card.json beside it)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{p}: unreadable model card ({exc})") from None
    return ModelCard.from_json(data, str(p))


def check_compatible(card: ModelCard, taxonomy: Taxonomy | None = None, where: str = "model") -> None:
    """Refuse a model this WaferDesk cannot use correctly (encoding or classes differ)."""
    tax = taxonomy or default_taxonomy()
    if card.encoding_version != ENCODING_VERSION:
        raise ModelError(
            f"{where}: made for input encoding v{card.encoding_version}, this WaferDesk speaks v{ENCODING_VERSION}"
        )
    if list(card.channels) != list(CHANNELS):
        raise ModelError(f"{where}: input channels {card.channels} differ from this encoding's {list(CHANNELS)}")
    if list(card.classes) != list(tax.names):
        raise ModelError(f"{where}: classes {card.classes} differ from the taxonomy's {list(tax.names)}")


def verify_artifact(card: ModelCard, model_path: str | Path) -> None:
    """The card describes this very file (sha256)."""
    digest = sha256_file(model_path)
    if digest != card.sha256:
        raise ModelError(f"{model_path}: sha256 {digest[:12]}... does not match its card ({card.sha256[:12]}...)")


def load_model_card(model_path: str | Path, verify: bool = True) -> ModelCard:
    """Card of an ONNX model, checked for compatibility and (optionally) the file's sha256."""
    mp = Path(model_path)
    if not mp.is_file():
        raise ModelError(f"{mp}: model file not found")
    card = load_card(card_path_for(mp))
    check_compatible(card, where=str(mp))
    if verify:
        verify_artifact(card, mp)
    return card

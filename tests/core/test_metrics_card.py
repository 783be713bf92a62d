from __future__ import annotations

import json

import numpy as np
import pytest

from waferdesk.core.errors import ModelError
from waferdesk.core.metrics import confusion, f1_scores, iou_from_confusion, label_confusion, mean_iou
from waferdesk.core.modelcard import (
    CARD_FORMAT,
    ModelCard,
    card_path_for,
    check_compatible,
    load_model_card,
    sha256_file,
)
from waferdesk.core.taxonomy import IGNORE, default_taxonomy


def test_iou_counts_failing_dies_only() -> None:
    truth = np.array([[0, 0, IGNORE], [1, 1, IGNORE]], np.uint8)
    pred = np.array([[0, 1, 0], [1, 1, 1]], np.uint8)  # predictions on ignored cells never count
    cm = confusion(truth, pred, 2)
    assert cm.tolist() == [[1, 1], [0, 2]]
    iou = iou_from_confusion(cm)
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == pytest.approx(2 / 3)
    assert mean_iou(cm) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert np.isnan(iou_from_confusion(np.zeros((3, 3), int))).all()


def test_f1_and_label_confusion() -> None:
    f1 = f1_scores(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    assert f1["a"] == pytest.approx(2 / 3) and f1["b"] == pytest.approx(2 / 3) and np.isnan(f1["c"])
    assert label_confusion(["a", "b"], ["b", "b"], ["a", "b"], ["a", "b"]).tolist() == [[0, 1], [0, 1]]


def _card(**over) -> ModelCard:
    data = {
        "format": CARD_FORMAT,
        "model_version": "t1",
        "architecture": {"name": "Unet", "encoder": "resnet18"},
        "classes": list(default_taxonomy().names),
        "encoding": {"version": 1, "channels": ["fail", "pass", "on_wafer", "radius", "x", "y"]},
        "sha256": "0" * 64,
    }
    data.update(over)
    return ModelCard.from_json(data)


def test_card_compatibility_is_checked() -> None:
    check_compatible(_card())
    with pytest.raises(ModelError, match="encoding v2"):
        check_compatible(_card(encoding={"version": 2}))
    with pytest.raises(ModelError, match="classes"):
        check_compatible(_card(classes=["a", "b"]))
    with pytest.raises(ModelError, match="not a WaferDesk model card"):
        ModelCard.from_json({"format": "x"})


def test_card_file_round_trip_and_sha_check(tmp_path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"fake model bytes")
    card = _card(sha256=sha256_file(model))
    card.save(card_path_for(model))
    assert card_path_for(model).name == "m.card.json"
    assert load_model_card(model).version == "t1"
    model.write_bytes(b"tampered")
    with pytest.raises(ModelError, match="does not match its card"):
        load_model_card(model)
    with pytest.raises(ModelError, match="not found"):
        load_model_card(tmp_path / "none.onnx")
    assert json.loads(card_path_for(model).read_text())["format"] == CARD_FORMAT

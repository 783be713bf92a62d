"""The shipped default model (resources/models/): it loads, its card describes this very file,
and the metrics the card states are reproduced by ``waferdesk evaluate``.

The card holds two evaluations made with ``waferdesk evaluate --record``: ``test`` (the full
held-out synthetic set and all real WM-811K maps: minutes on a CPU) and ``check`` (the first
wafers of the same synthetic test seed: seconds). This test regenerates the check set from its
seed and re-runs the evaluation through the ONNX model exactly as users run it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from waferdesk.cli.main import main
from waferdesk.core.encoding import ENCODING_VERSION
from waferdesk.core.modelcard import default_model_path, load_model_card, sha256_file
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.ml.config import TEST_SEED


@pytest.fixture(scope="module")
def card():
    path = default_model_path()
    assert path.is_file(), f"{path}: the shipped default model is missing"
    return load_model_card(path)


def test_the_card_describes_the_shipped_file(card) -> None:
    path = default_model_path()
    assert card.sha256 == sha256_file(path)
    assert list(card.classes) == list(default_taxonomy().names)
    assert card.encoding_version == ENCODING_VERSION
    assert card.architecture["encoder"] == "resnet50"
    assert path.stat().st_size < 80_000_000, "fp16 weights: about 62 MB"
    test = card.metrics["test"]
    assert test["synthetic"]["n_wafers"] >= 2000
    assert test["real"]["n_wafers"] == 12450
    assert set(test["class_iou"]) == set(default_taxonomy().names)


def test_evaluate_reproduces_the_cards_check_metrics(card, tmp_path: Path, capsys) -> None:
    check = card.metrics["check"]
    n = check["synthetic"]["n_wafers"]
    data = tmp_path / "check.wdm"
    assert main(["synth", "--count", str(n), "--seed", str(TEST_SEED), "--out", str(data), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--real", "none", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["model_sha256"] == card.sha256
    assert got["synthetic"]["n_fail_dies"] == check["synthetic"]["n_fail_dies"]
    assert got["miou"] == pytest.approx(check["miou"], abs=2e-3)
    for name, iou in check["class_iou"].items():
        if iou is None:
            assert got["class_iou"][name] is None
        else:
            assert got["class_iou"][name] == pytest.approx(iou, abs=5e-3), name

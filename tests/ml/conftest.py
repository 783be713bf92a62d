"""Fixtures of the ml tests: one tiny model trained and exported once per session (seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("onnx")

TINY_TRAIN = [
    "--encoder", "resnet18", "--steps", "4", "--batch-size", "2", "--min-size", "15", "--max-size", "30",
    "--val-count", "4", "--eval-every", "2", "--threads", "2",
]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_train_args() -> list[str]:
    return list(TINY_TRAIN)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 U-Net trained for 4 steps on tiny synthetic wafers, through the CLI."""
    from waferdesk.cli import main

    run = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 0
    return run


@pytest.fixture(scope="session")
def tiny_onnx(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from waferdesk.cli import main

    out = tmp_path_factory.mktemp("models") / "tiny.onnx"
    assert main(["export", str(tiny_run), "--out", str(out)]) == 0
    return out

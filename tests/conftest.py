"""Shared fixtures. Qt runs offscreen; nothing here imports Qt, torch or the server stack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
# WAFERDESK_REAL_DATA points elsewhere (a git worktree does not sit beside ../shared)
REAL_DATA = Path(os.environ.get("WAFERDESK_REAL_DATA") or REPO.parent / "shared" / "data" / "wm811k-val.npz")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    """The real WM-811K validation maps when this checkout sits beside ../shared (else skip)."""
    if not REAL_DATA.is_file():
        pytest.skip(f"real WM-811K data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny valid WaferDesk ONNX model + card (see tests/model_fixtures.py); needs onnx."""
    pytest.importorskip("onnx")
    from model_fixtures import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models"))

"""``waferdesk --version`` and ``waferdesk --self-test``: what installers and the bundle's smoke
test rely on (the bundle itself is tested by packaging/smoke-test.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from waferdesk import __version__
from waferdesk.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_version_names_the_variant_and_the_provider_that_runs(capsys) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"waferdesk {__version__} (cpu variant, Python install; onnxruntime 1.")
    assert "execution provider: CPUExecutionProvider (running on CPU" in out


def self_test(tmp_path: Path, *args: str) -> tuple[int, dict]:
    """Run the self-test as its own process (it makes and ends its own QApplication)."""
    env = {
        **os.environ,
        "WAFERDESK_HOME": str(tmp_path / "home"),
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "waferdesk", "--self-test", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    return proc.returncode, json.loads(lines[-1])


@pytest.mark.slow
def test_self_test_draws_a_sample_wafer_runs_the_model_and_exits(tmp_path: Path, tiny_model: Path) -> None:
    code, result = self_test(tmp_path, "--model", str(tiny_model))
    assert code == 0 and result["ok"], result
    assert result["qt_platform"] == "offscreen"
    assert result["wafer"]["wafers_open"] > 1  # all the sample files, as the app opens them
    assert result["drawn"]["pass"]["pixels"] > 100 and result["drawn"]["fail"]["pixels"] > 0
    model = result["model"]
    assert model["status"] == "ran" and model["version"] == "tiny-1"
    assert model["provider"] == "CPUExecutionProvider"
    assert "CPU build" in result["status_bar"]
    assert any(t.startswith("Model tiny-1 · CPU") for t in result["status_bar"])
    assert result["variant"] == "cpu" and result["frozen"] is False
    home = (tmp_path / "home").resolve()
    assert Path(result["paths"]["log"]).is_file() and Path(result["paths"]["log"]).resolve().is_relative_to(home)


@pytest.mark.slow
def test_self_test_fails_when_the_named_model_does_not_load(tmp_path: Path) -> None:
    code, result = self_test(tmp_path, "--model", str(tmp_path / "missing.onnx"))
    assert code == 1 and result["ok"] is False
    assert result["drawn"]["pass"]["pixels"] > 0  # the wafer was drawn; the model is what failed
    assert result["model"]["status"] == "failed"
    assert result["error"].startswith("the model did not load") and "missing.onnx" in result["error"]


@pytest.mark.slow
def test_self_test_fails_when_no_wafer_opens(tmp_path: Path) -> None:
    bad = tmp_path / "broken.wdm"
    bad.write_bytes(b"not a wafer file")
    code, result = self_test(tmp_path, "--no-model", str(bad))
    assert code == 1 and result["ok"] is False
    assert "no wafer could be opened" in result["error"] and "broken.wdm" in result["error"]


def test_self_test_shortcut_is_the_app_flag(monkeypatch) -> None:
    seen = {}

    def fake(paths, model_path, use_model, timeout_s):
        seen.update(paths=paths, model=model_path, use_model=use_model, timeout=timeout_s)
        return 0

    monkeypatch.setattr("waferdesk.app.selftest.run_self_test", fake)
    assert main(["--self-test", "--no-model", "--timeout", "9", "a.wdm"]) == 0
    assert seen == {"paths": ["a.wdm"], "model": None, "use_model": False, "timeout": 9.0}


def test_a_command_whose_part_is_left_out_says_so_and_the_others_work(monkeypatch, capsys) -> None:
    """The desktop bundle has no waferdesk.ml: `train` explains itself, `--version` still works."""
    import importlib

    for name in [m for m in sys.modules if m.startswith(("waferdesk.ml", "waferdesk.cli.train_cmd"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "waferdesk.ml", None)  # import waferdesk.ml -> ModuleNotFoundError
    importlib.invalidate_caches()
    assert main(["train", "--run-dir", "runs/x", "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert "waferdesk train: error: not part of this installation (waferdesk.ml" in err
    assert main(["--version"]) == 0

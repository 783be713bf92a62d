"""``waferdesk bench`` runs end to end on the tiny model and writes well-formed JSON
(numbers are printed, never asserted)."""

from __future__ import annotations

import json

import pytest

from waferdesk.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def test_bench_writes_table_and_json(tiny_model, tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    rc = main(["bench", "--model", str(tiny_model), "--sizes", "16,40", "--runs", "2", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "b1 median" in printed and "pytorch eager" in printed
    rep = json.loads(out.read_text())
    assert rep["format"] == "waferdesk-bench" and rep["model"]["sha256"]
    variants = {r["variant"] for r in rep["results"]}
    assert variants == {"onnxruntime fp32", "onnxruntime int8"}
    assert {r["size"] for r in rep["results"]} == {16, 40}
    for r in rep["results"]:
        assert r["b1_median_ms"] > 0 and r["b1_p95_ms"] >= r["b1_median_ms"] and r["batch_wafers_per_s"] > 0
        assert r["provider"] == "CPU" and r["threads"] >= 1 and r["batch"] == 32
    assert 0 < rep["int8"]["agreement"] <= 1
    assert "pytorch eager" in rep["not_measured"] and rep["machine"]["physical_cores"] >= 1
    # test-time augmentation priced per size: 1, 2, 4, 8 views against one
    assert "test-time augmentation" in printed and "4 views" in printed
    assert [r["size"] for r in rep["views"]] == [16, 40]
    for r in rep["views"]:
        assert set(r["predict_b1_median_ms"]) == {"1", "2", "4", "8"} and r["ratio_vs_1_view"]["1"] == 1.0
        assert all(ms > 0 for ms in r["predict_b1_median_ms"].values())


def test_bench_uses_a_torch_baseline_when_one_is_given(tiny_model) -> None:
    torch = pytest.importorskip("torch")
    from model_fixtures import tiny_weights

    from waferdesk.core.inference.bench import run_bench

    w = {k: torch.from_numpy(v) for k, v in tiny_weights().items()}

    def factory(card, path, threads):
        def run(x):
            with torch.inference_mode():
                h = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), w["w1"], w["b1"], padding=1))
                return torch.nn.functional.conv2d(h, w["w2"], w["b2"])

        return run, ""

    rep = run_bench(tiny_model, sizes=(16,), runs=1, int8=False, torch_factory=factory)
    assert [r["variant"] for r in rep["results"]] == ["onnxruntime fp32", "pytorch eager"]
    assert rep["not_measured"] == {}


def test_bench_rejects_bad_sizes(tiny_model, capsys) -> None:
    assert main(["bench", "--model", str(tiny_model), "--sizes", "a,b"]) == 2
    assert "--sizes" in capsys.readouterr().err


def test_unusable_torch_weights_are_not_measured_instead_of_failing(tiny_model, tmp_path, capsys) -> None:
    """--weights that cannot be loaded stopped the bench (a traceback for a file that is not a
    torch pickle, exit 2 for a card of another architecture) after the ONNX runs were measured."""
    pytest.importorskip("torch")
    bad = tmp_path / "notes.pt"
    bad.write_text("# hello")
    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_model), "--sizes", "16", "--runs", "1", "--no-int8", "--weights", str(bad)]
    assert main([*args, "--json", str(out)]) == 0
    reason = json.loads(out.read_text())["not_measured"]["pytorch eager"]
    assert f"cannot use {bad} as PyTorch weights" in reason
    assert "pytorch eager: not measured" in capsys.readouterr().out

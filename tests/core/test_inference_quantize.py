"""``waferdesk model quantize``: an int8 copy kept only when its argmax agrees >= 99.9 % with
the original on failing dies; otherwise refused, file deleted, exit non-zero."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import make_layered_model, make_tiny_model

from waferdesk.cli import main
from waferdesk.core.inference import Segmenter
from waferdesk.core.inference.quantize import QuantizationRefusedError, quantize_model, upcast_fp16
from waferdesk.core.modelcard import card_path_for, load_model_card, sha256_file
from waferdesk.core.synth import generate

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")


def test_quantize_keeps_an_agreeing_copy_with_its_own_card(tmp_path, capsys) -> None:
    src = make_tiny_model(tmp_path, kind="robust")
    out = tmp_path / "q" / "robust-int8.onnx"
    rc = main(["model", "quantize", "--model", str(src), "--out", str(out), "--calib", "8", "--check", "24"])
    printed = capsys.readouterr().out
    assert rc == 0 and "argmax agreement 100.0000%" in printed and "kept" in printed
    card = load_model_card(out)  # verifies sha256 and compatibility
    parent = load_model_card(src)
    assert card.onnx["precision"] == "int8" and card.onnx["parent_sha256"] == parent.sha256
    assert card.sha256 == sha256_file(out) != parent.sha256
    assert card.onnx["quantization"]["check"]["argmax_agreement"] >= 0.999
    assert card.version == "tiny-1-int8"
    # the copy really is quantized, and predicts like its parent
    import onnx

    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    a, b = Segmenter(src, cache=False), Segmenter(out, cache=False)
    wafers = [r.wafer for r in generate(5, seed=77)]
    preds = [a.predict(w).mask.labels for w in wafers]
    assert len(np.unique(np.concatenate([p.ravel() for p in preds]))) > 2  # a non-trivial model
    for w, p in zip(wafers, preds, strict=True):
        assert np.array_equal(b.predict(w).mask.labels, p)


def test_quantize_refuses_and_deletes_a_disagreeing_copy(tmp_path, capsys) -> None:
    src = make_tiny_model(tmp_path, kind="fragile")
    out = tmp_path / "fragile-int8.onnx"
    rc = main(["model", "quantize", "--model", str(src), "--out", str(out), "--calib", "4", "--check", "8"])
    cap = capsys.readouterr()
    assert rc == 2
    assert "REFUSED" in cap.out and "below the required 99.9%; not kept" in cap.err
    assert not out.exists() and not card_path_for(out).exists()


def test_a_refused_copy_leaves_an_earlier_file_at_out_untouched(tmp_path, capsys) -> None:
    """The copy was written onto OUT and then deleted: a refusal destroyed what OUT held before."""
    src = make_tiny_model(tmp_path, kind="fragile")
    out = tmp_path / "int8.onnx"
    out.write_bytes(b"yesterday's kept int8 model")
    card_path_for(out).write_text('{"its": "card"}')
    rc = main(["model", "quantize", "--model", str(src), "--out", str(out), "--calib", "4", "--check", "8"])
    assert rc == 2 and "not kept" in capsys.readouterr().err
    assert out.read_bytes() == b"yesterday's kept int8 model"
    assert card_path_for(out).read_text() == '{"its": "card"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["int8.onnx", "int8.card.json", src.name, card_path_for(src).name]
    )


def test_an_interrupted_check_leaves_no_unchecked_model_at_out(tmp_path, capsys, monkeypatch) -> None:
    """Ctrl-C during the agreement check left the unchecked int8 copy and its card at OUT."""
    import waferdesk.core.inference.quantize as quantize

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize, "agreement_with", interrupted)
    src = make_tiny_model(tmp_path, kind="robust")
    out = tmp_path / "q" / "int8.onnx"
    rc = main(["model", "quantize", "--model", str(src), "--out", str(out), "--calib", "4", "--check", "8"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert not list(out.parent.iterdir())


def test_refusal_report_and_threshold(tmp_path) -> None:
    src = make_tiny_model(tmp_path)
    with pytest.raises(QuantizationRefusedError) as info:
        quantize_model(src, tmp_path / "r.onnx", calib=4, check=6, min_agreement=1.01)
    rep = info.value.report
    assert rep is not None and not rep.kept and 0 < rep.agreement <= 1 and rep.failing_dies > 0


def test_fp16_model_is_upcast_then_quantized(tmp_path) -> None:
    import onnx

    src = make_tiny_model(tmp_path, fp16=True, kind="robust")
    up = upcast_fp16(onnx.load(src))
    onnx.checker.check_model(up)
    assert up.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    rep = quantize_model(src, tmp_path / "h8.onnx", calib=4, check=8, min_agreement=0.99)
    assert rep.kept and json.loads(card_path_for(tmp_path / "h8.onnx").read_text())["onnx"]["precision"] == "int8"


def test_quantize_never_overwrites_its_parent(tmp_path) -> None:
    src = make_tiny_model(tmp_path)
    rc = main(["model", "quantize", "--model", str(src), "--out", str(src)])
    assert rc == 2 and src.is_file()


def _conv_weight_sources(path) -> list[tuple[str, str]]:
    """(name, what produces its weight: 'initializer' when stored float) of every Conv, in order."""
    import onnx

    graph = onnx.load(path).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    return [(n.name, producer.get(n.input[1], "initializer")) for n in graph.node if n.op_type == "Conv"]


def test_the_stem_convolution_stays_float_unless_asked(tmp_path) -> None:
    src = make_tiny_model(tmp_path, kind="robust")
    kept = quantize_model(src, tmp_path / "stem-float.onnx", calib=4, check=8, min_agreement=0.99)
    stem, source = _conv_weight_sources(kept.path)[0]  # the first Conv reads the encoded input
    assert source == "initializer"
    card = load_model_card(kept.path)
    assert stem in card.onnx["quantization"]["float_nodes"]
    # the switch really is what keeps it float: without it the stem's weights are int8
    rep = quantize_model(src, tmp_path / "stem-int8.onnx", calib=4, check=8, min_agreement=0.5, keep_stem_float=False)
    assert _conv_weight_sources(rep.path)[0][1] == "DequantizeLinear"
    assert stem not in load_model_card(rep.path).onnx["quantization"]["float_nodes"]


def test_a_copy_missing_the_gate_keeps_the_block_that_costs_agreement_in_float(tmp_path, capsys) -> None:
    """The plain copy of the layered model fails (its decoder block's int8 range drowns the
    counts the head reads); the search measures each block in float on a selection set, keeps
    ``/decoder/blocks.0`` float, and that copy passes the gate on the check set."""
    src = make_layered_model(tmp_path)
    out = tmp_path / "q" / "layered-int8.onnx"
    argv = ["model", "quantize", "--model", str(src), "--out", str(out), "--calib", "4", "--check", "12"]
    assert main([*argv, "--search", "0"]) == 2  # no search: refused, as before
    assert "REFUSED" in capsys.readouterr().out and not out.exists()

    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "kept in float: /decoder/blocks.0" in captured.out and "argmax agreement 100.0000%" in captured.out
    assert "round 1: /encoder/layer1 in float" in captured.err  # progress names every trial
    q = load_model_card(out).onnx["quantization"]
    assert "/decoder/blocks.0/Conv" in q["float_nodes"] and "/encoder/layer1/Conv" not in q["float_nodes"]
    search = q["search"]
    assert search["plain_agreement"] < 0.999 and search["float_groups"] == ["/decoder/blocks.0"]
    assert search["selection"]["seed"] != q["check"]["seed"]  # chosen on other wafers than the gate's
    trials = {tuple(t["float_groups"]): t["agreement"] for t in search["trials"]}
    assert trials[("/decoder/blocks.0",)] == 1.0 > trials[("/encoder/layer1",)]
    # the encoder block is still int8 and the copy predicts like its parent
    assert dict(_conv_weight_sources(out))["/encoder/layer1/Conv"] == "DequantizeLinear"
    a, b = Segmenter(src, cache=False), Segmenter(out, cache=False)
    for w in (r.wafer for r in generate(4, seed=78)):
        assert np.array_equal(a.predict(w).mask.labels, b.predict(w).mask.labels)


def test_layer_groups_are_the_named_blocks_with_compute_left_to_quantize(tmp_path) -> None:
    import onnx

    from waferdesk.core.inference.quantize import output_nodes, stem_nodes
    from waferdesk.core.inference.quantize_search import layer_groups

    model = onnx.load(make_layered_model(tmp_path))
    groups = layer_groups(model, output_nodes(model) + stem_nodes(model))
    # the stem's block holds only its ReLU once the stem is float: no group; /pool has no block
    assert groups == {
        "/encoder/layer1": ["/encoder/layer1/Conv", "/encoder/layer1/Relu"],
        "/decoder/blocks.0": ["/decoder/blocks.0/Conv", "/decoder/blocks.0/Relu"],
    }


@pytest.mark.parametrize(
    ("scores", "max_groups", "chosen", "n_trials"),
    [
        ({(): 0.8, ("a",): 0.9, ("b",): 0.95, ("c",): 0.999}, 3, ["c"], 4),  # one round reaches the target
        ({(): 0.8, ("a",): 0.9, ("b",): 0.95, ("c",): 0.92, ("b", "a"): 0.96, ("b", "c"): 0.999}, 3, ["b", "c"], 6),
        ({(): 0.8, ("a",): 0.9, ("b",): 0.95, ("c",): 0.92, ("b", "a"): 0.94, ("b", "c"): 0.93}, 3, ["b"], 6),
        ({(): 0.8, ("a",): 0.9, ("b",): 0.95, ("c",): 0.92}, 1, ["b"], 4),  # the round limit
        ({(): 0.96, ("a",): 0.9, ("b",): 0.95, ("c",): 0.92}, 3, [], 4),  # no block beats the plain copy
        ({(): 0.9995, ("a",): 0.9, ("b",): 0.9999, ("c",): 0.92}, 3, ["b"], 4),  # plain passes here: one block still
    ],
)
def test_the_greedy_search_adds_the_best_block_per_round_until_the_target(scores, max_groups, chosen, n_trials) -> None:
    from waferdesk.core.inference.quantize_search import greedy_float_groups

    said: list[str] = []
    got, best, trials = greedy_float_groups(["a", "b", "c"], lambda g: scores[tuple(g)], 0.999, max_groups, said.append)
    assert got == chosen and best == scores[tuple(chosen)]
    assert len(trials) == len(said) == n_trials and trials[0].groups == []

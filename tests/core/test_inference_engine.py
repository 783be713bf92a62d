"""The engine's numbers are the model's numbers: ONNX output vs numpy and torch recomputations,
post-processing (mask, probabilities, counts, verdict, uncertainty), model loading errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import make_tiny_model, reference_logits, tiny_weights

from waferdesk.core.encoding import decode, encode, encode_batch
from waferdesk.core.errors import ModelError
from waferdesk.core.inference import Prediction, Segmenter, softmax, uncertainty_scores
from waferdesk.core.modelcard import card_path_for, load_card
from waferdesk.core.results import summarize
from waferdesk.core.synth import generate
from waferdesk.core.taxonomy import IGNORE, default_taxonomy
from waferdesk.core.wafer import FAIL, PASS, WaferMap

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def seg(tiny_model) -> Segmenter:
    return Segmenter(tiny_model, providers="cpu", cache=False)


@pytest.fixture(scope="module")
def wafers() -> list[WaferMap]:
    return [r.wafer for r in generate(12, seed=7)]


def test_onnx_output_equals_numpy_recomputation(seg, wafers) -> None:
    x, _ = encode_batch([wafers[0].dies])
    logits, emb = seg.run(x)
    ref_logits, ref_emb = reference_logits(x)
    assert logits.dtype == np.float32 and logits.shape == ref_logits.shape
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emb, ref_emb, rtol=1e-4, atol=1e-4)


def test_onnx_output_equals_torch_for_the_same_encoding(seg, wafers) -> None:
    torch = pytest.importorskip("torch")
    w = {k: torch.from_numpy(v) for k, v in tiny_weights().items()}
    x, _ = encode_batch([wafers[1].dies])
    with torch.inference_mode():
        h = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), w["w1"], w["b1"], padding=1))
        t_logits = torch.nn.functional.conv2d(h, w["w2"], w["b2"]).numpy()
        t_emb = h.mean(dim=(2, 3)).numpy()
    logits, emb = seg.run(x)
    np.testing.assert_allclose(logits, t_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emb, t_emb, rtol=1e-4, atol=1e-4)


def test_prediction_is_post_processed_from_the_decoded_logits(seg, wafers) -> None:
    tax = default_taxonomy()
    for wafer in wafers[:6]:
        pred = seg.predict(wafer)
        x, place = encode(wafer.dies)
        ref, ref_emb = reference_logits(x[None])
        z = decode(ref[0], place)
        probs = softmax(z)
        fail = wafer.dies == FAIL
        assert pred.probs.shape == (len(tax), *wafer.shape) and pred.probs.dtype == np.float32
        np.testing.assert_allclose(pred.probs, probs, atol=1e-4)
        np.testing.assert_allclose(pred.probs.sum(axis=0), 1.0, atol=1e-5)
        labels = pred.mask.labels
        assert (labels[~fail] == IGNORE).all()
        assert (labels[fail] == pred.probs.argmax(axis=0)[fail]).all()
        counts = np.bincount(labels[fail], minlength=len(tax))
        assert pred.summary.counts == {n: int(counts[i]) for i, n in enumerate(tax.names)}
        assert pred.summary.n_fail == int(fail.sum())
        assert pred.summary == summarize(wafer, pred.mask)
        assert pred.embedding.shape == (seg.card.embedding_dim,)
        np.testing.assert_allclose(pred.embedding, ref_emb[0], atol=1e-4)
        u = pred.uncertainty
        assert u == pytest.approx(uncertainty_scores(probs, fail), abs=1e-5)
        assert 0 <= u["entropy_mean"] <= u["entropy_topk_mean"] <= u["entropy_max"] <= 1
        assert 0 <= u["margin_min"] <= u["margin_mean"] <= 1
        assert pred.wafer_hash == wafer.content_hash()
        assert pred.model_sha256 == seg.model_sha256 and pred.model_version == "tiny-1"
        assert pred.provider == "CPU" and pred.latency_ms > 0 and not pred.cached


def test_wafer_without_fails_has_empty_mask_and_zero_uncertainty(seg) -> None:
    dies = np.full((20, 20), PASS, np.uint8)
    dies[0, 0] = 0
    pred = seg.predict(WaferMap(dies))
    assert (pred.mask.labels == IGNORE).all()
    assert pred.verdict == "none" and sum(pred.summary.counts.values()) == 0
    assert set(pred.uncertainty.values()) == {0.0}


def test_prediction_arrays_are_read_only_and_json_is_complete(seg, wafers) -> None:
    pred = seg.predict(wafers[0])
    with pytest.raises(ValueError):
        pred.probs[0, 0, 0] = 1
    data = json.loads(json.dumps(pred.to_json()))
    assert data["verdict"] == str(pred.summary.verdict)
    assert np.array_equal(np.array(data["mask"], np.uint8), pred.mask.labels)
    assert set(data["counts"]) == set(default_taxonomy().names)
    assert len(data["embedding"]) == pred.embedding.size
    assert data["model"] == {"version": "tiny-1", "sha256": seg.model_sha256, "provider": "CPU", "views": 1}
    rle = pred.to_json(mask_format="rle")["mask"]["rle"]
    flat = np.concatenate([np.full(n, v, np.uint8) for v, n in rle])
    assert np.array_equal(flat.reshape(pred.shape), pred.mask.labels)


def test_fp16_model_runs_with_float16_input(tmp_path, wafers) -> None:
    path = make_tiny_model(tmp_path, fp16=True)
    seg16 = Segmenter(path, providers="cpu", cache=False)
    assert seg16.input_dtype == np.float16
    pred = seg16.predict(wafers[2])
    assert pred.probs.dtype == np.float32 and pred.embedding.dtype == np.float32
    x, place = encode(wafers[2].dies)
    ref = softmax(decode(reference_logits(x[None])[0][0], place))
    np.testing.assert_allclose(pred.probs, ref, atol=2e-2)


def test_missing_default_model_says_what_to_do(monkeypatch, tmp_path) -> None:
    import waferdesk.core.inference.segmenter as mod

    monkeypatch.setattr(mod, "default_model_path", lambda: tmp_path / "waferdesk-unet-r50.onnx")
    with pytest.raises(ModelError, match=r"default model is not installed.*--model"):
        Segmenter()


def test_incompatible_or_tampered_models_are_refused(tmp_path) -> None:
    path = make_tiny_model(tmp_path / "a")
    card = json.loads(card_path_for(path).read_text())
    card["classes"] = card["classes"][::-1]
    card_path_for(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="classes"):
        Segmenter(path)

    path = make_tiny_model(tmp_path / "b")
    card = json.loads(card_path_for(path).read_text())
    card["sha256"] = "0" * 64  # the card describes another file
    card_path_for(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not match its card"):
        Segmenter(path)
    assert Segmenter(path, verify_sha=False, cache=False).card.version == "tiny-1"


def test_model_with_wrong_io_names_is_refused(tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    path = make_tiny_model(tmp_path)
    m = onnx.load(path)
    m.graph.output[1].name = "features"
    m.graph.node[-1].output[0] = "features"
    onnx.save(m, path)
    card = load_card(card_path_for(path))
    from waferdesk.core.modelcard import sha256_file

    card.sha256 = sha256_file(path)
    card.save(card_path_for(path))
    with pytest.raises(ModelError, match=r"missing output.*embedding"):
        Segmenter(path)


def test_prediction_is_a_frozen_dataclass() -> None:
    assert Prediction.__dataclass_params__.frozen  # type: ignore[attr-defined]

"""Training a tiny model, exporting it and loading its card: the whole path, on CPU, in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from waferdesk.cli import main
from waferdesk.core.encoding import CHANNELS, ENCODING_VERSION
from waferdesk.core.errors import WaferDeskError
from waferdesk.core.modelcard import INPUT_NAME, OUTPUT_EMBEDDING, OUTPUT_SCORES, card_path_for, load_model_card
from waferdesk.core.synth import generate_record
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.ml.data import load_wm811k
from waferdesk.ml.export import agreement, export_onnx, onnx_session
from waferdesk.ml.model import build_from_card
from waferdesk.ml.train import load_checkpoint_model


def test_run_directory_holds_config_checkpoints_metrics_and_curves(tiny_run: Path) -> None:
    for name in ("config.json", "last.pt", "best.pt", "metrics.json", "train_log.json", "curves.png", "summary.json"):
        assert (tiny_run / name).is_file(), name
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["encoder"] == "resnet18" and len(cfg["class_weights"]) == len(default_taxonomy())
    assert cfg["extra"]["synth_sha256"] and len(cfg["extra"]["synth_sha256"]) == 64
    history = json.loads((tiny_run / "metrics.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    for h in history:
        assert set(h["val"]["class_iou"]) == set(default_taxonomy().names)
        assert 0 <= h["val"]["miou"] <= 1 and h["lr"] > 0 and np.isfinite(h["val_loss"])


def test_exported_model_and_card(tiny_onnx: Path) -> None:
    card = load_model_card(tiny_onnx)  # compatible, sha256 verified
    assert card.encoding_version == ENCODING_VERSION and card.channels == list(CHANNELS)
    assert card.classes == list(default_taxonomy().names)
    assert card.onnx["opset"] >= 17 and card.onnx["precision"] == "fp32" and card.onnx["embedding_dim"] == 512
    assert card.training["data"]["generator_seed"] == 101 and card.training["data"]["synth_sha256"]
    assert card.metrics["validation"]["synthetic"]["miou"] is not None
    m = onnx.load(str(tiny_onnx))
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    assert [i.name for i in m.graph.input] == [INPUT_NAME]
    assert [o.name for o in m.graph.output] == [OUTPUT_SCORES, OUTPUT_EMBEDDING]
    assert max(op.version for op in m.opset_import if op.domain in ("", "ai.onnx")) >= 17
    sess = onnx_session(tiny_onnx)
    for n, h, w in ((1, 64, 64), (3, 96, 160), (2, 224, 192)):  # dynamic batch and spatial axes
        x = np.zeros((n, len(CHANNELS), h, w), np.float32)
        logits, emb = sess.run(None, {INPUT_NAME: x})
        assert logits.shape == (n, 8, h, w) and emb.shape == (n, 512) and logits.dtype == np.float32
        assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)  # L2-normalised embedding


def test_export_views_become_the_cards_default_for_every_consumer(tiny_run: Path, tmp_path: Path) -> None:
    from waferdesk.core.inference import Segmenter

    out = tmp_path / "tta.onnx"
    assert main(["export", str(tiny_run), "--views", "4", "--out", str(out)]) == 0
    card = load_model_card(out)  # the sha256 still matches: the views live in the card only
    assert card.raw["inference"] == {"views": 4} and card.default_views == 4
    assert Segmenter(out, providers="cpu", cache=False).views == 4


def test_export_agrees_with_torch_on_synthetic_and_real_maps(tiny_run: Path, tmp_path: Path, real_data_path) -> None:
    model, _ = load_checkpoint_model(tiny_run / "best.pt")
    rng = np.random.default_rng(0)
    synth = [generate_record(4242, int(i)).wafer.dies for i in rng.choice(500, 6, replace=False)]
    real = [w.dies for w in load_wm811k(real_data_path, [0, 17, 400, 2500, 9000, 12000])]
    fp32 = export_onnx(model, tmp_path / "m32.onnx")
    fp16 = export_onnx(model, tmp_path / "m16.onnx", fp16=True)
    assert fp32["precision"] == "fp32" and fp16["precision"] == "fp16-weights"
    assert (tmp_path / "m16.onnx").stat().st_size < 0.55 * (tmp_path / "m32.onnx").stat().st_size
    for grids in (synth, real):
        a32 = agreement(model, tmp_path / "m32.onnx", grids)
        assert a32["max_abs_logit_diff"] < 1e-3 and a32["argmax_agreement"] == 1.0, a32
        assert a32["failing_dies"] > 100
        a16 = agreement(model, tmp_path / "m16.onnx", grids)
        assert a16["argmax_agreement"] > 0.99, a16


def test_build_from_card_rebuilds_the_network(tiny_onnx: Path, tiny_run: Path) -> None:
    card = load_model_card(tiny_onnx)
    random_init = build_from_card(card)
    assert random_init.encoder_name == "resnet18" and not random_init.training
    trained = build_from_card(card, weights=tiny_run / "best.pt")
    x, _ = generate_record(5, 0).wafer.dies, None
    from waferdesk.core.encoding import encode_batch

    enc, _ = encode_batch([x])
    with torch.no_grad():
        logits, _ = trained(torch.from_numpy(enc))
    out, _ = onnx_session(tiny_onnx).run(None, {INPUT_NAME: enc})
    assert np.abs(out - logits.numpy()).max() < 1e-3


@pytest.mark.parametrize("options", [[], ["--ema", "0.9", "--freeze-bn"]], ids=["plain", "ema-frozen-bn"])
def test_resume_continues_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_train_args: list[str], options: list[str]
) -> None:
    """4 steps straight == 2 steps, killed during step 3, resumed to 4 (stream, optimizer and the
    weights' moving average restored)."""
    import waferdesk.ml.train as tr

    tiny_train_args = [*tiny_train_args, *options]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", "--run-dir", str(straight), *tiny_train_args]) == 0
    real_next = tr.SynthStream.__next__
    batches = {"n": 0}

    def dies_during_step_3(self):
        batches["n"] += 1
        if batches["n"] == 3:
            raise KeyboardInterrupt
        return real_next(self)

    monkeypatch.setattr(tr.SynthStream, "__next__", dies_during_step_3)
    assert main(["train", "--run-dir", str(split), *tiny_train_args]) == 130  # interrupted
    assert torch.load(split / "last.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(tr.SynthStream, "__next__", real_next)
    assert main(["train", "--run-dir", str(split), "--resume"]) == 0
    a = torch.load(straight / "last.pt", weights_only=False)
    b = torch.load(split / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 4 and a["stream"] == b["stream"]
    assert [h["step"] for h in b["history"]] == [2, 4]
    for part in ("model", "ema") if options else ("model",):
        for k, v in a[part].items():
            assert torch.allclose(v.float(), b[part][k].float(), atol=1e-5), (part, k)


def test_bad_inputs_give_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no such run directory or checkpoint" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(tmp_path / "r"), "--resume"]) == 2
    assert "no last.pt" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(tmp_path / "r"), "--seed", "5", "--val-seed", "5"]) == 2
    for threads in ("-5", "0"):  # 0 silently meant torch's default (the default is to leave --threads out)
        assert main(["train", "--run-dir", str(tmp_path / "t"), "--threads", threads]) == 2
        assert f"--threads must be at least 1, got {threads}" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()
    assert not card_path_for(tmp_path / "m.onnx").exists()
    for bad, message in (
        (["--minutes", "0"], "--minutes must be positive, got 0.0"),
        (["--minutes", "5", "--schedule", "onecycle"], "--minutes needs the cosine schedule"),
        (["--data-workers", "-1"], "--data-workers 0 or more, got 50 and -1"),
        (["--seed", "-1"], "--seed and --val-seed must be 0 or more, got -1 and 202"),
        (["--eval-every", "0"], "--eval-every must be at least 1 step, got 0"),
    ):
        assert main(["train", "--run-dir", str(tmp_path / "m"), *bad]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # refused before anything was written


def test_export_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path: Path, capsys) -> None:
    """torch.load's RuntimeError / UnpicklingError used to end in a traceback with exit 1."""
    from waferdesk.core.formats import write_wdm

    notes = tmp_path / "notes.pt"
    notes.write_text("# hello")
    wafers = write_wdm(tmp_path / "w.wdm", [generate_record(1, 0)])
    for src in (notes, wafers):
        assert main(["export", str(src), "--out", str(tmp_path / "m.onnx")]) == 2
        err = capsys.readouterr().err
        assert f"{src}: not a WaferDesk checkpoint" in err and "Traceback" not in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_steps_zero_is_refused_not_taken_as_the_default_length(tmp_path: Path, capsys, monkeypatch) -> None:
    """``--steps 0`` used to read as "not given" and start a full-length (4,000-step) run."""
    import waferdesk.ml.train

    def must_not_train(*_a, **_k):
        raise AssertionError("--steps 0 started a training run")

    monkeypatch.setattr(waferdesk.ml.train, "train", must_not_train)
    assert main(["train", "--run-dir", str(tmp_path / "z"), "--steps", "0"]) == 2
    assert "--steps and --batch-size must be positive, got 0" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_a_new_run_never_overwrites_an_existing_one(tmp_path: Path, capsys, monkeypatch) -> None:
    """Without --resume, a run directory holding a run used to be trained over: its config.json
    at once and its checkpoints at the first save (hours of training lost to a forgotten flag)."""
    import waferdesk.ml.train

    def must_not_train(*_a, **_k):
        raise AssertionError("a new run started over an existing one")

    monkeypatch.setattr(waferdesk.ml.train, "train", must_not_train)
    run = tmp_path / "r50"
    run.mkdir()
    (run / "last.pt").write_bytes(b"hours of training")
    (run / "config.json").write_text("{}")
    assert main(["train", "--run-dir", str(run), "--steps", "10"]) == 2
    assert "already holds a training run; --resume continues it" in capsys.readouterr().err
    assert (run / "last.pt").read_bytes() == b"hours of training" and (run / "config.json").read_text() == "{}"


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu0", "--device 'gpu0': not a device; choose auto, cpu, cuda or cuda:N"),
        ("meta", "--device 'meta': WaferDesk trains on auto, cpu, cuda or cuda:N"),
        pytest.param(
            "cuda",
            "--device 'cuda': no CUDA GPU is available here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU"),
        ),
    ],
)
def test_train_refuses_an_unusable_device_before_writing_anything(
    device: str, message: str, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--device", device, "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not run.exists()  # no half-written run directory to trip a later --resume


def test_a_time_budget_ends_the_run_and_its_schedule(
    tmp_path: Path, tiny_train_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--minutes: the run stops by the clock with its steps unfinished, evaluated and saved,
    its learning rate at the end of the cosine; made with wafers from worker processes."""
    run = tmp_path / "budget"
    args = list(tiny_train_args)
    args[args.index("--steps") + 1] = "100000"
    args[args.index("--eval-every") + 1] = "100000"
    assert main(["train", "--run-dir", str(run), *args, "--minutes", "0.05", "--data-workers", "1"]) == 0
    assert "(time budget used)" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    last = torch.load(run / "last.pt", weights_only=False)
    assert summary["out_of_time"] and 0 < summary["steps"] < 100000 and last["step"] == summary["steps"]
    assert summary["train_time_s"] >= 3.0 and json.loads((run / "config.json").read_text())["minutes"] == 0.05
    history = json.loads((run / "metrics.json").read_text())
    assert history[-1]["step"] == summary["steps"]  # the last step was evaluated
    assert history[-1]["lr"] <= 0.01 * last["config"]["lr"]  # the cosine ran out with the clock


def test_time_budget_schedule_follows_the_clock() -> None:
    from waferdesk.ml.config import TrainConfig
    from waferdesk.ml.train import make_scheduler

    now = {"s": 0.0}
    cfg = TrainConfig(steps=1_000_000, lr=1.0, warmup=0.1, minutes=1.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, cfg, clock=lambda: now["s"])
    lrs = {}
    for t in (3.0, 6.0, 33.0, 60.0):  # seconds of a one-minute budget
        now["s"] = t
        opt.step()
        sched.step()
        lrs[t] = opt.param_groups[0]["lr"]
    assert lrs[3.0] == pytest.approx(0.5) and lrs[6.0] == pytest.approx(1.0)  # warm-up over the first 10 %
    assert lrs[33.0] == pytest.approx(0.5025, abs=1e-3) and lrs[60.0] == pytest.approx(0.005)
    with pytest.raises(WaferDeskError, match="--minutes needs the cosine schedule"):
        make_scheduler(opt, TrainConfig(schedule="onecycle", minutes=1.0))


def test_resume_with_minutes_gives_the_run_a_new_time_budget(
    tmp_path: Path, tiny_train_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--resume --minutes M`` used to be ignored silently (the run kept its old budget): a run
    stopped to free the machine could not be given the minutes that came free."""
    run = tmp_path / "budget"
    assert main(["train", "--run-dir", str(run), *tiny_train_args, "--minutes", "30"]) == 0
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "6", "--minutes", "45"]) == 0
    last = torch.load(run / "last.pt", weights_only=False)
    assert last["step"] == 6 and last["config"]["minutes"] == 45
    assert last["config"]["extra"]["minutes_changed"] == [{"at_step": 4, "from": 30.0, "to": 45.0}]
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "8", "--minutes", "0.0001"]) == 2
    assert "min; --minutes must be larger" in capsys.readouterr().err
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 6  # nothing trained or rewritten

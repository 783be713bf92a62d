"""`waferdesk al-sim` end to end on a tiny pool (a few seconds per run on two cores).

The tiny configuration uses mobilenet_v2 (a tenth of a second per step at batch 2) instead
of resnet18: what is tested is the simulation's bookkeeping, not the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from waferdesk.cli import main
from waferdesk.core.active import STRATEGIES
from waferdesk.core.taxonomy import default_taxonomy

TINY = [
    "--pool", "20", "--test", "6", "--seed-size", "4", "--batch", "3", "--rounds", "2", "--steps", "1",
    "--full-steps", "1", "--train-batch", "2", "--encoder", "mobilenet_v2", "--tta", "2", "--threads", "1",
    "--no-progress",
]  # fmt: skip


def _without_timing(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in ("seconds", "timing_s")}


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("alsim") / "run"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["al-sim", *TINY, "--json", "--out", str(out)]) == 0
    return json.loads(buf.getvalue()), out


def test_al_sim_json_curves_targets_and_files(tiny_result: tuple[dict, Path]) -> None:
    r, out = tiny_result
    assert set(r["curves"]) == set(STRATEGIES)
    seed = r["seed_indices"]
    assert len(seed) == 4 and len(set(seed)) == 4 and all(0 <= i < 20 for i in seed)
    for name, curve in r["curves"].items():
        assert [p["labelled"] for p in curve] == [4, 7, 10], name  # monotone: seed + batch per round
        assert [p["round"] for p in curve] == [0, 1, 2]
        assert all(0 <= p["miou"] <= 1 for p in curve)
        labelled = set(seed)
        for p in curve[1:]:
            # every pick is a pool wafer not labelled before, none twice
            assert len(p["picked"]) == 3 and len(set(p["picked"])) == 3, name
            assert labelled.isdisjoint(p["picked"]), (name, p["round"])
            assert all(0 <= i < 20 for i in p["picked"])
            labelled |= set(p["picked"])
        per_class = curve[-1]["labelled_wafers_with_class"]  # wafers holding each class, by ground truth
        assert set(per_class) == set(default_taxonomy().names) and max(per_class.values()) <= 10
        assert sum(per_class.values()) > 0
    # round 0 is one model shared by every strategy
    assert len({json.dumps(c[0], sort_keys=True) for c in r["curves"].values()}) == 1
    assert "picked_mean_uncertainty" in r["curves"]["hybrid"][1]
    ref = r["reference"]
    assert ref["labelled"] == 20 and ref["steps"] == 1 and ref["target_miou"] == round(0.95 * ref["miou"], 4)
    for name, t in r["labels_to_target"].items():
        if t["reached"]:
            assert t["labels"] in (4, 7, 10) and t["saving_pct"] == round(100 * (1 - t["labels"] / 20), 1)
            first = next(p for p in r["curves"][name] if p["miou"] >= ref["target_miou"])
            assert first["labelled"] == t["labels"]
        else:
            assert t["labels"] is None and all(p["miou"] < ref["target_miou"] for p in r["curves"][name])
    hy = r["vs_random"]["hybrid"]
    assert [b["labelled"] for b in hy["budgets"]] == [7, 10]
    assert r["hybrid_beats_random_at_every_budget"] == hy["beats_random_at_every_budget"]
    assert r["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # --device auto
    assert (out / "al-sim.png").stat().st_size > 5000
    assert _without_timing(json.loads((out / "al-sim.json").read_text())) == _without_timing(r)


def test_al_sim_is_deterministic_and_a_strategy_does_not_depend_on_the_others(
    tiny_result: tuple[dict, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same seed, a subset of the strategies in another order: the same curves, bit for bit."""
    r, _ = tiny_result
    assert main(["al-sim", *TINY, "--strategies", "hybrid,random", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "labels to 95%" in text and "hybrid vs random" in text
    again = json.loads((tmp_path / "al-sim.json").read_text())
    assert again["seed_indices"] == r["seed_indices"]
    assert again["curves"]["hybrid"] == r["curves"]["hybrid"]
    assert again["curves"]["random"] == r["curves"]["random"]
    assert again["reference"] == r["reference"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_al_sim_on_cuda_without_a_gpu_says_so(capsys) -> None:
    assert main(["al-sim", *TINY, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device 'cuda': no CUDA GPU is available here" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pool", "8"], "--pool 8 is too small"),
        (["--strategies", "random,greedy"], "--strategies: unknown ['greedy']"),
        (["--score", "tta_mutual_info", "--tta", "0"], "needs --tta 2..8"),
        (["--score", "confidence"], "--score 'confidence'"),
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--encoder", "resnet999"], "--encoder 'resnet999'"),
        (["--test-seed", "505"], "--pool-seed and --test-seed must differ"),
        (["--seed", "-1"], "--seed must be 0 or more, got -1"),
        (["--pool-seed", "-5"], "--pool-seed must be 0 or more, got -5"),
        (["--device", "gpu0"], "--device 'gpu0': not a device"),
        (["--device", "meta"], "--device 'meta': WaferDesk trains on auto, cpu, cuda or cuda:N"),
    ],
)
def test_al_sim_bad_flags_give_one_clear_line(flags: list[str], message: str, capsys) -> None:
    assert main(["al-sim", *TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

"""``waferdesk train --pattern-weights``: the training stream draws the named patterns more (or
less) often, validation keeps equal odds, and the card records what the model was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from waferdesk.cli import main
from waferdesk.core.errors import WaferDeskError
from waferdesk.core.synth import SYSTEMATIC, SynthConfig, generate_record
from waferdesk.core.taxonomy import default_taxonomy
from waferdesk.ml.config import TrainConfig, parse_pattern_weights
from waferdesk.ml.losses import class_frequencies, class_weights_from
from waferdesk.ml.train import synth_config

TAX = default_taxonomy()
ONLY_RING = ",".join(f"{c}={1 if c == 'ring' else 0}" for c in SYSTEMATIC)


def test_pattern_weights_are_parsed_by_name() -> None:
    assert parse_pattern_weights("scratch=2, lithography=2.5,particle=0") == {
        "scratch": 2.0,
        "lithography": 2.5,
        "particle": 0.0,
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("random=2", "'random' is not a pattern; choose from edge"),
        ("scratch", "expected NAME=WEIGHT"),
        ("scratch=2,", "expected NAME=WEIGHT"),
        ("scratch=lots", "'lots' is not a number"),
        ("scratch=-1", "finite number >= 0"),
        ("scratch=2,lithography=2,scratch=3", "scratch is given twice"),
        ("scratch=nan", "finite number >= 0"),
        (",".join(f"{c}=0" for c in SYSTEMATIC), "every pattern has weight 0"),
    ],
)
def test_bad_pattern_weights_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(WaferDeskError, match="pattern weight") as err:
        parse_pattern_weights(text)
    assert says in str(err.value)


def _patterns_drawn(cfg: SynthConfig, wafers: int = 60) -> set[str]:
    """The pattern classes the generator drew into the first ``wafers`` wafers of seed 7."""
    return {
        p.split(":")[0]
        for i in range(wafers)
        for p in generate_record(7, i, cfg).wafer.extra["patterns"].split(",")
        if p
    }


def test_only_the_training_stream_is_reweighted() -> None:
    cfg = TrainConfig(pattern_weights=parse_pattern_weights(ONLY_RING))
    train_cfg, val_cfg = synth_config(cfg, training=True), synth_config(cfg)
    assert _patterns_drawn(train_cfg) == {"ring"}
    assert val_cfg == synth_config(TrainConfig())  # validation: the default odds
    assert _patterns_drawn(val_cfg) > {"ring", "scratch"}


def test_a_reweighted_run_trains_on_its_stream_validates_on_the_usual_wafers_and_says_so_in_the_card(
    tiny_run: Path, tmp_path: Path, tiny_train_args: list[str]
) -> None:
    run = tmp_path / "ring"
    assert main(["train", "--run-dir", str(run), *tiny_train_args, "--pattern-weights", ONLY_RING]) == 0
    cfg = json.loads((run / "config.json").read_text())
    usual = json.loads((tiny_run / "config.json").read_text())
    assert cfg["pattern_weights"] == {c: (1.0 if c == "ring" else 0.0) for c in SYSTEMATIC}
    # the loss weights come from what the stream draws (only ring among the patterns)
    drawn = class_frequencies(cfg["seed"], synth_config(TrainConfig(**cfg), training=True))
    assert cfg["class_weights"] == class_weights_from(drawn) != usual["class_weights"]
    assert drawn[TAX.index("scratch")] == 0 < drawn[TAX.index("ring")]
    # the same validation wafers as a run with equal odds
    val = [e["val"]["n_fail_dies"] for e in json.loads((run / "metrics.json").read_text())]
    assert val == [e["val"]["n_fail_dies"] for e in json.loads((tiny_run / "metrics.json").read_text())]
    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx")]) == 0
    card = json.loads((tmp_path / "m.card.json").read_text())
    assert card["training"]["data"]["generator_config"]["pattern_weights"] == cfg["pattern_weights"]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--pattern-weights", "scratch=2,bogus=1"], "'bogus' is not a pattern"),
        (["--pattern-weights", "scratch=2", "--data", "x.wdm"], "--pattern-weights shapes the synthetic stream"),
    ],
)
def test_the_cli_refuses_bad_pattern_weights_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], says: str
) -> None:
    run = tmp_path / "r"
    assert main(["train", "--run-dir", str(run), "--steps", "1", *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not run.exists()

"""Synthetic wafers with per-die ground truth.

``generate_record(seed, index)`` is a pure function of its arguments: wafer ``i`` of seed
``s`` is the same whichever process makes it and in whatever order, so data sets can be
made in parallel, resumed, or re-made from a seed recorded in a model card.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..records import WaferRecord
from ..taxonomy import IGNORE, default_taxonomy
from ..wafer import FAIL, NO_DIE, PASS, LabelMask, WaferMap
from .background import background_fails, sample_rate
from .geometry import make_geometry
from .patterns import GENERATORS, PRIORITY, Pattern

SYSTEMATIC = tuple(GENERATORS)


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; the defaults aim at WM-811K's spread of sizes and densities."""

    size_range: tuple[int, int] = (15, 200)
    # number of systematic patterns on a wafer: P(0), P(1), P(2), P(3)
    n_patterns_p: tuple[float, float, float, float] = (0.22, 0.5, 0.2, 0.08)
    class_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SYSTEMATIC, 1.0))
    dense_random_p: float = 0.08  # share of wafers whose scattered fails are dense ("random")
    lot_size: int = 25


def _choose_classes(rng: np.random.Generator, cfg: SynthConfig) -> list[str]:
    n = int(rng.choice(4, p=np.array(cfg.n_patterns_p) / sum(cfg.n_patterns_p)))
    names = [c for c in SYSTEMATIC if cfg.class_weights.get(c, 0) > 0]
    w = np.array([cfg.class_weights[c] for c in names], dtype=float)
    if n == 0 or not names:
        return []
    picked = rng.choice(len(names), size=min(n, len(names)), replace=False, p=w / w.sum())
    return [names[i] for i in picked]


def compose(
    rng: np.random.Generator,
    cfg: SynthConfig,
    classes: Sequence[str] | None = None,
    modes: dict[str, str] | None = None,
    dense_random: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw one wafer: returns (dies uint8, labels uint8, info about what was drawn)."""
    tax = default_taxonomy()
    geo = make_geometry(rng, cfg.size_range)
    dense = (rng.random() < cfg.dense_random_p) if dense_random is None else dense_random
    rate = sample_rate(rng, dense)
    fails = background_fails(geo, rng, rate)
    chosen = list(classes) if classes is not None else _choose_classes(rng, cfg)
    patterns: list[Pattern] = []
    for name in chosen:
        pat = GENERATORS[name](geo, rng, rate, (modes or {}).get(name))
        if pat.region.any():
            patterns.append(pat)
            fails |= rng.random(geo.shape) < pat.prob
    fails &= geo.on
    labels = np.full(geo.shape, IGNORE, dtype=np.uint8)
    labels[fails] = tax.index("random")
    for pat in sorted(patterns, key=lambda p: PRIORITY.index(p.name)):
        labels[fails & pat.region] = tax.index(pat.name)
    dies = np.where(geo.on, np.where(fails, FAIL, PASS), NO_DIE).astype(np.uint8)
    info = {
        "patterns": [f"{p.name}:{p.mode}" for p in patterns],
        "background": round(rate, 4),
        "notch": geo.notch,
        "die_pitch": geo.die_pitch,
    }
    return dies, labels, info


def generate_record(
    seed: int,
    index: int,
    cfg: SynthConfig | None = None,
    classes: Sequence[str] | None = None,
    modes: dict[str, str] | None = None,
    dense_random: bool | None = None,
) -> WaferRecord:
    """Wafer ``index`` of the data set ``seed`` (deterministic)."""
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng([seed, index])
    dies, labels, info = compose(rng, cfg, classes, modes, dense_random)
    lot, slot = divmod(index, cfg.lot_size)
    wafer = WaferMap(
        dies=dies,
        lot=f"SYN{seed:04d}-{lot:05d}",
        wafer_id=f"{slot + 1:02d}",
        product="synthetic",
        notch=info["notch"],
        die_pitch=info["die_pitch"],
        source=f"synth:seed={seed}:index={index}",
        extra={"patterns": ",".join(info["patterns"]), "background": str(info["background"])},
    )
    return WaferRecord(wafer, LabelMask(labels))


def generate(count: int, seed: int = 0, cfg: SynthConfig | None = None, start: int = 0) -> Iterator[WaferRecord]:
    """Wafers ``start .. start+count-1`` of data set ``seed``, one at a time."""
    cfg = cfg or SynthConfig()
    for i in range(start, start + count):
        yield generate_record(seed, i, cfg)


def _chunk(args: tuple[int, int, int, SynthConfig]) -> list[WaferRecord]:
    seed, start, count, cfg = args
    return list(generate(count, seed, cfg, start))


def generate_parallel(
    count: int, seed: int = 0, cfg: SynthConfig | None = None, workers: int = 0, chunk: int = 250
) -> Iterator[list[WaferRecord]]:
    """Yield chunks of records, made by a process pool; same wafers as :func:`generate`."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    cfg = cfg or SynthConfig()
    jobs = [(seed, s, min(chunk, count - s), cfg) for s in range(0, count, chunk)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _chunk(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_chunk, jobs)

"""The knobs of ``waferdesk al-sim`` (torch-free, so the CLI can show defaults and refuse bad
flags before torch loads); the simulation itself is :mod:`waferdesk.ml.al_sim`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from waferdesk.core.active import STRATEGIES
from waferdesk.core.active.scores import UNCERTAINTY_KEYS
from waferdesk.core.errors import WaferDeskError

POOL_SEED = 505
"""Generator seed of the simulated unlabelled pool (never used for training runs or tests)."""
TEST_SEED = 606
"""Generator seed of the simulation's held-out test set."""
TTA_KEYS = ("tta_mutual_info", "tta_vote_disagreement")
SCORE_KEYS = (*UNCERTAINTY_KEYS, *TTA_KEYS)


@dataclass
class SimConfig:
    pool: int = 4000
    test: int = 500
    seed_size: int = 100
    batch: int = 100
    rounds: int = 5
    steps: int = 200  # optimizer steps per round (warm start)
    seed_steps: int = 0  # steps of the seed model (0: same as steps)
    full_steps: int = 0  # steps of the whole-pool reference (0: seed_steps + rounds * steps)
    strategies: tuple[str, ...] = STRATEGIES
    score: str = "entropy_mean"  # which score ranks uncertainty / hybrid
    tta: int = 0  # dihedral symmetries for TTA disagreement (0 or 1: off; 2..8)
    encoder: str = "resnet18"
    train_batch: int = 16
    lr: float = 2e-3
    warmup: float = 0.1
    pool_factor: float = 4.0  # hybrid: k-center inside the pool_factor x batch most uncertain
    pool_seed: int = POOL_SEED
    test_seed: int = TEST_SEED
    seed: int = 0  # seed set, torch init, batches and selections
    threads: int = 1
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> SimConfig:
        c = copy.deepcopy(self)
        c.seed_steps = c.seed_steps or c.steps
        c.full_steps = c.full_steps or c.seed_steps + c.rounds * c.steps
        return c

    def check(self) -> None:
        """Raise a WaferDeskError naming the flag and value that cannot work."""
        for name in ("pool", "test", "seed_size", "batch", "rounds", "steps", "train_batch", "threads"):
            if getattr(self, name) < 1:
                raise WaferDeskError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("seed_steps", "full_steps"):
            if getattr(self, name) < 0:
                raise WaferDeskError(f"--{name.replace('_', '-')} must be 0 (default) or positive")
        need = self.seed_size + self.rounds * self.batch
        if need > self.pool:
            raise WaferDeskError(
                f"--pool {self.pool} is too small: --seed-size {self.seed_size} + --rounds {self.rounds} x "
                f"--batch {self.batch} = {need} wafers would be labelled"
            )
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise WaferDeskError(f"--strategies: unknown {bad or 'none given'}; choose from {', '.join(STRATEGIES)}")
        if len(set(self.strategies)) != len(self.strategies):
            raise WaferDeskError(f"--strategies: each strategy once, got {','.join(self.strategies)}")
        if self.score not in SCORE_KEYS:
            raise WaferDeskError(f"--score {self.score!r}: choose one of {', '.join(SCORE_KEYS)}")
        if not 0 <= self.tta <= 8:
            raise WaferDeskError(f"--tta must be 0..8 symmetries, got {self.tta}")
        if self.score in TTA_KEYS and self.tta < 2:
            raise WaferDeskError(f"--score {self.score} needs --tta 2..8 (test-time symmetries), got {self.tta}")
        for name in ("seed", "pool_seed", "test_seed"):  # numpy's generators take no negative seed
            if getattr(self, name) < 0:
                raise WaferDeskError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.pool_seed == self.test_seed:
            raise WaferDeskError(f"--pool-seed and --test-seed must differ (both {self.pool_seed})")
        if not self.lr > 0:
            raise WaferDeskError(f"--lr must be positive, got {self.lr}")

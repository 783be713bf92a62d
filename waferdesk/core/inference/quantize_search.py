"""Which blocks of a model to keep in float so that its int8 copy still agrees: a greedy search.

Why a search and not a fixed list: how much agreement int8 costs is not spread evenly over
the network, and where it is lost changes from one trained model to the next. On day 11's
shipped ResNet-50 U-Net (plain copy 99.895 %, under the 99.9 % gate), keeping one block in
float at a time gave: encoder layer2 99.918 %, decoder block 2 99.915 %, encoder layer1
99.913 %, the other six blocks 99.885-99.896 % (no better than none). Keeping the last decoder
block float, which had helped day 8's model, did nothing for day 11's. So the blocks are
chosen per model, by measuring.

A *group* is one named block of the network: the first two parts of the ONNX node names
that the torch exporter writes (``/encoder/layer2/...`` is a ResNet stage,
``/decoder/blocks.0/...`` a U-Net decoder block), holding at least one convolution or matrix
product. The search measures agreement on a *selection* set of synthetic wafers that is not
the gate's check set, so the gate still judges the chosen copy on wafers the choice never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
"""Node types whose quantization is where the speed comes from; a group needs one of them."""


def layer_groups(model: Any, skip: Sequence[str] = ()) -> dict[str, list[str]]:
    """Block name -> names of its nodes, in graph order (nodes in ``skip`` left out: they are
    float already). Top-level nodes (``/Resize``) and unnamed ones belong to no group."""
    skipped = set(skip)
    groups: dict[str, list[str]] = {}
    has_compute: set[str] = set()
    for node in model.graph.node:
        parts = node.name.strip("/").split("/")
        if not node.name or node.name in skipped or len(parts) < 3:
            continue
        key = "/" + "/".join(parts[:2])
        groups.setdefault(key, []).append(node.name)
        if node.op_type in COMPUTE_OPS:
            has_compute.add(key)
    return {k: v for k, v in groups.items() if k in has_compute}


@dataclass
class Trial:
    """One measured candidate: these groups kept float, this agreement on the selection set."""

    groups: list[str]
    agreement: float

    def to_json(self) -> dict[str, Any]:
        return {"float_groups": self.groups, "agreement": round(self.agreement, 6)}


def greedy_float_groups(
    groups: Sequence[str],
    trial: Callable[[list[str]], float],
    target: float,
    max_groups: int,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[list[str], float, list[Trial]]:
    """Add, one round at a time, the group whose float copy agrees best, until ``target``.

    ``trial(groups)`` quantizes with those groups kept float and returns the agreement on the
    selection set; ``trial([])``, the plain copy, is the baseline. Each round tries every group
    not chosen yet and keeps the best if it beats the round before; the search stops once the
    best reaches ``target`` (after at least one group: the caller searches because the plain
    copy missed the gate on its own wafers), when a round improves nothing, or after
    ``max_groups`` rounds. Returns (groups chosen, their agreement, every trial).
    """
    chosen: list[str] = []
    best = trial([])
    trials = [Trial([], best)]
    say(f"plain copy on the selection set: {best:.4%}")
    for round_no in range(1, max_groups + 1):
        scores: list[tuple[float, str]] = []
        for group in (g for g in groups if g not in chosen):
            agreement = trial([*chosen, group])
            trials.append(Trial([*chosen, group], agreement))
            scores.append((agreement, group))
            say(f"round {round_no}: {' + '.join([*chosen, group])} in float: {agreement:.4%}")
        if not scores:
            break
        agreement, group = max(scores)
        if agreement <= best:
            break  # no group helps (any more)
        chosen.append(group)
        best = agreement
        if agreement >= target:
            break
    return chosen, best, trials


__all__ = ["COMPUTE_OPS", "Trial", "greedy_float_groups", "layer_groups"]

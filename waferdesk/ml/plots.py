"""Pictures for runs and reports: training curves and confusion matrices (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from waferdesk.core.atomic import atomic_open


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: str | Path) -> Path:
    """Atomically (an interrupted write leaves the previous picture whole), then close the figure."""
    out = Path(path)
    try:
        with atomic_open(out, "wb") as fh:
            fig.savefig(fh, format=out.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return out


def plot_confusion(
    counts: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    path: str | Path,
    title: str,
    ylabel: str,
    xlabel: str,
) -> Path:
    """Row-normalised colours (each row sums to 1) with the raw counts written in the cells."""
    plt = _plt()
    cm = np.asarray(counts, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.85 * len(cols), 1.2 + 0.6 * len(rows)), dpi=110)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                txt = f"{int(cm[i, j])}" if cm[i, j] < 1e5 else f"{cm[i, j] / 1e3:.0f}k"
                ax.text(
                    j, i, txt, ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.55 else "black"
                )
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_curves(history: list[dict[str, Any]], train_log: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Loss and learning rate, synthetic validation IoU, and real-map accuracy / macro-F1 per step."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    ax = axes[0]
    if train_log:
        s = np.array([t["step"] for t in train_log])
        loss = np.array([t["loss"] for t in train_log])
        ax.plot(s, loss, lw=0.5, alpha=0.35, color="C0")
        k = max(1, len(loss) // 60)
        if len(loss) > k:
            sm = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(s[k - 1 :], sm, color="C0", label="train loss (smoothed)")
    if history:
        ax.plot([h["step"] for h in history], [h["val_loss"] for h in history], "o-", color="C1", label="val loss")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("loss")
    ax2 = ax.twinx()
    if train_log:
        ax2.plot([t["step"] for t in train_log], [t["lr"] for t in train_log], color="C2", lw=0.8, label="lr")
    ax2.set_ylabel("learning rate", color="C2")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    if history:
        steps = [h["step"] for h in history]
        ax.plot(steps, [h["val"]["miou"] for h in history], "k-o", lw=2, label="mIoU")
        for name in history[0]["val"]["class_iou"]:
            ax.plot(steps, [h["val"]["class_iou"][name] or 0 for h in history], lw=0.9, label=name)
    ax.set_ylim(0, 1)
    ax.axhline(0.97, ls="--", color="grey", lw=0.7)
    ax.set_xlabel("step")
    ax.set_title("synthetic validation: IoU over failing dies")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax = axes[2]
    real = [h for h in history if h.get("real")]
    if real:
        steps = [h["step"] for h in real]
        ax.plot(steps, [h["real"]["accuracy"] for h in real], "o-", label="accuracy")
        ax.plot(steps, [h["real"]["macro_f1"] for h in real], "s-", label="macro-F1")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_title("real WM-811K subset (never trained on)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_al_curves(result: dict[str, Any], path: str | Path) -> Path:
    """mIoU on the test set vs labelled wafers, one line per strategy, with the full-pool
    reference and its 95 % target as horizontal lines (``waferdesk al-sim``)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, (name, curve) in enumerate(result["curves"].items()):
        xs = [p["labelled"] for p in curve]
        ys = [p["miou"] or 0.0 for p in curve]
        ax.plot(xs, ys, "o-", color=f"C{i}", lw=1.8, ms=4, label=name)
    ref = result.get("reference")
    if ref and ref.get("miou") is not None:
        ax.axhline(
            ref["miou"], color="black", lw=1.2, label=f"whole pool ({ref['labelled']} labels): {ref['miou']:.3f}"
        )
        ax.axhline(ref["target_miou"], color="black", lw=0.9, ls="--", label=f"95 % of it: {ref['target_miou']:.3f}")
    ax.set_xlabel("labelled wafers")
    ax.set_ylabel("test mIoU (failing dies)")
    cfg = result["config"]
    ax.set_title(
        f"Active learning on a synthetic pool of {result['pool']['size']} wafers "
        f"({cfg['encoder']} U-Net, {cfg['steps']} warm-start steps/round, score {cfg['score']})",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(plt, fig, path)

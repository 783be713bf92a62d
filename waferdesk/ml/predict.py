"""Run the torch network on wafers exactly as the ONNX engine does (encode, run, decode).

Used while training (validation on synthetic and real maps) and by the export check; the
shipped path is :class:`waferdesk.core.inference.Segmenter` over the ONNX file. Both encode
with :func:`waferdesk.core.encoding.encode_batch`, decode per die by block mean, take the
argmax on failing dies and derive the verdict with :func:`waferdesk.core.results.summarize`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from waferdesk.core.encoding import canvas_for, decode, encode_batch
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import FAIL, LabelMask, WaferMap

from .data import batch_for
from .evaluate import Predicted, predicted_from_mask


@torch.no_grad()
def die_logits(
    model: torch.nn.Module, grids: Sequence[np.ndarray], batch_size: int = 16, device: str | torch.device = "cpu"
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-die logits (K, rows, cols) and embeddings (E,) of each grid, in input order."""
    was_training = model.training
    model.eval()
    by_canvas: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, g in enumerate(grids):
        by_canvas[canvas_for(g.shape)].append(i)
    logits: list[np.ndarray | None] = [None] * len(grids)
    embs: list[np.ndarray | None] = [None] * len(grids)
    for canvas, idx in by_canvas.items():
        step = batch_for(canvas, batch_size, 1) * 2  # inference needs no gradients: larger batches fit
        for s in range(0, len(idx), step):
            chunk = idx[s : s + step]
            x, places = encode_batch([grids[i] for i in chunk])
            out, emb = model(torch.from_numpy(x).to(device))
            out_np, emb_np = out.float().cpu().numpy(), emb.float().cpu().numpy()
            for j, i in enumerate(chunk):
                logits[i] = decode(out_np[j], places[j]).copy()
                embs[i] = emb_np[j]
    if was_training:
        model.train()
    return logits, embs  # type: ignore[return-value]


def predict(
    model: torch.nn.Module, wafers: Sequence[WaferMap], batch_size: int = 16, device: str | torch.device = "cpu"
) -> list[Predicted]:
    """Mask (argmax on failing dies) and verdict of each wafer."""
    logits, _ = die_logits(model, [w.dies for w in wafers], batch_size, device)
    out = []
    for w, z in zip(wafers, logits, strict=True):
        lab = np.where(w.dies == FAIL, z.argmax(axis=0), IGNORE).astype(np.uint8)
        out.append(predicted_from_mask(w, LabelMask(lab)))
    return out

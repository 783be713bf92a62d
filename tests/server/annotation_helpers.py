"""Helpers of the annotation / queue / COCO tests: wafers with known ground truth, payloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from server_helpers import upload

from waferdesk.core.formats import read_any


def seed_wafers(client: TestClient, headers: dict, path: Path) -> dict[int, np.ndarray]:
    """Upload a synthetic .wdm; wafer id -> its ground-truth label grid (complete, valid)."""
    truth = {r.wafer.content_hash(): r.mask.labels for r in read_any(path)}
    out = upload(client, headers, path)
    return {w["id"]: truth[w["content_hash"]] for w in out["wafers"]}


def rle(labels: np.ndarray) -> dict:
    flat = np.asarray(labels).ravel()
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    runs = np.diff(np.r_[starts, flat.size])
    return {"rle": [[int(v), int(n)] for v, n in zip(flat[starts], runs, strict=True)]}


def decode(payload: dict, shape: tuple[int, int]) -> np.ndarray:
    runs = np.asarray(payload["rle"]).reshape(-1, 2)
    return np.repeat(runs[:, 0], runs[:, 1]).astype(np.uint8).reshape(shape)


def error(r) -> dict:
    return r.json()["error"]

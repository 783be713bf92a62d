"""A content-addressed cache of predictions: the same wafer is never predicted twice.

The key is what determines the answer: the die grid the model sees
(:meth:`WaferMap.grid_hash`, shape + die codes), the model file (its sha256) and the number
of views it ran on (:mod:`.views`; part of :attr:`Prediction.model_key`). Metadata
(lot, wafer id, source) does not change the result, so the same grid read from another file
or under another lot is a hit; the returned prediction carries the asking wafer's own
``content_hash``. An in-process LRU bounded by entries and bytes sits in front of an optional
directory layer (one ``.npz`` per prediction, written atomically, oldest pruned past a byte
bound) that survives restarts: the CLI points it at the user cache folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..results import Verdict, WaferSummary
from ..wafer import LabelMask, WaferMap
from .prediction import Prediction


def _nbytes(p: Prediction) -> int:
    return int(p.probs.nbytes + p.mask.labels.nbytes + p.embedding.nbytes + 1024)


class PredictionCache:
    """Thread-safe LRU of :class:`Prediction` keyed by (grid hash, model sha256).

    ``directory``: optional on-disk layer; ``max_disk_bytes`` bounds it (oldest files pruned).
    """

    def __init__(
        self,
        max_items: int = 4096,
        max_bytes: int = 256 << 20,
        directory: str | Path | None = None,
        max_disk_bytes: int = 2 << 30,
    ) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory else None
        self.max_disk_bytes = max_disk_bytes
        self._mem: OrderedDict[tuple[str, str], Prediction] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._writes = 0
        self.hits = 0
        self.misses = 0
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._mem)

    @staticmethod
    def key_of(wafer: WaferMap | str, model_sha256: str) -> tuple[str, str]:
        grid = wafer if isinstance(wafer, str) else wafer.grid_hash()
        return (grid, model_sha256)

    # -- public API ------------------------------------------------------------------------
    def get(self, wafer: WaferMap, model_key: str, grid_hash: str | None = None) -> Prediction | None:
        """The cached prediction for this wafer under this model (``cached=True``), or None.

        ``model_key``: the model's sha256, or :attr:`Prediction.model_key` when it ran on several views.
        """
        key = self.key_of(grid_hash or wafer, model_key)
        with self._lock:
            pred = self._mem.get(key)
            if pred is not None:
                self._mem.move_to_end(key)
        if pred is None and self.directory:
            pred = self._load(key)
            if pred is not None:
                self._remember(key, pred)
        with self._lock:
            if pred is None:
                self.misses += 1
                return None
            self.hits += 1
        return replace(pred, cached=True, wafer_hash=wafer.content_hash())

    def put(self, wafer: WaferMap | str, pred: Prediction) -> None:
        key = self.key_of(wafer, pred.model_key)
        self._remember(key, pred)
        if self.directory:
            self._store(key, pred)

    def clear(self) -> None:
        with self._lock:
            self._mem.clear()
            self._bytes = 0

    # -- memory layer ----------------------------------------------------------------------
    def _remember(self, key: tuple[str, str], pred: Prediction) -> None:
        size = _nbytes(pred)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._mem.pop(key, None)
            if old is not None:
                self._bytes -= _nbytes(old)
            self._mem[key] = pred
            self._bytes += size
            while self._mem and (len(self._mem) > self.max_items or self._bytes > self.max_bytes):
                _, dropped = self._mem.popitem(last=False)
                self._bytes -= _nbytes(dropped)

    # -- disk layer ------------------------------------------------------------------------
    def _path(self, key: tuple[str, str]) -> Path:
        assert self.directory is not None
        grid, model = key
        sha, _, variant = model.partition("+")
        return self.directory / (sha[:16] + (f"+{variant}" if variant else "")) / f"{grid}.npz"

    def _store(self, key: tuple[str, str], pred: Prediction) -> None:
        path = self._path(key)
        meta = {
            "uncertainty": pred.uncertainty,
            "model_version": pred.model_version,
            "model_sha256": pred.model_sha256,
            "provider": pred.provider,
            "latency_ms": pred.latency_ms,
            "wafer_hash": pred.wafer_hash,
            "views": pred.views,
            "counts": pred.summary.counts,
            "n_fail": pred.summary.n_fail,
            "n_dies": pred.summary.n_dies,
            "verdict": list(pred.summary.verdict.classes),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    mask=pred.mask.labels,
                    probs=pred.probs,
                    embedding=pred.embedding,
                    meta=np.array(json.dumps(meta)),
                )
            os.replace(tmp, path)
        except OSError:
            return  # a cache that cannot write is only slower, never an error
        self._writes += 1
        if self._writes % 64 == 0:
            self.prune()

    def _load(self, key: tuple[str, str]) -> Prediction | None:
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                pred = Prediction(
                    mask=LabelMask(z["mask"]),
                    probs=np.array(z["probs"], dtype=np.float32),
                    summary=WaferSummary(
                        counts={str(k): int(v) for k, v in meta["counts"].items()},
                        n_fail=int(meta["n_fail"]),
                        n_dies=int(meta["n_dies"]),
                        verdict=Verdict(tuple(meta["verdict"])),
                    ),
                    uncertainty={str(k): float(v) for k, v in meta["uncertainty"].items()},
                    embedding=np.array(z["embedding"], dtype=np.float32),
                    model_version=str(meta["model_version"]),
                    model_sha256=str(meta["model_sha256"]),
                    provider=str(meta["provider"]),
                    latency_ms=float(meta["latency_ms"]),
                    wafer_hash=str(meta["wafer_hash"]),
                    views=int(meta.get("views", 1)),
                )
        except FileNotFoundError:
            return None
        except Exception:  # corrupt or foreign file: drop it, predict again
            path.unlink(missing_ok=True)
            return None
        if pred.model_key != key[1]:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return pred

    def prune(self) -> None:
        """Delete the least recently used files until the directory is under its byte bound."""
        if not self.directory:
            return
        files = []
        for f in self.directory.glob("*/*.npz"):
            try:
                st = f.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, f))
        total = sum(s for _, s, _ in files)
        for _, size, f in sorted(files, key=lambda t: t[0]):
            if total <= self.max_disk_bytes:
                break
            f.unlink(missing_ok=True)
            total -= size

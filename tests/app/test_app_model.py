"""The app's document layer works without Qt (napari-style) and does what the widgets show."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from waferdesk.app.model.layers import LayerStyle, compose, die_entropy, recompose_cells
from waferdesk.app.model.predictions import DieDetails, ModelResult, ProbabilityCache
from waferdesk.app.model.workspace import Status, Workspace
from waferdesk.client.drafts import DraftStore
from waferdesk.core.results import summarize
from waferdesk.core.taxonomy import IGNORE
from waferdesk.core.wafer import LabelMask

REPO = Path(__file__).resolve().parents[2]


def test_model_layer_imports_without_qt() -> None:
    code = textwrap.dedent(
        """
        import sys, importlib.abc, importlib, pkgutil
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import waferdesk.app.model as m
        for info in pkgutil.walk_packages(m.__path__, "waferdesk.app.model."):
            importlib.import_module(info.name)
        import waferdesk.client
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_workspace_restores_drafts_by_content(tmp_path, wafer_file) -> None:
    store = DraftStore(tmp_path / "d.sqlite3")
    ws = Workspace(store)
    report = ws.load([wafer_file, tmp_path / "missing.wdm"])
    assert len(report.added) == 4 and len(report.errors) == 1 and "missing.wdm" in report.errors[0]
    first = ws.entries[0]
    first.labels[4, 5] = 3
    store.save(first.key, first.labels, first.title, str(first.source))
    # the same wafers from a copy of the file find the draft again
    copy = tmp_path / "copy.wdm"
    copy.write_bytes(wafer_file.read_bytes())
    ws2 = Workspace(store)
    report2 = ws2.load([copy])
    assert report2.recovered == 1 and ws2.entries[0].status is Status.DRAFT
    assert ws2.entries[0].labels[4, 5] == 3
    assert ws2.load([copy]).duplicates == 4


def test_compose_modes_and_partial_redraw(wafer_file) -> None:
    ws = Workspace()
    ws.load([wafer_file])
    e = ws.entries[1]  # synthetic, with a mask
    style = LayerStyle()
    full = compose(e.wafer.dies, e.labels, style)
    # hiding a class leaves its dies in the plain fail colour
    cls = int(e.labels[e.labels != IGNORE][0])
    style.visible[cls] = False
    hidden = compose(e.wafer.dies, e.labels, style)
    where = e.labels == cls
    assert not np.array_equal(full[where], hidden[where])
    style.visible[:] = True
    # a partial redraw equals a full one
    rows, cols = np.nonzero(e.wafer.dies == 2)
    e.labels[rows[:5], cols[:5]] = 0
    recompose_cells(full, e.wafer.dies, e.labels, style, rows[:5], cols[:5])
    assert np.array_equal(full, compose(e.wafer.dies, e.labels, style))
    # uncertainty: a sure die is dark, an unsure one bright
    k = 8
    probs = np.full((k, *e.wafer.shape), 1 / k, np.float32)
    probs[:, rows[0], cols[0]] = 0
    probs[0, rows[0], cols[0]] = 1
    ent = die_entropy(probs)
    assert ent[rows[0], cols[0]] < 0.01 and abs(ent[rows[1], cols[1]] - 1) < 1e-4
    img = compose(e.wafer.dies, None, style, "uncertainty", ent)
    assert img[rows[0], cols[0], :3].sum() < img[rows[1], cols[1], :3].sum()


def test_probability_cache_evicts_least_recent_details(wafer_file) -> None:
    ws = Workspace()
    ws.load([wafer_file])
    results = []
    e = ws.entries[0]
    for _ in range(4):
        probs = np.full((8, *e.wafer.shape), 0.125, np.float32)
        results.append(
            ModelResult(
                e.labels, summarize(e.wafer, LabelMask(e.labels)), {}, "v", "cpu", 1.0, DieDetails(probs, probs[0])
            )
        )
    one = results[0].details.nbytes
    cache = ProbabilityCache(budget_bytes=int(one * 2.5))
    cache.touch(results[0])
    cache.touch(results[0])
    assert cache.used_bytes == one
    for r in results[1:]:
        cache.touch(r)
    assert results[0].details is None  # evicted first
    assert results[-1].details is not None and cache.used_bytes <= cache.budget

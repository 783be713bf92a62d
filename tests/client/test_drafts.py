"""The drafts database and the per-user folders (no Qt)."""

from __future__ import annotations

import sqlite3

import numpy as np

from waferdesk.client import paths
from waferdesk.client.drafts import SAVED, DraftStore
from waferdesk.client.work import Capabilities, LocalSession, Role


def test_paths_follow_waferdesk_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WAFERDESK_HOME", str(tmp_path))
    assert paths.data_dir() == tmp_path / "data" and paths.data_dir().is_dir()
    assert paths.config_dir().parent == tmp_path and paths.log_dir().parent == tmp_path
    assert paths.drafts_path().parent == tmp_path / "data"


def test_save_load_update_delete(tmp_path) -> None:
    store = DraftStore(tmp_path / "d.sqlite3")
    labels = np.full((30, 17), 255, np.uint8)
    labels[3:9, 2] = 4
    store.save("k1", labels, "LOT/01", "/data/a.wdm")
    d = store.load("k1")
    assert d is not None and d.status == "draft" and d.name == "LOT/01"
    assert np.array_equal(d.labels, labels) and d.labels.flags.writeable
    labels[0, 0] = 1
    store.save("k1", labels, "LOT/01", "/data/a.wdm", SAVED)
    assert store.load("k1").labels[0, 0] == 1 and store.load("k1").status == SAVED
    assert store.keys() == {"k1"}
    store.delete("k1")
    assert store.load("k1") is None and store.keys() == set()
    store.close()


def test_a_damaged_row_is_dropped_not_fatal(tmp_path) -> None:
    path = tmp_path / "d.sqlite3"
    store = DraftStore(path)
    store.save("k", np.zeros((4, 4), np.uint8))
    db = sqlite3.connect(path)
    db.execute("UPDATE drafts SET labels = x'00ff'")
    db.commit()
    db.close()
    assert store.load("k") is None and store.keys() == set()


def test_roles_map_to_capabilities() -> None:
    assert Capabilities.for_role(Role.VIEWER) == Capabilities(False, False, False)
    assert Capabilities.for_role(Role.ANNOTATOR) == Capabilities(True, True, False)
    assert Capabilities.for_role(Role.ENGINEER).sees_review
    assert LocalSession().capabilities.can_edit and not LocalSession().capabilities.sees_queue

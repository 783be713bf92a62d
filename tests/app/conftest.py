"""Fixtures of the desktop tests: per-test user folders, wafer files with known dies, and a
main window driven through real (offscreen) Qt events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from waferdesk.core.formats import write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import generate_record
from waferdesk.core.wafer import FAIL, NO_DIE, PASS, WaferMap


def known_dies() -> np.ndarray:
    """A 20x20 wafer: a disc of dies, a 3x4 fail block at rows 4-6 cols 5-8, a diagonal pair at
    (12, 12)-(13, 13), a lone fail at (15, 3); everything else on the disc passes."""
    yy, xx = np.mgrid[0:20, 0:20]
    on = (yy - 9.5) ** 2 + (xx - 9.5) ** 2 <= 9.8**2
    dies = np.where(on, PASS, NO_DIE).astype(np.uint8)
    dies[4:7, 5:9] = FAIL
    dies[12, 12] = dies[13, 13] = FAIL
    dies[15, 3] = FAIL
    return dies


@pytest.fixture
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, drafts and logs of this test only (never the user's real folders)."""
    home = tmp_path / "home"
    monkeypatch.setenv("WAFERDESK_HOME", str(home))
    return home


@pytest.fixture
def wafer_file(tmp_path: Path) -> Path:
    """known_dies() as lot KNOWN wafer 01, then three synthetic wafers with masks."""
    recs = [WaferRecord(WaferMap(dies=known_dies(), lot="KNOWN", wafer_id="01", notch="down"))]
    recs += [generate_record(11, i) for i in range(3)]
    return write_wdm(tmp_path / "wafers.wdm", recs)


@pytest.fixture
def window(qtbot, app_home: Path):
    from waferdesk.app.mainwindow import MainWindow
    from waferdesk.client.drafts import DraftStore

    store = DraftStore()
    win = MainWindow(store, start_engine=False)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()
    store.close()

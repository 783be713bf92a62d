"""Open the app on demo wafers in a given state, for the README screenshots.

    ../shared/tools/screenshot.sh docs/screenshots/inspect.png 8 \
        env PYTHONPATH=$PWD WAFERDESK_HOME=/tmp/wd-shots python docs/screenshots/scene.py inspect

Scenes: inspect (a synthetic wafer with its ground-truth labels), zoom (the same, zoomed in,
brush cursor and hover readout), annotate (labelling a real
WM-811K map with the brush, polygon in progress), lot (lot view of 25 real wafers),
shortcuts (the Help sheet), model (the shipped model's mask on a real WM-811K map), empty
(no files). Demo files go to $WAFERDESK_HOME/demo.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer

from waferdesk.app.main import make_application
from waferdesk.app.mainwindow import MainWindow
from waferdesk.client.drafts import DraftStore
from waferdesk.core.formats import write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import SynthConfig, generate_record
from waferdesk.core.wafer import WaferMap

_REPO = Path(__file__).resolve().parents[2]
REAL = next(
    (p / "shared" / "data" / "wm811k-val.npz" for p in (_REPO.parent, _REPO.parent.parent) if (p / "shared").is_dir()),
    Path("/nonexistent"),
)


def demo_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    synth = folder / "synthetic-lot.wdm"
    if not synth.exists():
        cfg = SynthConfig(size_range=(90, 160))
        picks = (18, 11, 29, 8, 21, 3, 7, 20, 22, 24, 15, 6, 27, 17)  # a variety of patterns, seed 21
        write_wdm(synth, [generate_record(21, i, cfg) for i in picks])
    out = [synth]
    if REAL.is_file():
        real = folder / "wm811k-lot.wdm"
        if not real.exists():
            d = np.load(REAL)
            shapes, offs, flat = d["shapes"], d["offsets"], d["maps_flat"]
            want = (38, 36)
            idx = [i for i in range(len(shapes)) if tuple(shapes[i]) == want][:25]
            recs = [
                WaferRecord(
                    WaferMap(
                        dies=flat[offs[i] : offs[i + 1]].reshape(want),
                        lot="WM811K-LOT7",
                        wafer_id=f"{k + 1:02d}",
                        label=str(d["labels"][i]),
                        source="WM-811K validation split",
                    )
                )
                for k, i in enumerate(idx)
            ]
            write_wdm(real, recs)
        out.append(real)
    return out


def main(scene: str) -> None:
    home = Path(os.environ.get("WAFERDESK_HOME", "/tmp/wd-shots"))
    app = make_application()
    drafts = home / "scene-drafts.sqlite3"
    for leftover in home.glob("scene-drafts.sqlite3*"):
        leftover.unlink()  # every scene starts without drafts of an earlier one
    win = MainWindow(DraftStore(drafts))
    win.setGeometry(0, 0, 1600, 1000)
    win.show()
    if scene != "empty":
        win.open_paths([str(p) for p in demo_files(home / "demo")])

    def stage() -> None:
        if scene in ("inspect", "zoom"):
            synth = [e for e in win.ws.entries if e.lot.startswith("SYN")]
            best = synth[0] if scene == "inspect" else synth[1]
            win.browser.select(best)
            win.set_tool("navigate")
            if scene == "zoom":
                rows, cols = np.nonzero(best.labels == 3)  # along the scratch
                r0, c0 = int(np.median(rows)), int(np.median(cols))
                win.view.vb.setRange(xRange=(c0 - 14, c0 + 14), yRange=(r0 - 10, r0 + 10), padding=0)
                win.set_active_class(4)
                win.side.tool_options.size.setValue(3)
                pos = win.view.scene_pos_of(r0 + 0.5, c0 + 0.5)
                win.view._mouse_moved(pos)
        elif scene == "annotate":
            real = [e for e in win.ws.entries if e.lot.startswith("WM811K")]
            if real:
                win.browser.select(real[4])
            e = win.doc.current
            win.set_active_class(0)
            edge = np.where(e.wafer.dies == 2, 0, 255).astype(np.uint8)
            rows, cols = np.nonzero(e.wafer.dies)
            cy, cx = rows.mean(), cols.mean()
            rr, cc = np.mgrid[: e.wafer.shape[0], : e.wafer.shape[1]]
            edge[np.hypot(rr - cy, cc - cx) < 0.62 * (rows.max() - rows.min()) / 2] = 255
            win.doc.replace_labels(e, np.where(e.wafer.dies == 2, edge, 255).astype(np.uint8), "demo")
            win.set_active_class(7)
            win.tools["brush"].settings.brush_size = 3
            win.side.tool_options.size.setValue(3)
            win.set_tool("polygon")
            for r, c in [(12.0, 10.0), (12.5, 22.0), (24.0, 24.0)]:
                win.tools["polygon"].click((r, c))
            win.tools["polygon"].hover((25.0, 12.0))
        elif scene == "lot":
            real = [e for e in win.ws.entries if e.lot.startswith("WM811K")]
            if real:
                win.browser.select(real[0])
            win.tabs.setCurrentWidget(win.lot_view)
        elif scene == "model":
            show_model_on_real_wafer()
        elif scene == "shortcuts":
            win.show_shortcuts()
            win.shortcuts_dialog.move(win.geometry().center() - win.shortcuts_dialog.rect().center())

    def show_model_on_real_wafer() -> None:
        """Wait for the shipped model, run it on every wafer, show a real map in Model mode."""
        if not win.engine.available:
            QTimer.singleShot(300, show_model_on_real_wafer)
            return
        win.run_all(quiet=True)
        real = [e for e in win.ws.entries if e.lot.startswith("WM811K")]
        pick = next((e for e in real if e.wafer.label == "Edge-Ring"), real[0] if real else None)
        if pick is not None:
            win.browser.select(pick)
            show_mask(pick)

    def show_mask(entry) -> None:  # the mode needs the prediction, which arrives from a worker thread
        if entry.prediction is None:
            QTimer.singleShot(200, lambda: show_mask(entry))
            return
        win.set_mode("prediction")

    QTimer.singleShot(600, stage)
    sys.exit(app.exec())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "inspect")

"""``waferdesk app --self-test``: the real window, a real wafer on screen, no one watching.

Installers and the bundle's smoke test run it on a machine with no Python and often no
display: it starts the app as a user would (logging, drafts, settings in the per-user
folders), opens the sample wafers (or the given files), checks in the pixels of the wafer
view that the current wafer is drawn (the pass and fail colours of its picture are on
screen, not just the background), then, unless told not to, waits for the model's
prediction of that wafer. It prints one line of JSON and returns 0 when all of that worked,
1 otherwise. A model that is present but does not run is a failure; no model at all (a
bundle built without the default model) is reported, not failed, unless ``--model`` named one.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

STEP_S = 0.01


class SelfTestError(Exception):
    """A check of the self-test failed (the message says which)."""


def process_age_s() -> float | None:
    """Seconds since this process started, by the kernel's clock (Linux; None elsewhere).

    It includes what happens before Python runs (a bundle's bootloader unpacking nothing,
    loading libpython), so it is the start-up a person waits for.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 3)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _use_offscreen_without_display() -> None:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def _wait_until(app, cond: Callable[[], bool], deadline: float, what: str) -> None:
    while not cond():
        if time.monotonic() > deadline:
            raise SelfTestError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(STEP_S)
    app.processEvents()


def _screen_rgb(widget) -> np.ndarray:
    from PySide6.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    raw = np.frombuffer(img.constBits(), np.uint8, count=h * bpl).reshape(h, bpl)
    # a copy: the buffer belongs to ``img``, freed when this function returns (a view would crash)
    return raw[:, : w * 4].reshape(h, w, 4)[..., :3].copy()


def _commonest(colours: np.ndarray) -> np.ndarray:
    values, counts = np.unique(colours.reshape(-1, 3), axis=0, return_counts=True)
    return values[int(np.argmax(counts))]


def check_drawn(window, min_pixels: int = 16) -> dict:
    """Prove the current wafer is on screen: its pass and fail colours appear in the view's pixels."""
    from ..core.wafer import FAIL, PASS

    entry, rgba = window.view.entry, window.view.rgba
    if entry is None or rgba is None:
        raise SelfTestError("no wafer picture in the view")
    screen = _screen_rgb(window.view).astype(np.int16)
    found = {}
    for name, code in (("pass", PASS), ("fail", FAIL)):
        cells = entry.wafer.dies == code
        if not cells.any():
            continue
        colour = _commonest(rgba[..., :3][cells]).astype(np.int16)
        hits = int((np.abs(screen - colour).max(axis=-1) <= 3).sum())
        found[name] = {"rgb": colour.tolist(), "pixels": hits}
        if hits < min_pixels:
            raise SelfTestError(
                f"{name} dies of {entry.title} not on screen: colour {colour.tolist()} in {hits} of "
                f"{screen.shape[0] * screen.shape[1]} view pixels"
            )
    if not found:
        raise SelfTestError(f"{entry.title} has no dies to draw")
    return found


def _wait_drawn(app, window, deadline: float) -> dict:
    """Check the pixels until the wafer shows (layout and the view's range settle over a few
    event-loop turns); the last reason is the error when it never does."""
    while True:
        app.processEvents()
        try:
            return check_drawn(window)
        except SelfTestError as exc:
            if time.monotonic() > deadline:
                raise SelfTestError(f"timed out waiting for the wafer to be drawn: {exc}") from None
        time.sleep(STEP_S)


def _status_texts(window) -> list[str]:
    from PySide6.QtWidgets import QLabel

    return [w.text() for w in window.statusBar().findChildren(QLabel) if w.text()]


def modules_outside(folder: Path) -> list[str]:
    """Loaded modules whose file is not under ``folder`` (a bundle must need nothing else).

    Modules with a relative ``__file__`` are embedded in a binary of the bundle (PyInstaller's
    bootstrap, shiboken's signature support), not read from any folder.
    """
    base = folder.resolve()
    out = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).is_absolute() and not Path(file).resolve().is_relative_to(base):
            out.append(name)
    return sorted(out)


def _run(result: dict, paths: list[str], model_path: str | None, use_model: bool, deadline: float) -> None:
    from ..client.drafts import DraftStore
    from ..client.paths import config_dir, data_dir
    from ..core.modelcard import default_model_path
    from .main import make_application, sample_paths, setup_logging
    from .mainwindow import MainWindow

    log_file = setup_logging()
    result["paths"] = {
        "log": str(log_file),
        "config": str(config_dir()),
        "data": str(data_dir()),
        "program": str(Path(sys.executable).resolve().parent),
    }
    phases = result.setdefault("phases", {})
    phases["imports"] = process_age_s()
    app = make_application()
    result["qt_platform"] = app.platformName()
    phases["qt_application"] = process_age_s()
    files = [Path(p) for p in paths] or sample_paths()
    if not files:
        raise SelfTestError("no wafer files given and no sample wafers in the resources")
    store = DraftStore()
    window = MainWindow(store, model_path=model_path, start_engine=use_model)
    phases["main_window"] = process_age_s()
    try:
        window.show()
        window.open_paths(files)
        phases["files_opened"] = process_age_s()
        entry = window.doc.current
        if entry is None:
            raise SelfTestError(f"no wafer could be opened from {', '.join(map(str, files))}")
        result["drawn"] = _wait_drawn(app, window, deadline)
        result["drawn_s"] = process_age_s()
        result["wafer"] = {"title": entry.title, "shape": list(entry.wafer.shape), "wafers_open": len(window.ws)}
        if use_model:
            _wait_until(app, lambda: window.engine.available is not None, deadline, "the model to load")
            if window.engine.available:
                _wait_until(app, lambda: entry.prediction is not None, deadline, "the model's prediction")
                summary = entry.predicted_summary()
                info = getattr(window, "model_info", {})
                result["model"] = {
                    "status": "ran",
                    "version": entry.prediction.model_version,
                    "provider": info.get("provider"),
                    "provider_note": info.get("provider_note"),
                    "verdict": str(getattr(summary, "verdict", summary)),
                }
            else:
                expected = model_path is not None or default_model_path().is_file()
                result["model"] = {"status": "failed" if expected else "absent", "why": window.model_label.toolTip()}
                if expected:
                    raise SelfTestError(f"the model did not load: {window.model_label.toolTip()}")
        else:
            result["model"] = {"status": "skipped"}
        result["status_bar"] = _status_texts(window)
        if getattr(sys, "frozen", False):
            result["modules_outside_bundle"] = modules_outside(Path(sys._MEIPASS))  # type: ignore[attr-defined]
    finally:
        window.close()
        store.close()
        app.processEvents()


def run_self_test(
    paths: list[str] | None = None, model_path: str | None = None, use_model: bool = True, timeout_s: float = 120.0
) -> int:
    """Run the self-test; print its JSON line; 0 when it passed, 1 when it did not."""
    from ..core.buildinfo import build_info

    deadline = time.monotonic() + timeout_s
    if sys.stderr is not None:
        faulthandler.enable()  # a crash in Qt or ONNX Runtime leaves the Python stacks on stderr
    _use_offscreen_without_display()
    result: dict = {"self_test": "waferdesk", "ok": False, **build_info().as_dict()}
    result["phases"] = {"python_ready": process_age_s()}  # process age at each step (Linux)
    try:
        _run(result, list(paths or []), model_path, use_model, deadline)
        result["ok"] = True
    except SelfTestError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # anything else is a failure too, reported in the JSON line
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["total_s"] = process_age_s()
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1

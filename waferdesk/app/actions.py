"""Every command of the window with its menu, text and shortcuts, in one table.

The menus, the toolbar and the Help > Keyboard shortcuts sheet are all built from
:data:`ACTIONS`, so the sheet cannot drift from what the keys really do. The class keys come
from the taxonomy, never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QLabel, QScrollArea, QVBoxLayout, QWidget

from ..core.taxonomy import default_taxonomy


@dataclass(frozen=True)
class ActionSpec:
    id: str
    menu: str
    text: str
    shortcuts: tuple[str, ...] = ()
    tip: str = ""
    checkable: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open", "File", "Open files…", ("Ctrl+O",), "open wafer files (any supported format)"),
    ActionSpec("open_folder", "File", "Open folder…", ("Ctrl+Shift+O",), "open every wafer file in a folder"),
    ActionSpec("save", "File", "Save labels", ("Ctrl+S",), "write the labelled wafers to a .wdm labels file"),
    ActionSpec("save_as", "File", "Save labels as…", ("Ctrl+Shift+S",)),
    ActionSpec("export_png", "File", "Export view as PNG…", ("Ctrl+E",)),
    ActionSpec("export_csv", "File", "Export results as CSV…"),
    ActionSpec("export_coco", "File", "Export labels as COCO…"),
    ActionSpec("quit", "File", "Quit", ("Ctrl+Q",)),
    ActionSpec("accept", "Edit", "Accept prediction", ("A",), "replace this wafer's labels by the model's mask"),
    ActionSpec("clear_labels", "Edit", "Clear labels of this wafer", ("Shift+Del",)),
    ActionSpec("clear_history", "Edit", "Clear undo history of this wafer"),
    ActionSpec("navigate", "Tools", "Navigate", ("V",), "drag to pan, wheel to zoom", True),
    ActionSpec("brush", "Tools", "Brush", ("B",), "paint whole failing dies with the active class", True),
    ActionSpec("eraser", "Tools", "Eraser", ("E",), "remove labels from dies", True),
    ActionSpec(
        "polygon", "Tools", "Polygon", ("P",), "click vertices; double-click, Enter or the first vertex closes", True
    ),
    ActionSpec("fill", "Tools", "Fill cluster", ("G",), "label the failing dies connected to the one clicked", True),
    ActionSpec("brush_bigger", "Tools", "Larger brush", ("]",)),
    ActionSpec("brush_smaller", "Tools", "Smaller brush", ("[",)),
    ActionSpec("brush_shape", "Tools", "Circle / square brush", ("O",)),
    ActionSpec("finish", "Tools", "Close polygon", ("Return", "Enter")),
    ActionSpec("cancel", "Tools", "Cancel polygon or stroke", ("Esc",)),
    ActionSpec("fit", "View", "Fit wafer", ("F", "Home")),
    ActionSpec("zoom_in", "View", "Zoom in", ("+", "=")),
    ActionSpec("zoom_out", "View", "Zoom out", ("-",)),
    ActionSpec("mode_labels", "View", "Show labels", ("L",), "", True),
    ActionSpec("mode_prediction", "View", "Show model mask", ("M",), "", True),
    ActionSpec("mode_uncertainty", "View", "Show uncertainty", ("U",), "per-die entropy of the model", True),
    ActionSpec("toggle_overlay", "View", "Hide / show overlay", ("H",)),
    ActionSpec("lot_view", "View", "Lot view", ("Ctrl+L",), "fail rate per die position across the lot"),
    ActionSpec("next", "Navigate", "Next wafer", ("PgDown", "N")),
    ActionSpec("previous", "Navigate", "Previous wafer", ("PgUp", "Shift+N")),
    ActionSpec("find", "Navigate", "Filter wafers", ("Ctrl+F",)),
    ActionSpec("run_current", "Model", "Run model on this wafer", ("Ctrl+R",)),
    ActionSpec("run_all", "Model", "Run model on all wafers", ("Ctrl+Shift+R",), "fills the browser's verdict column"),
    ActionSpec("auto_run", "Model", "Run automatically on opened wafers", (), "predict every wafer opened", True),
    ActionSpec(
        "one_view",
        "Model",
        "Fast: one view per wafer",
        (),
        "each wafer as it is, not the card's rotated views averaged: ~3x faster, a little less accurate",
        True,
    ),
    ActionSpec("sign_in", "Server", "Sign in…", (), "sign in to a WaferDesk server (queue, review, model sync)"),
    ActionSpec("sign_out", "Server", "Sign out"),
    ActionSpec("claim_next", "Server", "Claim next wafer", ("Ctrl+Shift+N",), "the next wafer of the queue"),
    ActionSpec(
        "submit", "Server", "Submit and next", ("Ctrl+Return", "Ctrl+Enter"), "submit these labels; the next opens"
    ),
    ActionSpec("skip", "Server", "Skip wafer…", ("Ctrl+Shift+K",), "skip this queue wafer with a reason"),
    ActionSpec("review", "Server", "Review submitted annotations", ("Ctrl+Shift+V",), "approve or reject"),
    ActionSpec("sync_now", "Server", "Send outbox now"),
    ActionSpec("retry_failed", "Server", "Retry failed submissions"),
    ActionSpec("sync_model", "Server", "Sync model from server", (), "use the server's active model locally"),
    ActionSpec("shortcuts", "Help", "Keyboard shortcuts", ("F1", "?")),
    ActionSpec("about", "Help", "About WaferDesk"),
)

MENUS = ("File", "Edit", "Tools", "View", "Navigate", "Model", "Server", "Help")
UNDO_KEYS = {"Undo": ("Ctrl+Z",), "Redo": ("Ctrl+Shift+Z", "Ctrl+Y")}


def build_actions(parent: QWidget, handlers: dict[str, Callable[[], object]]) -> dict[str, QAction]:
    actions: dict[str, QAction] = {}
    for spec in ACTIONS:
        act = QAction(spec.text, parent)
        if spec.shortcuts:
            act.setShortcuts([QKeySequence(s) for s in spec.shortcuts])
        keys = ", ".join(spec.shortcuts)
        act.setToolTip(
            f"{spec.text} ({keys})" + (f": {spec.tip}" if spec.tip else "") if keys else spec.tip or spec.text
        )
        act.setStatusTip(spec.tip)
        act.setCheckable(spec.checkable)
        handler = handlers.get(spec.id)
        if handler is not None:
            act.triggered.connect(lambda _checked=False, h=handler: h())
        parent.addAction(act)  # shortcuts work even when the action sits in no visible menu
        actions[spec.id] = act
    return actions


def shortcut_rows() -> list[tuple[str, str, str]]:
    """(group, keys, what) for the shortcuts sheet, class keys included."""
    rows = [("Edit", " / ".join(k), name) for name, k in UNDO_KEYS.items()]
    rows += [(s.menu, " / ".join(s.shortcuts), s.text) for s in ACTIONS if s.shortcuts]
    rows += [("Classes", c.key, f"active class: {c.name}") for c in default_taxonomy().classes]
    order = {m: i for i, m in enumerate(("Classes", *MENUS))}
    return sorted(rows, key=lambda r: order.get(r[0], 99))


SHEET_COLUMNS = (("Classes", "File", "Edit", "Navigate", "Help"), ("Tools", "View", "Model", "Server"))
MOUSE_HELP = (
    "Wheel zooms; middle-drag pans (left-drag too with Navigate); right-drag zooms; "
    "double-click fits; right-click cancels a polygon. Tools label failing dies only."
)


def shortcuts_html() -> str:
    """Two columns of groups, so the whole sheet fits on screen without scrolling."""
    rows = shortcut_rows()
    columns = []
    for groups in SHEET_COLUMNS:
        out = ["<table cellspacing='0' cellpadding='3'>"]
        for group in groups:
            items = [(k, what) for g, k, what in rows if g == group]
            if not items:
                continue
            out.append(f"<tr><td colspan='2' style='padding-top:10px'><b>{group}</b></td></tr>")
            out += [f"<tr><td><code>{k}</code>&nbsp;&nbsp;</td><td>{what}</td></tr>" for k, what in items]
        out.append("</table>")
        columns.append("".join(out))
    cells = "".join(f"<td valign='top' style='padding-right:28px'>{c}</td>" for c in columns)
    return f"<table><tr>{cells}</tr></table><p>{MOUSE_HELP}</p>"


class ShortcutsDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(920, 780)
        label = QLabel(shortcuts_html())
        label.setWordWrap(True)
        area = QScrollArea()
        area.setWidget(label)
        area.setWidgetResizable(True)
        lay = QVBoxLayout(self)
        lay.addWidget(area)

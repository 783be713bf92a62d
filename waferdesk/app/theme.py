"""One dark theme (Fusion + palette + a short style sheet) so the coloured dies carry the
picture and the chrome stays quiet. Colours here are chrome only; die and class colours
come from the taxonomy.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

WINDOW = "#1e2127"
BASE = "#171a1f"
PANEL = "#23272e"
TEXT = "#dde3ea"
MUTED = "#8a939e"
ACCENT = "#4c9aff"
WARN = "#f0a848"
VIEW_BACKGROUND = (18, 20, 24)
OUTLINE = "#5a6472"

STYLE = f"""
QMainWindow, QDialog {{ background: {WINDOW}; }}
QToolTip {{ color: {TEXT}; background: {PANEL}; border: 1px solid #3a414b; padding: 4px; }}
QDockWidget {{ color: {TEXT}; font-weight: 600; }}
QDockWidget::title {{ background: {PANEL}; padding: 6px 8px; }}
QGroupBox {{ border: 1px solid #2f353e; border-radius: 6px; margin-top: 14px; padding: 8px 6px 6px 6px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {MUTED}; font-weight: 600; }}
QTableView {{ background: {BASE}; alternate-background-color: #1b1f25; gridline-color: #262b33;
             selection-background-color: #2d5c99; selection-color: white; border: none; }}
QHeaderView::section {{ background: {PANEL}; color: {MUTED}; border: none; border-right: 1px solid #2f353e;
                       padding: 4px 2px; font-weight: 600; }}
QLineEdit, QComboBox, QSpinBox {{ background: {BASE}; border: 1px solid #353c46; border-radius: 4px; padding: 3px 6px;
                                 color: {TEXT}; }}
QLineEdit:focus, QComboBox:focus, QSpinBox:focus {{ border-color: {ACCENT}; }}
QToolBar {{ background: {PANEL}; border: none; spacing: 2px; padding: 3px; }}
QToolButton {{ color: {TEXT}; border: 1px solid transparent; border-radius: 4px; padding: 4px 8px; }}
QToolButton:hover {{ background: #2c323b; border-color: #3a424d; }}
QToolButton:checked {{ background: #2d5c99; border-color: {ACCENT}; color: white; }}
QPushButton {{ background: #2c323b; color: {TEXT}; border: 1px solid #3a424d; border-radius: 4px; padding: 4px 10px; }}
QPushButton:hover {{ background: #343b45; }}
QPushButton:checked {{ background: #2d5c99; border-color: {ACCENT}; color: white; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ background: {PANEL}; color: {MUTED}; padding: 6px 16px; border: none; margin-right: 1px; }}
QTabBar::tab:selected {{ color: {TEXT}; background: #2c323b; border-bottom: 2px solid {ACCENT}; }}
QStatusBar {{ background: {PANEL}; color: {MUTED}; }}
QStatusBar QLabel {{ color: {MUTED}; padding: 0 6px; }}
QLabel#verdict {{ font-size: 17px; font-weight: 700; color: {TEXT}; }}
QLabel#muted {{ color: {MUTED}; }}
QLabel#readout {{ color: {TEXT}; font-family: monospace; }}
QLabel#modelWarn {{ color: {WARN}; }}
QSlider::groove:horizontal {{ height: 4px; background: #353c46; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {ACCENT}; width: 12px; margin: -5px 0; border-radius: 6px; }}
QMenu {{ background: {PANEL}; color: {TEXT}; border: 1px solid #3a414b; }}
QMenu::item:selected {{ background: #2d5c99; }}
QMenuBar {{ background: {WINDOW}; color: {TEXT}; }}
QMenuBar::item:selected {{ background: #2c323b; }}
"""


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: WINDOW,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BASE,
        QPalette.ColorRole.AlternateBase: "#1b1f25",
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: PANEL,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: "#2d5c99",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: PANEL,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.PlaceholderText: MUTED,
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5d6570"))
    app.setPalette(pal)
    app.setStyleSheet(STYLE)

"""The desktop app (PySide6 + pyqtgraph): the ONLY package that imports Qt.

Layout: :mod:`.model` holds the Qt-free document layer (open wafers, labels, predictions,
pictures, exports); :mod:`.view` the wafer view; the other modules one widget or service
each (browser, palette, results panel, lot view, tools, undo commands, autosave, inference
worker), wired together by :mod:`.mainwindow`. Start it with :func:`waferdesk.app.main.run_app`.
"""

"""The app signed in to a server, for the queue and review screenshots (docs/app.md).

    PYTHONPATH=. python scripts/serve_queue.py --size 0 --wafers 12 --reviews 4 -- \\
        ../shared/tools/screenshot.sh docs/screenshots/app-queue.png 14 \\
        env PYTHONPATH=$PWD WAFERDESK_HOME=/tmp/wd-shots .venv/bin/python docs/screenshots/queue_scene.py queue

Scenes: queue (as the annotator: two wafers submitted and synced, the third open with the
model's pre-annotation, the next one prefetched), review (as the engineer: the review list,
a submitted annotation open). The server comes from $WAFERDESK_SERVER (serve_queue.py sets it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtCore import QTimer

from waferdesk.app.main import make_application
from waferdesk.app.mainwindow import MainWindow
from waferdesk.client.api import ServerClient
from waferdesk.client.drafts import DraftStore


def main(scene: str) -> None:
    home = Path(os.environ.get("WAFERDESK_HOME", "/tmp/wd-shots"))
    for leftover in [*home.glob("queue-*.sqlite3*"), *home.glob("data/outbox.sqlite3*")]:
        leftover.unlink()
    app = make_application()
    win = MainWindow(DraftStore(home / "queue-drafts.sqlite3"), outbox_path=home / "queue-outbox.sqlite3")
    win.setGeometry(0, 0, 1600, 1000)
    win.show()
    url, password = os.environ["WAFERDESK_SERVER"], os.environ["WAFERDESK_PASSWORD"]
    user = "ann" if scene == "queue" else "eng"
    win.connect_server(ServerClient.login(url, user, password), remember=False)  # model sync included
    steps = {"n": 0}

    def queue_step() -> None:
        q = win.queue
        e = win.doc.current
        if e is None or e.remote != "in queue" or q.prefetched is None:
            QTimer.singleShot(200, queue_step)
            return
        if steps["n"] < 2:  # submit two as they came (the status column shows them synced)
            steps["n"] += 1
            q.submit_current()
            QTimer.singleShot(900, queue_step)
            return
        win.set_tool("brush")
        win.set_active_class(0)
        q.sync_now()

    def review_step() -> None:
        if win.review_panel.table.rowCount() == 0:
            QTimer.singleShot(200, review_step)
            return
        win.review_panel.table.setCurrentCell(1, 0)

    if scene == "queue":
        win.queue.claim_next()
        QTimer.singleShot(600, queue_step)
    else:
        win.show_review()
        QTimer.singleShot(600, review_step)
    sys.exit(app.exec())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "queue")

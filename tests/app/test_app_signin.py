"""The sign-in dialog against URLs that are not a WaferDesk server: one readable line, no trace."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from waferdesk.app.signin import SignInDialog


class _Html(BaseHTTPRequestHandler):
    """Another web server: an HTML error page for a POST, or (``/ok``) a 200 HTML page."""

    def do_POST(self) -> None:
        ok = self.path.startswith("/ok")
        body = b"<!DOCTYPE HTML><html><head><title>Error response</title></head><body>nope</body></html>"
        self.send_response(200 if ok else 501)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def web_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _try(qtbot, url: str) -> str:
    dlg = SignInDialog(url, "annotator")
    qtbot.addWidget(dlg)
    dlg.password.setText("secret")
    assert not dlg.try_sign_in()
    return dlg.error.text()


def test_a_web_server_that_is_not_waferdesk_is_named_so_in_one_line(qtbot, web_server) -> None:
    text = _try(qtbot, web_server)
    assert text == "No WaferDesk server answers at this URL (it answered HTTP 501)"
    # a server answering 200 with a web page (an app proxy) is no WaferDesk server either
    assert _try(qtbot, web_server + "/ok") == "No WaferDesk server answers at this URL"


def test_a_malformed_server_url_is_explained_not_raised(qtbot) -> None:
    text = _try(qtbot, "http://127.0.0.1:80a0")
    assert text.startswith("Server URL 'http://127.0.0.1:80a0' is not a valid URL")

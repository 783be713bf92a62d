"""File > Sign in to server: server URL, user name, password; the answer is a signed-in
:class:`~waferdesk.client.api.ServerClient`. Errors (wrong password, server down, a URL
that is not a WaferDesk server) are shown in the dialog in one line; it stays open."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
)

from ..client.api import ServerClient, ServerError
from . import theme

LoginFn = Callable[[str, str, str], ServerClient]
NOT_WAFERDESK = "No WaferDesk server answers at this URL"


def default_login(url: str, username: str, password: str) -> ServerClient:
    return ServerClient.login(url, username, password, timeout=15.0)


class SignInDialog(QDialog):
    def __init__(
        self, url: str = "", username: str = "", parent=None, login: LoginFn = default_login, remember: bool = True
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sign in to a WaferDesk server")
        self.login = login
        self.client: ServerClient | None = None
        self.url = QLineEdit(url or "http://127.0.0.1:8000")
        self.url.setPlaceholderText("http://server:8000")
        self.username = QLineEdit(username)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox("Stay signed in (token kept in the OS keyring)")
        self.remember.setChecked(remember)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {theme.WARN};")
        form = QFormLayout()
        form.addRow("Server URL", self.url)
        form.addRow("User", self.username)
        form.addRow("Password", self.password)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Sign in")
        buttons.accepted.connect(self.try_sign_in)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.remember)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(460, self.sizeHint().height())
        (self.password if username else self.username).setFocus()

    def try_sign_in(self) -> bool:
        url, user, pw = self.url.text().strip(), self.username.text().strip(), self.password.text()
        if not url.startswith(("http://", "https://")):
            self.error.setText(f"Server URL {url!r}: start it with http:// or https://")
            return False
        if not user or not pw:
            self.error.setText("Enter a user name and a password")
            return False
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.client = self.login(url, user, pw)
        except ServerError as exc:
            self.error.setText(_explain(exc))
            return False
        except httpx.InvalidURL as exc:  # a typo such as a letter in the port
            self.error.setText(f"Server URL {url!r} is not a valid URL ({exc})")
            return False
        except (ValueError, KeyError, TypeError):  # a 2xx answer that is not a WaferDesk sign-in
            self.error.setText(NOT_WAFERDESK)
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.accept()
        return True


def _explain(exc: ServerError) -> str:
    if exc.status == 0:
        return exc.message
    if exc.status == 401:
        return "Wrong user name or password"
    if exc.status == 429:
        return f"Too many failed sign-ins: {exc.message}"
    if exc.status == 404:
        return NOT_WAFERDESK
    if exc.code == "http_error":  # an answer without WaferDesk's JSON error: another web server
        return f"{NOT_WAFERDESK} (it answered HTTP {exc.status})"
    return str(exc)


__all__ = ["SignInDialog", "default_login"]

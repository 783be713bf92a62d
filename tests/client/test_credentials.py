"""Where a sign-in's refresh token is kept: the OS keyring, else a 0600 file with a notice."""

from __future__ import annotations

import stat

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from waferdesk.client.credentials import TokenStore


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def set_password(self, service, username, password):
        self.items[(service, username)] = password

    def get_password(self, service, username):
        return self.items.get((service, username))

    def delete_password(self, service, username):
        self.items.pop((service, username), None)


class LockedKeyring(MemoryKeyring):
    def set_password(self, service, username, password):
        raise RuntimeError("org.freedesktop.Secret: the collection is locked")

    get_password = set_password


@pytest.fixture
def backend():
    before = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(before)


def test_with_an_os_keyring_the_token_goes_there_and_no_file_is_written(backend, tmp_path) -> None:
    mem = MemoryKeyring()
    backend(mem)
    store = TokenStore(tmp_path / "credentials.json")
    store.save("http://wd:8000/", "ann", "refresh-1")
    assert mem.items == {("WaferDesk", "ann@http://wd:8000"): "refresh-1"}
    assert store.load("http://wd:8000", "ann") == "refresh-1" and store.notice is None
    assert not (tmp_path / "credentials.json").exists()
    store.delete("http://wd:8000", "ann")
    assert store.load("http://wd:8000", "ann") is None


@pytest.mark.parametrize("kind", [fail.Keyring, LockedKeyring])
def test_no_keyring_falls_back_to_a_private_file_with_a_one_line_notice(backend, tmp_path, kind) -> None:
    backend(kind())  # headless Linux: NoKeyringError; a locked Secret Service: any other error
    path = tmp_path / "cfg" / "credentials.json"
    store = TokenStore(path)
    store.save("http://wd:8000", "ann", "refresh-1")
    store.save("http://wd:8000", "eng", "refresh-2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.notice is not None and "\n" not in store.notice and str(path) in store.notice
    assert TokenStore(path).load("http://wd:8000", "ann") == "refresh-1"  # a fresh process reads it back
    store.delete("http://wd:8000", "ann")
    assert store.load("http://wd:8000", "ann") is None and store.load("http://wd:8000", "eng") == "refresh-2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_corrupt_fallback_file_reads_as_no_token(backend, tmp_path) -> None:
    backend(fail.Keyring())
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    store = TokenStore(path)
    assert store.load("http://wd:8000", "ann") is None
    store.save("http://wd:8000", "ann", "t")
    assert store.load("http://wd:8000", "ann") == "t"

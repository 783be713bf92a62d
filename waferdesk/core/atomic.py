"""Files written whole or not at all.

:func:`atomic_open` writes into a temporary ``<name>.<random>.part`` file in the same folder,
flushes and fsyncs it, and only then renames it over ``path`` (``os.replace``, atomic on one
file system). An exception, Ctrl-C or a full disk while writing leaves the previous file as it
was and removes the temporary one; a crash cannot leave half a file under ``path``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """``with atomic_open(p) as fh: json.dump(doc, fh)``; ``mode`` is ``"w"`` (text) or ``"wb"``.

    OSErrors name ``path`` (not the temporary file; a failed write names no file at all), so the
    one-line error says which output failed.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    out = Path(path)
    if out.is_dir():  # refused before writing anything (os.replace would refuse only at the end)
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(out))
    tmp = out.with_name(f"{out.name}.{secrets.token_hex(4)}.part")  # unique: concurrent writers never share one
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(out)) from None
    try:
        with open(fd, mode, encoding=encoding if mode == "w" else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(out)) from None
    except BaseException as exc:  # also Ctrl-C: no half-written .part is left behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:  # a write: disk full
            raise type(exc)(exc.errno, exc.strerror, str(out)) from None
        raise
    _fsync_folder(out.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the system allows it (not on Windows)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

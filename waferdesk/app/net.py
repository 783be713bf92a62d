"""Server calls off the GUI thread: one worker thread per :class:`NetRunner`, results
delivered back to the GUI thread through a queued Qt signal, so the window never waits on
the network (and a slow outbox send never delays the queue's prefetch: each has its own)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class NetRunner(QObject):
    _done = Signal(object, object, object)  # callback, result, exception

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._done.connect(self._deliver)
        self.in_flight = 0
        self.closed = False

    def run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Future | None:
        if self.closed:
            return None
        self.in_flight += 1

        def work() -> None:
            try:
                result = fn()
            except Exception as exc:  # delivered to on_error in the GUI thread
                self._done.emit(on_error, None, exc)
            else:
                self._done.emit(on_done, result, None)

        return self._pool.submit(work)

    def _deliver(self, callback, result, error) -> None:
        self.in_flight -= 1
        if self.closed or callback is None:
            if error is not None:
                log.warning("background server call failed: %s", error)
            return
        callback(error if error is not None else result)

    def close(self, wait: bool = True) -> None:
        self.closed = True
        self._pool.shutdown(wait=wait, cancel_futures=True)


__all__ = ["NetRunner"]

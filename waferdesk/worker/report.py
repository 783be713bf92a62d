"""The worker's log: every line to stdout (which the backend keeps: ``worker.log``, the pod
log) and, in batches, to the job's log on the server; plus heartbeats during long epochs.

A background thread flushes buffered lines every ``flush_seconds`` and sends a heartbeat when
nothing else was sent for ``heartbeat_seconds``. When the server answers that the job has
ended (cancelled), the thread interrupts the main thread, so training stops at once instead of
at the end of the epoch.
"""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections import deque
from typing import TextIO

from .api import JobEndedError, WorkerClient


class Reporter:
    def __init__(
        self,
        client: WorkerClient,
        flush_seconds: float = 2.0,
        heartbeat_seconds: float = 30.0,
        out: TextIO | None = None,
    ) -> None:
        self.client = client
        self.flush_seconds, self.heartbeat_seconds = flush_seconds, heartbeat_seconds
        self.out = out or sys.stdout
        self.finished = threading.Event()  # the server said the job has ended
        self._buf: list[str] = []
        self._recent: deque[str] = deque(maxlen=20)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_sent = time.monotonic()
        self._thread: threading.Thread | None = None

    def start(self) -> Reporter:
        self._thread = threading.Thread(target=self._loop, name="worker-report", daemon=True)
        self._thread.start()
        return self

    def line(self, text: str) -> None:
        for ln in str(text).splitlines() or [""]:
            print(ln, file=self.out, flush=True)
            with self._lock:
                self._buf.append(ln)
                self._recent.append(ln)

    def tail(self) -> list[str]:
        with self._lock:
            return list(self._recent)

    def flush(self) -> None:
        """Send the buffered lines now (raises JobEndedError when the job has ended)."""
        with self._send_lock:
            with self._lock:
                lines, self._buf = self._buf, []
            if lines:
                try:
                    self.client.logs(lines)
                except JobEndedError:
                    raise
                except Exception as exc:  # the log is not worth failing a training run for
                    print(f"(log lines not sent to the server: {exc})", file=self.out, flush=True)
            self._last_sent = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                if self._buf:
                    self.flush()
                elif time.monotonic() - self._last_sent >= self.heartbeat_seconds:
                    with self._send_lock:
                        self.client.heartbeat()
                        self._last_sent = time.monotonic()
            except JobEndedError as exc:
                print(f"the server says: {exc}; stopping", file=self.out, flush=True)
                self.finished.set()
                _thread.interrupt_main()
                return
            except Exception as exc:
                print(f"(heartbeat failed: {exc})", file=self.out, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not self.finished.is_set():
            try:
                self.flush()
            except JobEndedError:
                self.finished.set()

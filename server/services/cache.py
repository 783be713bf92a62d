"""The prediction cache: Redis when ``REDIS_URL`` is set, else an in-process LRU.

Keys are ``<prefix><wafer content hash>:<model sha256>``: the same wafer under the same model
is the same result, and two different wafers (or two models) never share one. Values are the
bytes of :func:`server.services.prediction.encode_result`. A Redis outage degrades to misses
(logged, shown by ``/health``) rather than failing predictions.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from ..core.config import Settings

log = logging.getLogger(__name__)


def cache_key(prefix: str, wafer_hash: str, model_sha256: str) -> str:
    return f"{prefix}{wafer_hash}:{model_sha256}"


@dataclass(frozen=True)
class CacheHealth:
    ok: bool
    backend: str
    detail: str = ""
    entries: int | None = None


class ResultCache(Protocol):
    backend: str

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes) -> None: ...
    def health(self) -> CacheHealth: ...
    def close(self) -> None: ...


class MemoryCache:
    """A thread-safe LRU of at most ``max_entries`` results (0 disables caching)."""

    backend = "memory"

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def health(self) -> CacheHealth:
        return CacheHealth(True, self.backend, f"in-process LRU, max {self.max_entries} entries", len(self._data))

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """Results in Redis with a TTL; every error is logged and read as a miss."""

    backend = "redis"

    def __init__(self, url: str, ttl_seconds: int) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._ttl = ttl_seconds
        self._url_shown = _without_password(url)

    def get(self, key: str) -> bytes | None:
        try:
            return self._redis.get(key)
        except Exception as exc:
            log.warning("redis cache get failed (%s): treated as a miss", exc)
            return None

    def set(self, key: str, value: bytes) -> None:
        try:
            self._redis.set(key, value, ex=self._ttl)
        except Exception as exc:
            log.warning("redis cache set failed (%s): result not cached", exc)

    def health(self) -> CacheHealth:
        try:
            self._redis.ping()
        except Exception as exc:
            return CacheHealth(False, self.backend, f"{self._url_shown}: {exc}")
        return CacheHealth(True, self.backend, self._url_shown)

    def close(self) -> None:
        self._redis.close()


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    return urlunsplit(parts)


def make_cache(settings: Settings) -> ResultCache:
    if settings.redis_url:
        return RedisCache(settings.redis_url, settings.cache_ttl_seconds)
    return MemoryCache(settings.cache_size)

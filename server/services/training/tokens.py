"""Per-job worker tokens: ``wdj1.<job id>.<secret>``; only their sha256 is stored.

A token is made when a job is created and handed to its worker once (an environment
variable of the local process, a Kubernetes Secret for a pod). It authorizes that one job's
worker routes and nothing else; once the job has ended the server refuses it (409), which is
also how a worker learns that its job was cancelled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "wdj1"


def new_token(job_id: int) -> tuple[str, str]:
    """A fresh token for ``job_id`` and the hash to store."""
    token = f"{PREFIX}.{job_id}.{secrets.token_urlsafe(32)}"
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_job_token(token: str) -> bool:
    return token.startswith(PREFIX + ".")


def job_id_of(token: str) -> int | None:
    """The job id a well-formed token names, else ``None``."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1].isdigit():
        return None
    return int(parts[1])


def matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)

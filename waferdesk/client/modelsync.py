"""Model sync: run locally the model the server serves.

The server's registry names one active model (``GET /models``). When its sha256 differs from
the local model's, the ONNX file is downloaded into the per-user data folder
(``models/<name>-<version>-<sha12>.onnx``, a ``.part`` file until verified), its sha256 is
checked against the model card the server holds, and the card is written beside it. A
mismatch (a truncated or tampered download, a registry out of step with its file) is
refused: the partial file is deleted and the local model stays. The caller then switches
local inference to the returned path.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ModelError, WaferDeskError
from ..core.modelcard import card_path_for, load_model_card, sha256_file
from . import paths
from .api import ServerClient

UP_TO_DATE, DOWNLOADED, NO_MODEL = "up to date", "downloaded", "no model"


class ModelSyncError(WaferDeskError):
    """The server's model could not be taken (download refused or unusable here)."""


@dataclass(frozen=True)
class SyncResult:
    status: str  # UP_TO_DATE, DOWNLOADED or NO_MODEL
    version: str = ""
    sha256: str = ""
    path: Path | None = None  # the local file of the active model (None when nothing to switch to)

    def message(self) -> str:
        if self.status == NO_MODEL:
            return "the server has no active model"
        if self.status == UP_TO_DATE:
            return f"model {self.version} is up to date"
        return f"model {self.version} downloaded and verified (sha256 {self.sha256[:12]}…)"


def models_dir() -> Path:
    d = paths.data_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


def sync_active_model(api: ServerClient, local_sha256: str | None, dest: Path | None = None) -> SyncResult:
    """Fetch the server's active model unless the local one is it; raises :class:`ModelSyncError`."""
    active = next((m for m in api.models() if m.get("is_active")), None)
    if active is None:
        return SyncResult(NO_MODEL)
    version, sha = str(active["version"]), str(active["sha256"])
    if local_sha256 and sha == local_sha256:
        return SyncResult(UP_TO_DATE, version, sha)
    folder = dest or models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{_safe(active['name'])}-{_safe(version)}-{sha[:12]}.onnx"
    card = api.model_card(int(active["id"])).get("card") or {}
    expected = str(card.get("sha256") or "")
    if expected != sha:
        raise ModelSyncError(
            f"model {version}: the server's registry (sha256 {sha[:12]}…) and its card "
            f"({expected[:12] or 'none'}…) disagree: not downloaded"
        )
    if target.is_file() and sha256_file(target) == expected and card_path_for(target).is_file():
        return SyncResult(DOWNLOADED, version, sha, target)  # fetched before: switch back to it
    part = target.with_name(target.name + ".part")
    try:
        api.download_model(int(active["id"]), part)
        got = sha256_file(part)
        if got != expected:
            raise ModelSyncError(
                f"model {version}: the downloaded file's sha256 {got[:12]}… does not match its card "
                f"({expected[:12]}…): refused, the current model stays"
            )
        card_path_for(target).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        os.replace(part, target)
        try:
            load_model_card(target, verify=True)  # format, encoding, classes this app understands
        except ModelError as exc:
            target.unlink(missing_ok=True)
            card_path_for(target).unlink(missing_ok=True)
            raise ModelSyncError(f"model {version} cannot run in this app: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return SyncResult(DOWNLOADED, version, sha, target)


__all__ = ["DOWNLOADED", "NO_MODEL", "UP_TO_DATE", "ModelSyncError", "SyncResult", "models_dir", "sync_active_model"]

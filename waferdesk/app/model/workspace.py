"""The wafers open in the app, each with its editable labels, prediction and annotation status.

Labels start from, in order: the autosaved draft of that wafer (matched by content hash),
the mask stored in the file, or nothing. The file is never written back: saving writes a new
labels file and marks the draft saved.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import WaferDeskError
from ...core.formats import expand_paths, read_any
from ...core.results import WaferSummary, summarize
from ...core.taxonomy import IGNORE
from ...core.wafer import LabelMask, WaferMap
from .predictions import ModelResult

MAX_ERRORS_SHOWN = 20
log = logging.getLogger(__name__)


class Status(StrEnum):
    """Annotation status shown in the browser."""

    UNLABELLED = "unlabelled"
    FROM_FILE = "from file"
    DRAFT = "draft"
    SAVED = "saved"


@dataclass(eq=False)
class WaferEntry:
    """One open wafer. ``labels`` is edited in place by the tools (through undo commands)."""

    wafer: WaferMap
    source: Path
    index: int
    given: LabelMask | None = None
    labels: np.ndarray = field(default=None)  # type: ignore[assignment]
    status: Status = Status.UNLABELLED
    prediction: ModelResult | None = None  # once the model ran on it
    key: str = ""
    remote: str = ""  # server work: "in queue", "submitted", "skipped", "review" ("" = a local file)
    sync: str = ""  # outbox state of its submission: pending, synced, failed, conflict, took theirs, deleted
    sync_note: str = ""  # the outbox's message when it says why it was not sent (failed, deleted on the server)
    read_only: bool = False  # shown, not edited (a review)
    from_server: bool = False  # a queue or review row (not a local file's wafer): its labels go to the server

    def __post_init__(self) -> None:
        if self.labels is None:
            base = self.given.labels if self.given is not None else None
            self.labels = base.copy() if base is not None else np.full(self.wafer.shape, IGNORE, np.uint8)
        if not self.key:
            self.key = self.wafer.content_hash()
        if self.status is Status.UNLABELLED and self.given is not None:
            self.status = Status.FROM_FILE

    # -- identity ----------------------------------------------------------------------------
    @property
    def lot(self) -> str:
        return self.wafer.lot or self.source.stem

    @property
    def wafer_id(self) -> str:
        return self.wafer.wafer_id or str(self.index + 1)

    @property
    def title(self) -> str:
        return f"{self.lot} / {self.wafer_id}"

    # -- labels ------------------------------------------------------------------------------
    def base_labels(self) -> np.ndarray:
        """Labels as opened from the file (what 'no edits' means)."""
        return self.given.labels if self.given is not None else np.full(self.wafer.shape, IGNORE, np.uint8)

    def is_edited(self) -> bool:
        return not np.array_equal(self.labels, self.base_labels())

    def has_labels(self) -> bool:
        return bool((self.labels != IGNORE).any())

    def label_mask(self) -> LabelMask:
        return LabelMask(self.labels.copy())

    def summary(self) -> WaferSummary:
        return summarize(self.wafer, LabelMask(self.labels))

    # -- prediction --------------------------------------------------------------------------
    def predicted_labels(self) -> np.ndarray | None:
        return None if self.prediction is None else self.prediction.labels

    def predicted_summary(self) -> WaferSummary | None:
        return None if self.prediction is None else self.prediction.summary

    def uncertainty(self) -> float | None:
        """Mean per-die entropy of the prediction (the browser's uncertainty column)."""
        if self.prediction is None:
            return None
        value = self.prediction.uncertainty.get("entropy_mean")
        return None if value is None else float(value)


@dataclass
class LoadReport:
    added: list[WaferEntry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0
    recovered: int = 0

    def message(self) -> str:
        parts = [f"opened {len(self.added)} wafer{'s' if len(self.added) != 1 else ''}"]
        if self.recovered:
            parts.append(f"{self.recovered} with recovered drafts")
        if self.duplicates:
            parts.append(f"{self.duplicates} already open")
        if self.errors:
            parts.append(f"{len(self.errors)} file{'s' if len(self.errors) != 1 else ''} could not be read")
        return ", ".join(parts)


class Workspace:
    """The ordered list of open wafers (the browser's rows) and the drafts they come back from."""

    def __init__(self, drafts: Any = None) -> None:
        self.entries: list[WaferEntry] = []
        self._by_key: dict[str, WaferEntry] = {}
        self.drafts = drafts  # waferdesk.client.DraftStore or None

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> WaferEntry | None:
        return self._by_key.get(key)

    def load(self, paths: Iterable[str | Path]) -> LoadReport:
        """Open files and folders; unreadable files are reported, never fatal."""
        report = LoadReport()
        draft_keys = self.drafts.keys() if self.drafts is not None else set()
        for path in expand_paths(paths):
            try:
                records = read_any(path)
            except WaferDeskError as exc:
                report.errors.append(str(exc))
                continue
            except OSError as exc:
                report.errors.append(f"{path}: {exc.strerror or exc}")
                continue
            except Exception as exc:  # a reader's own bug: this file is reported, the others open
                log.exception("reading %s", path)
                report.errors.append(f"{path}: cannot be read ({type(exc).__name__}: {exc})")
                continue
            for i, rec in enumerate(records):
                entry = WaferEntry(rec.wafer, Path(path), i, given=rec.mask)
                if entry.key in self._by_key:
                    report.duplicates += 1
                    continue
                if entry.key in draft_keys and self._restore(entry):
                    report.recovered += 1
                self.entries.append(entry)
                self._by_key[entry.key] = entry
                report.added.append(entry)
        return report

    def add(self, entry: WaferEntry) -> WaferEntry:
        """A wafer that came from a server (queue, review); the one already open when the same
        wafer is (its draft restored like an opened file's)."""
        have = self._by_key.get(entry.key)
        if have is not None:
            return have
        if self.drafts is not None:
            self._restore(entry)  # nothing happens without a draft of this wafer
        entry.from_server = True
        self.entries.append(entry)
        self._by_key[entry.key] = entry
        return entry

    def _restore(self, entry: WaferEntry) -> bool:
        draft = self.drafts.load(entry.key)
        if draft is None or draft.labels.shape != entry.wafer.shape:
            return False
        entry.labels = draft.labels
        entry.status = Status.SAVED if draft.status == "saved" else Status.DRAFT
        return draft.status != "saved"

    def file_entries(self) -> list[WaferEntry]:
        """The wafers of opened files (what Save and the exports write), without server rows."""
        return [e for e in self.entries if not e.from_server]

    def lots(self) -> OrderedDict[str, list[WaferEntry]]:
        out: OrderedDict[str, list[WaferEntry]] = OrderedDict()
        for e in self.entries:
            out.setdefault(e.lot, []).append(e)
        return out

"""Wafer ingest and queries: uploaded files -> :class:`WaferMap` -> rows, and back.

Files are read with :func:`waferdesk.core.formats.read_any`, so every format the core reads
(``.wdm`` and whatever readers join it) is accepted here with no server change. An upload is
all-or-nothing: every file is read and checked first and a bad one fails the request with a
4xx naming the file and the reason, before anything is stored. Wafers already stored (same
content hash) are not stored twice; the response says which were new.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from waferdesk.core.errors import FormatError, WaferDeskError
from waferdesk.core.formats import read_any
from waferdesk.core.formats.wm811k_pickle import SUFFIXES as PICKLE_SUFFIXES
from waferdesk.core.formats.wm811k_pickle import is_pickle
from waferdesk.core.records import WaferRecord
from waferdesk.core.wafer import WaferMap

from ..core.config import Settings
from ..core.errors import NotFoundError, PayloadTooLargeError, UnprocessableError
from ..db.models import Prediction, Wafer
from ..db.types import pack_array, unpack_array

log = logging.getLogger(__name__)

MAX_TEXT = {"lot": 128, "wafer_id": 128, "product": 128}
_CHUNK = 1 << 20
_LOOKUP_CHUNK = 500


@dataclass
class UploadedFile:
    """One file of a multipart upload: its client-side name and a readable stream."""

    filename: str
    stream: BinaryIO


@dataclass
class FileProblem:
    file: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


@dataclass
class ParsedFile:
    filename: str
    format: str
    records: list[WaferRecord]


@dataclass
class IngestResult:
    wafers: list[tuple[Wafer, bool, str]] = field(default_factory=list)  # (row, newly created, file)

    @property
    def created(self) -> int:
        return sum(1 for _, new, _ in self.wafers if new)


def safe_name(filename: str | None) -> str:
    """The client's file name as we show it back: its last path component, printable, bounded."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    if len(name) > 200:  # shorten the stem: the suffix picks the reader
        suffix = _suffix(name)
        name = name[: 200 - len(suffix)] + suffix
    return name or "(unnamed file)"


def _suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""


def format_name(filename: str) -> str:
    return _suffix(filename).lstrip(".") or "unknown"


def read_upload(
    upload: UploadedFile, settings: Settings, workdir: Path, pass_bins: Sequence[int] | None = None
) -> ParsedFile:
    """Copy one upload to a temporary file (bounded) and read it with the core's readers."""
    name = safe_name(upload.filename)
    limit = settings.max_file_bytes
    with tempfile.NamedTemporaryFile(dir=workdir, suffix=_suffix(name), delete=False) as tmp:
        size = 0
        while block := upload.stream.read(_CHUNK):
            size += len(block)
            if size > limit:
                raise PayloadTooLargeError(
                    f"{name}: larger than the {limit}-byte limit per file",
                    code="file_too_large",
                    details=[{"file": name, "reason": f"over {limit} bytes"}],
                )
            tmp.write(block)
        path = Path(tmp.name)
    if size == 0:
        path.unlink(missing_ok=True)
        raise _bad_file(name, "the file is empty")
    if not settings.accept_pickle:
        with open(path, "rb") as fh:
            start = fh.read(8)
        if is_pickle(start) or _suffix(name) in PICKLE_SUFFIXES:
            path.unlink(missing_ok=True)
            raise _bad_file(name, "pickle uploads are turned off on this server (WAFERDESK_ACCEPT_PICKLE)")
    try:
        records = read_any(path, pass_bins)
    except FormatError as exc:
        raise _bad_file(name, exc.problem) from None
    except WaferDeskError as exc:
        raise _bad_file(name, str(exc).replace(str(path), name)) from None
    except Exception as exc:  # a reader bug must still answer 4xx naming the file, and be logged
        log.exception("reader failed on upload %s", name)
        raise _bad_file(name, f"could not be read ({type(exc).__name__})") from None
    finally:
        path.unlink(missing_ok=True)
    if not records:
        raise _bad_file(name, "the file holds no wafers")
    for i, rec in enumerate(records):
        for attr, n in MAX_TEXT.items():
            value = getattr(rec.wafer, attr)
            if len(value) > n:
                raise _bad_file(name, f"wafer {i}: {attr} is {len(value)} characters, at most {n}")
        if field_name := _text_with_nul(rec.wafer):
            raise _bad_file(name, f"wafer {i}: {field_name} contains a NUL (0x00) character")
    return ParsedFile(name, format_name(name), records)


def _text_with_nul(w: WaferMap) -> str | None:
    """The first text field of a wafer that holds a NUL character, which Postgres cannot store."""
    texts = {"lot": w.lot, "wafer_id": w.wafer_id, "product": w.product, "source": w.source}
    texts["label"] = "" if w.label is None else str(w.label)
    for key, value in w.extra.items():
        texts[f"extra field {key!r}"] = f"{key}{value}"
    return next((f for f, v in texts.items() if "\x00" in str(v)), None)


def _bad_file(name: str, reason: str) -> UnprocessableError:
    return UnprocessableError(f"{name}: {reason}", code="bad_file", details=[{"file": name, "reason": reason}])


def parse_pass_bins(text: str | None) -> list[int] | None:
    """``"1, 3,7"`` -> ``[1, 3, 7]`` (the passing bin codes of CSV die lists with only a bin column)."""
    if text is None or not text.strip():
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise UnprocessableError(
            f"form field pass_bins: {text!r} is not a comma-separated list of bin codes (e.g. 1,3)"
        ) from None


def parse_uploads(
    files: Sequence[UploadedFile], settings: Settings, pass_bins: Sequence[int] | None = None
) -> list[ParsedFile]:
    """Read every file; any bad one fails the whole upload (nothing is stored)."""
    if not files:
        raise UnprocessableError("no files in the upload (send one or more multipart fields named 'files')")
    if len(files) > settings.max_files_per_upload:
        raise PayloadTooLargeError(
            f"{len(files)} files in one upload; at most {settings.max_files_per_upload}", code="too_many_files"
        )
    parsed: list[ParsedFile] = []
    problems: list[FileProblem] = []
    with tempfile.TemporaryDirectory(prefix="waferdesk-upload-") as tmp:
        for f in files:
            try:
                parsed.append(read_upload(f, settings, Path(tmp), pass_bins))
            except UnprocessableError as exc:
                problems += [FileProblem(**d) for d in exc.details]
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more bad file(s))" if len(problems) > 1 else ""
        raise UnprocessableError(
            f"{first.file}: {first.reason}{more}; nothing was stored",
            code="bad_file",
            details=[p.as_dict() for p in problems],
        )
    total = sum(len(p.records) for p in parsed)
    if total > settings.max_wafers_per_upload:
        raise PayloadTooLargeError(
            f"{total} wafers in one upload; at most {settings.max_wafers_per_upload}", code="too_many_wafers"
        )
    return parsed


# -- rows <-> wafer maps -----------------------------------------------------------------------
def wafer_row(rec: WaferRecord, source_format: str, source_name: str, user_id: int | None) -> Wafer:
    w = rec.wafer
    meta = {
        "notch": w.notch,
        "die_pitch": list(w.die_pitch) if w.die_pitch else None,
        "bin_pass": sorted(w.bin_pass) if w.bin_pass is not None else None,
        "extra": dict(w.extra),
        "source": w.source,
    }
    return Wafer(
        lot=w.lot,
        wafer_id=w.wafer_id,
        product=w.product,
        rows=w.shape[0],
        cols=w.shape[1],
        n_dies=w.n_dies,
        n_fail=w.n_fail,
        dies=pack_array(w.dies, "uint8"),
        bins=pack_array(w.bins, "int32") if w.bins is not None else None,
        meta=meta,
        content_hash=w.content_hash(),
        source_format=source_format[:32],
        source_name=source_name[:255],
        source_label=(w.label or None) and str(w.label)[:64],
        uploaded_by=user_id,
    )


def to_wafer_map(row: Wafer) -> WaferMap:
    """Rebuild the exact :class:`WaferMap` that was uploaded (same content hash)."""
    shape = (row.rows, row.cols)
    meta = row.meta or {}
    pitch = meta.get("die_pitch")
    bin_pass = meta.get("bin_pass")
    return WaferMap(
        dies=unpack_array(row.dies, shape, "uint8"),
        lot=row.lot,
        wafer_id=row.wafer_id,
        product=row.product,
        notch=meta.get("notch") or "down",
        die_pitch=(float(pitch[0]), float(pitch[1])) if pitch else None,
        source=meta.get("source") or row.source_name,
        label=row.source_label,
        bins=unpack_array(row.bins, shape, "int32") if row.bins is not None else None,
        bin_pass=frozenset(int(b) for b in bin_pass) if bin_pass is not None else None,
        extra={str(k): str(v) for k, v in (meta.get("extra") or {}).items()},
    )


def die_grid(row: Wafer) -> np.ndarray:
    return unpack_array(row.dies, (row.rows, row.cols), "uint8")


# -- store ---------------------------------------------------------------------------------
def store_records(
    session: Session, items: Sequence[tuple[WaferRecord, str, str]], user_id: int | None
) -> list[tuple[Wafer, bool]]:
    """Store (record, format, file name) items, reusing rows with the same content hash.

    Returns one (row, created) per item, in order. Flushes, does not commit.
    """
    hashes = [rec.wafer.content_hash() for rec, _, _ in items]
    existing: dict[str, Wafer] = {}
    unique = list(dict.fromkeys(hashes))
    for i in range(0, len(unique), _LOOKUP_CHUNK):
        chunk = unique[i : i + _LOOKUP_CHUNK]
        for row in session.scalars(select(Wafer).where(Wafer.content_hash.in_(chunk))):
            existing[row.content_hash] = row
    todo: dict[str, tuple[WaferRecord, str, str]] = {}
    for (rec, fmt, name), h in zip(items, hashes, strict=True):
        if h not in existing and h not in todo:
            todo[h] = (rec, fmt, name)
    created = _insert(session, todo, existing, user_id)
    out: list[tuple[Wafer, bool]] = []
    seen: set[str] = set()
    for h in hashes:
        if h in created and h not in seen:
            out.append((created[h], True))
        else:  # stored before, by a concurrent upload, or earlier in this one
            out.append((created.get(h) or existing[h], False))
        seen.add(h)
    return out


def _insert(
    session: Session, todo: dict[str, tuple[WaferRecord, str, str]], existing: dict[str, Wafer], user_id: int | None
) -> dict[str, Wafer]:
    """Insert new wafers in one go; if a concurrent upload stored some meanwhile, one by one."""
    if not todo:
        return {}
    rows = {h: wafer_row(rec, fmt, name, user_id) for h, (rec, fmt, name) in todo.items()}
    try:
        with session.begin_nested():
            session.add_all(rows.values())
            session.flush()
        return rows
    except IntegrityError:
        pass
    created: dict[str, Wafer] = {}
    for h, (rec, fmt, name) in todo.items():
        row = wafer_row(rec, fmt, name, user_id)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            created[h] = row
        except IntegrityError:
            other = session.scalar(select(Wafer).where(Wafer.content_hash == h))
            if other is None:
                raise
            existing[h] = other
    return created


def ingest(
    session: Session,
    files: Sequence[UploadedFile],
    settings: Settings,
    user_id: int | None,
    pass_bins: Sequence[int] | None = None,
) -> IngestResult:
    parsed = parse_uploads(files, settings, pass_bins)
    items = [(rec, p.format, p.filename) for p in parsed for rec in p.records]
    stored = store_records(session, items, user_id)
    session.commit()
    return IngestResult([(row, new, name) for (row, new), (_, _, name) in zip(stored, items, strict=True)])


# -- queries -------------------------------------------------------------------------------
@dataclass
class WaferFilter:
    lot: str | None = None
    product: str | None = None
    verdict: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def latest_predictions() -> Select:
    """(wafer_id, prediction_id) of each wafer's most recent prediction."""
    return select(Prediction.wafer_id, func.max(Prediction.id).label("prediction_id")).group_by(Prediction.wafer_id)


def verdict_condition(column: Any, verdict: str) -> Any:
    """A verdict string (``edge+scratch``) containing the class ``verdict`` (or exactly ``none``).

    ``verdict`` is matched literally (SQLAlchemy's ``autoescape``): a ``%`` or ``_`` in it is
    no wildcard."""
    v = verdict.strip().lower()
    return or_(
        column == v,
        column.startswith(f"{v}+", autoescape=True),
        column.endswith(f"+{v}", autoescape=True),
        column.contains(f"+{v}+", autoescape=True),
    )


def list_wafers(
    session: Session, flt: WaferFilter, limit: int, offset: int
) -> tuple[list[tuple[Wafer, Prediction | None]], int]:
    """A page of wafers (newest first) with each one's latest prediction, and the total.

    Without a verdict filter the page is chosen from ``wafers`` alone and the latest
    predictions are looked up for that page only; a verdict filter joins the latest
    prediction of every wafer (the verdict lives there).
    """
    q = select(Wafer)
    if flt.lot is not None:
        q = q.where(Wafer.lot == flt.lot)
    if flt.product is not None:
        q = q.where(Wafer.product == flt.product)
    if flt.created_from is not None:
        q = q.where(Wafer.created_at >= flt.created_from)
    if flt.created_to is not None:
        q = q.where(Wafer.created_at < flt.created_to)
    if flt.verdict is not None:
        latest = latest_predictions().subquery()
        q = q.outerjoin(latest, latest.c.wafer_id == Wafer.id).outerjoin(
            Prediction, Prediction.id == latest.c.prediction_id
        )
        if flt.verdict.strip().lower() in ("unpredicted", "pending"):
            q = q.where(Prediction.id.is_(None))
        else:
            q = q.where(verdict_condition(Prediction.verdict, flt.verdict))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    wafers = list(session.scalars(q.order_by(Wafer.id.desc()).limit(limit).offset(offset)))
    by_wafer = latest_predictions_of(session, [w.id for w in wafers])
    return [(w, by_wafer.get(w.id)) for w in wafers], int(total)


def latest_predictions_of(session: Session, wafer_ids: Sequence[int]) -> dict[int, Prediction]:
    """wafer id -> its most recent prediction, for these wafers only."""
    if not wafer_ids:
        return {}
    ids = latest_predictions().where(Prediction.wafer_id.in_(list(wafer_ids))).subquery()
    rows = session.scalars(select(Prediction).join(ids, ids.c.prediction_id == Prediction.id))
    return {p.wafer_id: p for p in rows}


def get_wafer(session: Session, wafer_id: int) -> Wafer:
    row = session.get(Wafer, wafer_id)
    if row is None:
        raise NotFoundError(f"wafer {wafer_id} not found", code="wafer_not_found")
    return row


def latest_prediction(session: Session, wafer_id: int) -> Prediction | None:
    return session.scalar(
        select(Prediction).where(Prediction.wafer_id == wafer_id).order_by(Prediction.id.desc()).limit(1)
    )


def delete_wafer(session: Session, wafer_id: int) -> None:
    session.delete(get_wafer(session, wafer_id))
    session.commit()

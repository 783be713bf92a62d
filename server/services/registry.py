"""The model registry: register ONNX models (with their cards), and say which one is active.

A registered model is copied under ``<data dir>/models/<sha256[:16]>/`` so the registry never
points at a file that an upgrade or a user might replace; its card is checked (encoding
version, classes, sha256 of the file) before it is accepted. At start-up the server registers
``WAFERDESK_MODEL_PATH`` (when set) and the shipped default model (when present) and activates
the first of them if no model is active yet. Promotion (the training issue's route) calls
:func:`activate`.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from waferdesk.core.errors import ModelError
from waferdesk.core.modelcard import card_path_for, default_model_path, load_model_card, sha256_file

from ..core.config import Settings
from ..core.errors import NotFoundError
from ..db.base import utcnow
from ..db.models import RegisteredModel

log = logging.getLogger(__name__)


def active_model(session: Session) -> RegisteredModel | None:
    return session.scalar(select(RegisteredModel).where(RegisteredModel.is_active.is_(True)))


def get_model(session: Session, model_id: int) -> RegisteredModel:
    row = session.get(RegisteredModel, model_id)
    if row is None:
        raise NotFoundError(f"model {model_id} not found", code="model_not_found")
    return row


def artifact_path(row: RegisteredModel) -> Path:
    """The model's ONNX file on this server (404 ``model_file_missing`` when it is gone)."""
    path = Path(row.artifact_path)
    if not path.is_file():
        raise NotFoundError(
            f"model {row.id} ({row.version}): its file is missing on the server ({path})", code="model_file_missing"
        )
    return path


def _copy_artifact(src: Path, sha: str, models_dir: Path) -> Path:
    dest_dir = models_dir / sha[:16]
    dest = dest_dir / src.name
    if dest.is_file() and sha256_file(dest) == sha:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    for s, d in ((src, dest), (card_path_for(src), card_path_for(dest))):
        tmp = d.with_name(d.name + ".part")
        shutil.copyfile(s, tmp)
        os.replace(tmp, d)
    return dest


def register_model(
    session: Session,
    settings: Settings,
    model_path: str | Path,
    source: str,
    user_id: int | None = None,
    activate_if_none: bool = True,
) -> RegisteredModel:
    """Register the model at ``model_path`` (idempotent by sha256); raises ModelError if unusable."""
    src = Path(model_path)
    card = load_model_card(src, verify=True)
    existing = session.scalar(select(RegisteredModel).where(RegisteredModel.sha256 == card.sha256))
    if existing is None:
        dest = _copy_artifact(src, card.sha256, settings.models_dir)
        existing = RegisteredModel(
            name=str(card.raw.get("name") or src.stem)[:128],
            version=card.version[:64],
            sha256=card.sha256,
            card=card.to_json(),
            artifact_path=str(dest),
            source=source,
            created_by=user_id,
        )
        try:
            with session.begin_nested():
                session.add(existing)
                session.flush()
        except IntegrityError:  # registered by another worker meanwhile
            existing = session.scalar(select(RegisteredModel).where(RegisteredModel.sha256 == card.sha256))
            assert existing is not None
        else:
            log.info("registered model %s (%s, sha256 %s...)", existing.version, source, card.sha256[:12])
    if activate_if_none and active_model(session) is None:
        activate(session, existing.id)
    return existing


def activate(session: Session, model_id: int) -> RegisteredModel:
    """Make ``model_id`` the served model (and no other)."""
    row = get_model(session, model_id)
    session.execute(
        update(RegisteredModel)
        .where(RegisteredModel.is_active.is_(True), RegisteredModel.id != model_id)
        .values(is_active=False)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    row.is_active = True
    row.activated_at = utcnow()
    session.flush()
    return row


def register_startup_models(session: Session, settings: Settings) -> list[RegisteredModel]:
    """WAFERDESK_MODEL_PATH first (it wins activation), then the shipped default model."""
    out: list[RegisteredModel] = []
    candidates: list[tuple[Path, str]] = []
    if settings.model_path is not None:
        candidates.append((Path(settings.model_path), "path"))
    if settings.register_default_model:
        default = default_model_path()
        if default.is_file():
            candidates.append((default, "default"))
        else:
            log.info("no shipped default model at %s; /predict answers 503 until a model is registered", default)
    for path, source in candidates:
        try:
            out.append(register_model(session, settings, path, source))
        except ModelError as exc:
            if source != "default":
                raise  # a model the operator named must work, or the server must not start
            log.error("shipped default model not registered: %s", exc)
    session.commit()
    return out


def _numeric_leaves(data: Any, prefix: str = "") -> dict[str, float]:
    """``{"validation": {"synthetic": {"miou": 0.9}}}`` -> ``{"validation.synthetic.miou": 0.9}``."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "confusion":
                continue
            out.update(_numeric_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out[prefix] = float(data)
    return out


def compare_metrics(promoted: dict[str, Any] | None, previous: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The two cards' numeric metrics side by side (every metric either of them reports)."""
    a, b = _numeric_leaves(promoted or {}), _numeric_leaves(previous or {})
    rows = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        rows.append(
            {
                "metric": key,
                "promoted": x,
                "previous": y,
                "delta": round(x - y, 6) if x is not None and y is not None else None,
            }
        )
    return rows


def starting_model(session: Session, ref: int | str, encoder: str) -> RegisteredModel:
    """The registered model a fine-tuning job starts from (``ref``: an id or ``"active"``).

    Refused (422, naming the field) when there is no such model, when its file is gone, or when
    it is not a U-Net with the job's encoder: the worker could only fail later, after queueing.
    """
    from ..core.errors import UnprocessableError

    if ref == "active":
        row = active_model(session)
        if row is None:
            raise UnprocessableError("body field init_model: 'active', but no model is active", code="bad_init_model")
    else:
        row = session.get(RegisteredModel, int(ref))
        if row is None:
            raise UnprocessableError(f"body field init_model: model {ref} not found", code="bad_init_model")
    arch = (row.card or {}).get("architecture") or {}
    if str(arch.get("name", "")).lower() != "unet" or arch.get("encoder") != encoder:
        raise UnprocessableError(
            f"body field init_model: model {row.id} ({row.version}) is a {arch.get('name')} with encoder "
            f"{arch.get('encoder')!r}; this job trains a {encoder} U-Net (set encoder to match, or start from scratch)",
            code="bad_init_model",
        )
    if not Path(row.artifact_path).is_file():
        raise UnprocessableError(
            f"body field init_model: model {row.id} ({row.version}): its file is missing on the server",
            code="bad_init_model",
        )
    return row

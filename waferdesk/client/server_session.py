"""A signed-in server session as the desktop uses it: who I am (role -> what the UI offers),
queue tasks fetched whole (wafer grid + the model's pre-annotation) so a worker thread can
prefetch the next one, and review items (annotation beside the prediction).

No Qt here: the window calls these from worker threads and gets plain data back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.taxonomy import IGNORE
from ..core.wafer import WaferMap
from .api import ServerClient, labels_from_payload
from .work import Capabilities, Role

SOURCE = "server"


def wafer_from_detail(w: dict[str, Any]) -> WaferMap:
    """A WaferMap from ``GET /wafers/{id}`` (grid included)."""
    pitch = w.get("die_pitch")
    return WaferMap(
        dies=np.asarray(w["dies"], dtype=np.uint8),
        lot=w.get("lot") or "",
        wafer_id=w.get("wafer_id") or "",
        product=w.get("product") or "",
        notch=w.get("notch") or "down",
        die_pitch=tuple(pitch) if pitch else None,  # type: ignore[arg-type]
        source=w.get("source_name") or "",
    )


@dataclass
class QueueTask:
    """One claimed wafer, ready to show: the grid, the starting labels, where they came from."""

    item_id: int
    wafer_db_id: int
    wafer: WaferMap
    labels: np.ndarray  # what the annotator starts from (my earlier annotation, else the prediction)
    prediction: np.ndarray | None  # the model's mask (the pre-annotation)
    prediction_id: int | None
    model_version: str
    base_id: int | None  # my live annotation of this wafer (edited rather than created)
    base_version: int | None
    base_status: str | None
    fetch_ms: float
    opened_at: float = 0.0  # when it went on screen (time spent)
    entry: Any = None  # the desktop's view of it, prepared in the fetching thread

    @property
    def title(self) -> str:
        return f"{self.wafer.lot} / {self.wafer.wafer_id}"


@dataclass
class ReviewEntry:
    """A submitted annotation to review, with the wafer and the model's mask beside it."""

    annotation: dict[str, Any]
    wafer_db_id: int
    wafer: WaferMap
    labels: np.ndarray
    prediction: np.ndarray | None
    model_version: str
    agreement: dict[str, Any] | None


class ServerSession:
    """Implements :class:`waferdesk.client.work.WorkClient` over a :class:`ServerClient`."""

    def __init__(self, api: ServerClient, me: dict[str, Any] | None = None) -> None:
        self.api = api
        self.me = me if me is not None else api.me()
        self.username: str = self.me["username"]
        self.role = Role(self.me["role"])
        self.capabilities = Capabilities.for_role(self.role)
        # annotators label the queue; a viewer only looks, so the queue is not theirs either
        if self.role is Role.VIEWER:
            self.capabilities = Capabilities(can_edit=False, sees_queue=False, sees_review=False)

    @property
    def server(self) -> str:
        return self.api.base_url

    @property
    def description(self) -> str:
        return f"{self.username} ({self.role}) on {self.server}"

    # -- the queue -------------------------------------------------------------------------------
    def fetch_task(self, api: ServerClient | None = None, exclude: list[int] | None = None) -> QueueTask | None:
        """Claim the next wafer (another than ``exclude``) and fetch all it needs; None when empty."""
        api = api or self.api
        t0 = time.perf_counter()
        claim = api.claim_next(exclude=exclude)
        if claim is None:
            return None
        item = claim["item"]
        wid = int(item["wafer"]["id"])
        wafer = wafer_from_detail(api.get_wafer(wid))
        prediction, version = None, ""
        if item.get("prediction_id"):
            p = api.get_prediction(int(item["prediction_id"]))
            prediction = labels_from_payload(p["mask"], wafer.shape)
            version = str(p["model"]["version"])
        mine = claim.get("my_annotation")
        base_id = base_version = base_status = None
        start = prediction.copy() if prediction is not None else np.full(wafer.shape, IGNORE, np.uint8)
        if mine:
            ann = api.get_annotation(int(mine["id"]))
            base_id, base_version, base_status = int(ann["id"]), int(ann["version"]), str(ann["status"])
            start = labels_from_payload(ann["labels"], wafer.shape)
        return QueueTask(
            item_id=int(item["id"]),
            wafer_db_id=wid,
            wafer=wafer,
            labels=start,
            prediction=prediction,
            prediction_id=int(item["prediction_id"]) if item.get("prediction_id") else None,
            model_version=version,
            base_id=base_id,
            base_version=base_version,
            base_status=base_status,
            fetch_ms=(time.perf_counter() - t0) * 1000,
        )

    # -- review ------------------------------------------------------------------------------------
    def review_list(self, api: ServerClient | None = None) -> list[dict[str, Any]]:
        return (api or self.api).review_list()

    def fetch_review(self, annotation_id: int, api: ServerClient | None = None) -> ReviewEntry:
        api = api or self.api
        ann = api.get_annotation(annotation_id)
        wid = int(ann["wafer_id"])
        wafer = wafer_from_detail(api.get_wafer(wid))
        prediction, version = None, ""
        pid = ann.get("prediction_id")
        if not pid:
            preds = api.wafer_predictions(wid)
            pid = preds[0]["id"] if preds else None
        if pid:
            p = api.get_prediction(int(pid))
            prediction = labels_from_payload(p["mask"], wafer.shape)
            version = str(p["model"]["version"])
        return ReviewEntry(
            annotation=ann,
            wafer_db_id=wid,
            wafer=wafer,
            labels=labels_from_payload(ann["labels"], wafer.shape),
            prediction=prediction,
            model_version=version,
            agreement=None,
        )


__all__ = ["QueueTask", "ReviewEntry", "ServerSession", "wafer_from_detail"]

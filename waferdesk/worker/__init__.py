"""The training worker: one training job, start to end, talking to the server over HTTP.

``python -m waferdesk.worker --server URL --job ID --work-dir DIR`` (or ``waferdesk
train-worker``) with the job's token in ``WAFERDESK_JOB_TOKEN``. The same code runs under
both server backends: as a subprocess of the server (``local``) and in a Kubernetes pod
(the trainer image, ``packaging/trainer/Dockerfile``). It

1. fetches the job's spec and its training set (approved annotations + wafer grids, a
   ``.wdm``) and adds the synthetic wafers the spec asks for;
2. trains with :func:`waferdesk.ml.train.train`, reporting every epoch's metrics;
3. exports ONNX + model card (:func:`waferdesk.ml.export.export_checkpoint`) and uploads
   both to the model registry; then reports success.

Any failure is reported as the job's error in words (the stage, the exception's message and
the last log lines); the traceback goes to the worker's own output, which the server keeps
(``GET /training/jobs/{id}/logs?source=backend``). It imports ``waferdesk.core``,
``waferdesk.ml`` and httpx, never the server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["JobEndedError", "WorkerApiError", "WorkerClient", "run_job"]


def __getattr__(name: str) -> Any:
    # lazy: `waferdesk --help` registers train-worker without importing httpx
    if name in ("JobEndedError", "WorkerApiError", "WorkerClient"):
        from . import api

        return getattr(api, name)
    if name == "run_job":
        from .run import run_job

        return run_job
    raise AttributeError(name)

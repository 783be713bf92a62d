"""One router module per resource; :data:`ROUTERS` is what the app mounts, in this order.

A later issue adds its module (``annotations``, ``queue``, ``exports``, ``training``) and one
line here; every route in it declares its permission with ``require(...)``.
"""

from . import (
    active_learning,
    annotations,
    auth,
    exports,
    models,
    predictions,
    system,
    training,
    training_worker,
    users,
    wafers,
)

ROUTERS = [
    system.router,
    auth.router,
    users.router,
    wafers.router,
    predictions.router,
    models.router,
    exports.router,  # before annotations: /annotations/export and /import are not annotation ids
    annotations.router,
    active_learning.router,
    training.router,
    training_worker.router,
]

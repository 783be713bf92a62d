"""WaferDesk server: users and roles, wafers, predictions, and (later) annotations and training.

Layout (dependencies point downwards; routes never talk to the database directly):

- :mod:`server.app` the app factory :func:`~server.app.create_app`;
- :mod:`server.api` routers (one module per resource), dependencies (``SessionDep``,
  ``CurrentUser``, :func:`~server.api.deps.require`), request/response schemas, error shape;
- :mod:`server.core` settings, security (argon2id, JWT) and THE permission matrix;
- :mod:`server.services` the work behind the routes (wafer ingest, prediction, cache, stats);
- :mod:`server.db` SQLAlchemy models, sessions and Alembic migrations.

The server imports :mod:`waferdesk.core` only (never the desktop app, the client or Qt).
"""

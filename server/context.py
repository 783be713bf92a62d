"""Everything one app instance holds: settings, database, auth, cache, model, metrics.

Built by :func:`server.app.create_app` and kept on ``app.state.ctx`` (no import-time
globals: two apps in one process, e.g. a SQLite one and a Postgres one in the tests, never
share anything). Routes reach it through the dependencies in :mod:`server.api.deps`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .core.config import Settings
from .db.migrate import upgrade
from .db.session import make_engine, make_sessionmaker, session_scope
from .services.auth import AuthService
from .services.cache import ResultCache, make_cache
from .services.metrics import Metrics
from .services.prediction import PredictionService
from .services.registry import register_startup_models
from .services.training.manager import TrainingManager

log = logging.getLogger(__name__)


@dataclass
class ServerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    auth: AuthService
    cache: ResultCache
    metrics: Metrics
    predictor: PredictionService
    training: TrainingManager

    @classmethod
    def build(cls, settings: Settings) -> ServerContext:
        engine = make_engine(settings.sqlalchemy_url)
        cache = make_cache(settings)
        metrics = Metrics()
        sessions = make_sessionmaker(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            auth=AuthService(settings),
            cache=cache,
            metrics=metrics,
            predictor=PredictionService(settings, cache, metrics),
            training=TrainingManager(settings, sessions),
        )

    def start(self, training: bool = True) -> None:
        """Migrate (unless turned off), register the start-up models, start the training manager."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.auto_migrate:
            rev = upgrade(self.engine)
            log.info("database %s at revision %s", self.engine.url.render_as_string(hide_password=True), rev)
        with session_scope(self.sessions) as session:
            register_startup_models(session, self.settings)
        if training:
            self.training.start()

    def close(self) -> None:
        self.training.close()
        self.cache.close()
        self.engine.dispose()

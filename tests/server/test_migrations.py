"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from server.db.migrate import alembic_config, current_revision, head_revision, upgrade
from server.db.models import Base


def test_migrated_database_matches_the_models(database) -> None:
    """A model change without a migration (or the reverse) fails here: write the revision."""
    assert current_revision(database.engine) == head_revision()
    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_indexes_the_queries_need(database) -> None:
    insp = inspect(database.engine)
    wafer_ix = {tuple(ix["column_names"]) for ix in insp.get_indexes("wafers")}
    assert {("lot", "wafer_id"), ("created_at",)} <= wafer_ix
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("wafers")}
    assert ("content_hash",) in uniques
    pred_uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("predictions")}
    assert ("wafer_id", "model_sha256") in pred_uniques


def test_upgrade_is_idempotent_and_downgrade_works(database, tmp_path) -> None:
    from alembic import command

    from server.db.session import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}") if database.backend == "sqlite" else None
    if engine is None:
        # Postgres: exercise downgrade on a scratch schema-less database of its own
        import psycopg

        admin = database.url.rsplit("/", 1)[0] + "/postgres"
        name = database.url.rsplit("/", 1)[1] + "_dg"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        engine = make_engine(
            database.url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
        )
    try:
        assert upgrade(engine) == head_revision()
        assert upgrade(engine) == head_revision()
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert upgrade(engine) == head_revision()
        assert "wafers" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
        if database.backend == "postgres":
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

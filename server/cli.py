"""``waferdesk-server``: ``serve``, ``migrate``, ``create-user``.

Settings come from the environment and ``.env`` (see ``.env.example``): with none at all,
``serve`` runs on an embedded SQLite file under the user data folder. Errors the server
raises on purpose (bad settings, a taken user name, a short password) print as one line and
exit with status 2; no stack traces.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys

from sqlalchemy.exc import OperationalError

from waferdesk import __version__
from waferdesk.core.errors import WaferDeskError

from .core.config import ConfigError, Settings, load_settings
from .core.errors import ApiError
from .core.permissions import Role

log = logging.getLogger("server")


def _settings() -> Settings:
    return load_settings()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .core.logging import configure_logging, logging_config

    settings = _settings()
    if settings.training_server_url is None:
        # local training workers reach this server where it listens (0.0.0.0 -> loopback)
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        url = f"http://{'[' + host + ']' if ':' in host else host}:{args.port}"
        os.environ["WAFERDESK_TRAINING_SERVER_URL"] = url  # also for --workers > 1 (each builds its own app)
        settings = settings.model_copy(update={"training_server_url": url})
    configure_logging(settings.log_level)
    _preflight(settings)
    log.info(
        "WaferDesk server %s on http://%s:%d (API docs at /docs); data in %s; database %s",
        __version__,
        args.host,
        args.port,
        settings.data_dir,
        settings.sqlalchemy_url.split("@")[-1] if "@" in settings.sqlalchemy_url else settings.sqlalchemy_url,
    )
    common = {
        "host": args.host,
        "port": args.port,
        "log_config": logging_config(settings.log_level),
        "access_log": False,  # the request middleware logs each request with its id
        "proxy_headers": args.proxy_headers,
        "forwarded_allow_ips": args.forwarded_allow_ips,
    }
    if args.workers > 1:  # each worker builds its own app from the same environment
        uvicorn.run("server.app:create_app", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)
    return 0


def _preflight(settings: Settings) -> None:
    """Migrate and register models before uvicorn starts, so a problem prints as one line."""
    from .context import ServerContext

    ctx = ServerContext.build(settings)
    try:
        ctx.start(training=False)
    finally:
        ctx.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    from .db.migrate import current_revision, head_revision, upgrade
    from .db.session import make_engine

    settings = _settings()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        before = current_revision(engine)
        after = upgrade(engine)
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if before == after:
        print(f"database {url} already at revision {after} (head {head_revision()})")
    else:
        print(f"database {url} migrated from {before or 'empty'} to {after}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass(f"password for {args.username}: ")
    second = getpass.getpass("again: ")
    if first != second:
        raise WaferDeskError("the two passwords differ; nothing was created")
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    from .db.migrate import upgrade
    from .db.session import make_engine, make_sessionmaker, session_scope
    from .services.auth import AuthService

    settings = _settings()
    auth = AuthService(settings)
    password = _read_password(args)
    auth.check_password(password)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        upgrade(engine)
        with session_scope(make_sessionmaker(engine)) as session:
            user = auth.create_user(session, args.username, password, Role(args.role), args.email)
            uid, name, role = user.id, user.username, user.role
    finally:
        engine.dispose()
    print(f"created {role} {name!r} (id {uid}) in {engine.url.render_as_string(hide_password=True)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="waferdesk-server",
        description="WaferDesk server: users, wafers, predictions. Settings from the environment / .env.",
    )
    p.add_argument("--version", action="version", version=f"waferdesk-server {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("serve", help="run the HTTP server (migrates the database first)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    s.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-For from --forwarded-allow-ips")
    s.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies trusted for X-Forwarded-* headers")
    s.set_defaults(func=cmd_serve)

    m = sub.add_parser("migrate", help="bring the database schema up to date")
    m.set_defaults(func=cmd_migrate)

    c = sub.add_parser("create-user", help="create an account (the first admin, typically)")
    c.add_argument("username")
    c.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value, help="default viewer")
    c.add_argument("--email", default=None)
    c.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    c.set_defaults(func=cmd_create_user)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, WaferDeskError) as exc:
        print(f"waferdesk-server: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"waferdesk-server: {exc.message}", file=sys.stderr)
        return 2
    except OperationalError as exc:
        print(f"waferdesk-server: cannot use the database: {str(exc.orig).strip() or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

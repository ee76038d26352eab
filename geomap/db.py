"""Database connections: one cached engine per process, a session per request.

* :func:`database_url` says which database the settings point at (external URL, or the
  embedded cluster).
* :func:`get_engine` caches one engine per URL; every connection has a
  ``statement_timeout`` so no query runs unbounded.
* :func:`init_app` gives a Flask app ``get_session()`` (one per request, closed on
  teardown); :func:`session_scope` is the CLI's equivalent (commit or roll back).
* :func:`migrate` runs the Alembic migrations (the schema's only writer).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from geomap import pg
from geomap.config import Settings
from geomap.errors import DatabaseError, DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def database_url(settings: Settings) -> str:
    """The URL in force: ``GEOMAP_DATABASE_URL``, or the embedded cluster's."""
    if settings.database_url:
        return settings.database_url
    return pg.Cluster(settings.state_dir, port=settings.pg_port).url()


_ENGINES: dict[tuple[str, int, int, float], Engine] = {}


def _create_engine(
    url: str, statement_timeout_ms: int, pool_size: int = 10, pool_timeout_s: float = 2.0
) -> Engine:
    return sa.create_engine(
        url,
        pool_pre_ping=True,  # a restarted database is picked up without restarting us
        # The most recently used connection first: a few stay busy and keep their
        # prepared statements (psycopg prepares a query after 5 runs on a connection:
        # planning the team mirror's query costs more than running it).
        pool_use_lifo=True,
        pool_size=max(1, int(pool_size)),
        max_overflow=0,
        # A request waits this long for a free connection, then gets 503 (api/errors.py):
        # under overload, answering "busy, retry" beats queueing every thread for 30 s.
        pool_timeout=float(pool_timeout_s),
        connect_args={
            # JIT compiles plans for queries it thinks long; ours are short or spatial, and
            # compiling cost 200 ms on a 3 s coverage query for no gain.
            "options": f"-c statement_timeout={int(statement_timeout_ms)} -c jit=off",
            "connect_timeout": 5,
            "application_name": "geomap",
        },
    )


def get_engine(settings: Settings) -> Engine:
    """The process's engine for the settings' database (created once, then cached)."""
    key = (
        database_url(settings),
        int(settings.statement_timeout_ms),
        int(settings.pool_size),
        float(settings.pool_timeout_s),
    )
    if key not in _ENGINES:
        _ENGINES[key] = _create_engine(*key)
    return _ENGINES[key]


def close_connections() -> None:
    """Close every pooled connection, keeping the engines (before a fork: each process
    then opens its own)."""
    for engine in _ENGINES.values():
        engine.dispose()


def forget_connections() -> None:
    """In a process just forked: drop the pooled connections inherited from the parent
    without closing them (they are the parent's), so this process opens its own."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)


def dispose_engines() -> None:
    """Close every cached engine's pool (tests, and before a fork)."""
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        engine.dispose()


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session for one CLI command: commit at the end, roll back on error."""
    with Session(get_engine(settings)) as session, translate_errors(), session.begin():
        yield session


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn 'cannot connect' driver errors into :class:`DatabaseUnavailable`."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        if exc.connection_invalidated or _is_connect_error(exc):
            raise DatabaseUnavailable(
                "the database is not reachable right now; try again shortly "
                f"({_first_line(exc.orig)})"
            ) from exc
        raise


def _is_connect_error(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in (
            "connection refused",
            "no such file or directory",
            "could not connect",
            "server closed the connection",
            "terminating connection",
            "connection failed",
            "the database system is",
        )
    )


def _first_line(exc: Any) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


EXTENSIONS_SQL = sa.text(
    "SELECT extname, extversion FROM pg_extension WHERE extname IN ('postgis', 'pgrouting')"
)


def check_postgis(conn: Connection) -> dict[str, str | None]:
    """Versions of PostGIS and pgRouting in the connected database.

    Raises
    ------
    DatabaseError
        When PostGIS is not installed there (the message says how to add it).
    """
    rows = dict(conn.execute(EXTENSIONS_SQL).all())
    if "postgis" not in rows:
        raise DatabaseError(
            "the database has no PostGIS extension: run `CREATE EXTENSION postgis; "
            "CREATE EXTENSION pgrouting;` as a superuser, or run `geomap db migrate` as one"
        )
    return {"postgis": rows.get("postgis"), "pgrouting": rows.get("pgrouting")}


def alembic_config(url: str):  # -> alembic.config.Config (imported lazily: CLI start-up)
    """An Alembic configuration for ``url`` using the packaged migrations."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(settings: Settings, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or with ``down=True`` downgrade) the schema to ``revision``."""
    from alembic import command

    config = alembic_config(database_url(settings))
    with translate_errors():
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def init_app(app: Any) -> None:
    """Give a Flask app a session factory; sessions close on request teardown."""
    factory = sessionmaker(bind=get_engine(app.config["GEOMAP"]))
    app.extensions["geomap_sessionmaker"] = factory
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The current request's session (opened on first use, closed on teardown)."""
    from flask import current_app, g

    if "geomap_session" not in g:
        g.geomap_session = current_app.extensions["geomap_sessionmaker"]()
    return g.geomap_session


def closing_after(session: Session, body: Iterator[str]) -> Iterator[str]:
    """Yield ``body``, then close ``session``: for streamed responses.

    Flask (3.1) tears the request down, closing its session, *before* a streamed body is
    written; the query feeding the body then runs on the same session object, reopened,
    which nothing else would close. The cursor streaming the rows lives until the end.
    """
    try:
        yield from body
    finally:
        session.close()


def _close_session(_exc: BaseException | None = None) -> None:
    from flask import g

    session = g.pop("geomap_session", None)
    if session is not None:
        session.close()

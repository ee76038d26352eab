"""Database connections: one cached engine per process, a session per request.

* :func:`database_url` says which database the settings point at (external URL, or the
  embedded cluster), as the service's role; :func:`migrate_url` the same database as the
  schema owner's (migrations, seed). The grants themselves: migration ``0013_roles``,
  checked by :mod:`geomap.dbroles`.
* :func:`get_engine` caches one engine per URL; every connection has a
  ``statement_timeout`` so no query runs unbounded.
* :func:`init_app` gives a Flask app ``get_session()`` (one per request, closed on
  teardown), and ``get_read_connection()`` for requests that read with one statement
  (no transaction round trips); :func:`session_scope` is the CLI's equivalent (commit or
  roll back).
* Pooled connections are pinged only after sitting idle (:func:`_ping_when_idle`), and
  :func:`driver_rows` runs the per-request statements on the driver directly.
* :func:`migrate` runs the Alembic migrations (the schema's only writer).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.rows import dict_row
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from geomap import pg
from geomap.config import Settings
from geomap.errors import DatabaseError, DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def database_url(settings: Settings) -> str:
    """The URL the service connects with.

    ``GEOMAP_DATABASE_URL``, or the embedded cluster's as its application role
    (:data:`geomap.pg.APP`: rows only, the audit append-only).
    """
    if settings.database_url:
        return settings.database_url
    return pg.Cluster(settings.state_dir, port=settings.pg_port).url(role=pg.APP)


def migrate_url(settings: Settings) -> str:
    """The URL the migrations and the seed connect with: the schema owner's.

    ``GEOMAP_MIGRATE_URL``; else ``GEOMAP_DATABASE_URL`` when that is set (one URL for
    everything, as before roles); else the embedded cluster's :data:`geomap.pg.OWNER`.
    """
    if settings.migrate_url:
        return settings.migrate_url
    if settings.database_url:
        return settings.database_url
    return pg.Cluster(settings.state_dir, port=settings.pg_port).url(role=pg.OWNER)


def as_owner(settings: Settings) -> Settings:
    """``settings`` whose database URL is :func:`migrate_url`'s (the owner's).

    For the commands that replace data wholesale (``geomap seed`` truncates every table
    and moves the sequences, which the application role may not).
    """
    return settings.replace(database_url=migrate_url(settings))


_ENGINES: dict[tuple[str, int, int, float], Engine] = {}

#: A pooled connection used less than this long ago is handed out without a ping.
PING_AFTER_IDLE_S = 0.5


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it sat idle for a while.

    A restarted database leaves dead connections in the pool; a ping at checkout finds
    them and the pool replaces them, so no request fails. SQLAlchemy's ``pool_pre_ping``
    pings at *every* checkout: a round trip per request, a quarter of a nearest-teams
    answer. A connection returned a moment ago is alive (HikariCP skips the check the same
    way, within 500 ms); a database that dies in that moment costs the next request on it
    a 503 (``translate_errors``), and the pool then drops every connection of before.
    """
    dialect = engine.dialect

    @sa.event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["geomap_returned"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get("geomap_returned")
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc
        if not alive:
            raise sa.exc.DisconnectionError("the pooled connection did not answer a ping")


def _create_engine(
    url: str, statement_timeout_ms: int, pool_size: int = 10, pool_timeout_s: float = 2.0
) -> Engine:
    engine = sa.create_engine(
        url,
        # The most recently used connection first: a few stay busy and keep their
        # prepared statements (psycopg prepares a query after 5 runs on a connection:
        # planning the team mirror's query costs more than running it).
        pool_use_lifo=True,
        pool_size=max(1, int(pool_size)),
        max_overflow=0,
        # A request waits this long for a free connection, then gets 503 (web/problems.py):
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
    _ping_when_idle(engine)  # a restarted database is picked up without restarting us
    return engine


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
        if exc.connection_invalidated or is_connect_error(exc):
            raise DatabaseUnavailable(
                "the database is not reachable right now; try again shortly "
                f"({_first_line(exc.orig)})"
            ) from exc
        raise


def is_connect_error(exc: sa.exc.OperationalError) -> bool:
    """True when ``exc`` says the database cannot be reached (refused, gone, starting up).

    Parameters
    ----------
    exc : sqlalchemy.exc.OperationalError
        The error a statement or a connect raised.

    Returns
    -------
    bool
        False for errors of the statement itself (timeouts, constraint violations).
    """
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


def driver_rows(conn: Connection | Session, statement: sa.TextClause,
                params: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of a ``text()`` statement as dicts, run on ``conn``'s driver connection.

    For the statements every request runs (the team mirror's "what changed?"): the
    statement and its bound parameters go to psycopg as they are, in ``conn``'s
    transaction, without SQLAlchemy's per-execution bookkeeping (result metadata, row
    proxies, events), a fifth of a short request's time. Values are the driver's, exactly
    what ``conn.execute(statement).mappings()`` gives for a ``text()`` without types.
    """
    if isinstance(conn, Session):
        conn = conn.connection()
    dialect = conn.dialect
    sql = _driver_sql(statement, dialect)
    driver = conn.connection.driver_connection
    try:
        with driver.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        # What SQLAlchemy does with a driver error: a lost connection is dropped from
        # the pool, and the error comes back as SQLAlchemy's, which the callers map.
        lost = dialect.is_disconnect(exc, driver, None)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                         connection_invalidated=lost, dialect=dialect) from exc


@functools.lru_cache(maxsize=64)
def _driver_sql(statement: sa.TextClause, dialect: Any) -> str:
    """``statement`` compiled for the driver (``%(name)s`` placeholders), once."""
    return str(statement.compile(dialect=dialect))


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
            "CREATE EXTENSION pgrouting;` in it as a superuser, then `geomap db migrate`"
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

    config = alembic_config(migrate_url(settings))
    with translate_errors():
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def init_app(app: Any) -> None:
    """Give a Flask app a session factory; sessions close on request teardown."""
    engine = get_engine(app.config["GEOMAP"])
    factory = sessionmaker(bind=engine)
    app.extensions["geomap_sessionmaker"] = factory
    app.extensions["geomap_read_engine"] = (
        factory, engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The current request's session (opened on first use, closed on teardown)."""
    from flask import current_app, g

    if "geomap_session" not in g:
        g.geomap_session = current_app.extensions["geomap_sessionmaker"]()
    return g.geomap_session


def get_read_connection() -> Connection | Session:
    """The current request's database handle, for a request that reads with *one* statement.

    When the request has none yet, it gets a plain connection whose statements run
    outside a transaction (autocommit): no ``BEGIN`` before the statement and no
    ``ROLLBACK`` at teardown (two round trips of the three a one-query answer would
    otherwise make), and none of the ORM session's bookkeeping. The nearest teams by
    distance, the busiest read, is answered this way. One statement sees one snapshot, so
    the answer is as consistent as in a transaction. A request that already has a session
    (its key was checked and stamped, say) keeps that one.
    """
    from flask import current_app, g

    if "geomap_session" not in g:
        factory = current_app.extensions["geomap_sessionmaker"]
        installed, read_engine = current_app.extensions["geomap_read_engine"]
        # A session factory put in place of ours (tests join their transaction so)
        # serves the reads as well.
        g.geomap_session = read_engine.connect() if factory is installed else factory()
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

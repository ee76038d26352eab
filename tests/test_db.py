"""Connection life: pings only after idleness, driver-level reads, one-statement reads."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from geomap import create_app, db
from geomap.errors import DatabaseUnavailable

PID_SQL = sa.text("SELECT pg_backend_pid() AS pid")


@pytest.fixture
def engine(db_url: str):
    # An engine of its own (not the cached one): these tests kill its connections.
    engine = db._create_engine(db_url, 5_000, pool_size=1, pool_timeout_s=2.0)
    yield engine
    engine.dispose()


def _terminate(url: str, pid: int) -> None:
    killer = sa.create_engine(url, poolclass=sa.NullPool)
    with killer.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    killer.dispose()


def test_an_idle_connection_killed_by_the_server_is_replaced_without_an_error(engine, db_url):
    with engine.connect() as conn:
        first = conn.execute(PID_SQL).scalar()
    _terminate(db_url, first)
    time.sleep(db.PING_AFTER_IDLE_S + 0.1)  # idle long enough to be pinged at checkout
    with engine.connect() as conn:
        second = conn.execute(PID_SQL).scalar()
    assert second != first


def test_a_connection_returned_a_moment_ago_is_not_pinged(engine):
    pings = []
    original = engine.dialect.do_ping

    def counting(dbapi_connection):
        pings.append(1)
        return original(dbapi_connection)

    engine.dialect.do_ping = counting
    with engine.connect() as conn:  # new connection: never returned yet, so pinged
        conn.execute(sa.text("SELECT 1"))
    before = len(pings)
    for _ in range(20):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    assert len(pings) == before  # 20 checkouts within the window: no ping round trip


def test_driver_rows_match_sqlalchemy_and_keep_the_transaction(engine):
    statement = sa.text("SELECT CAST(:n AS int) AS n, 'x' || :s AS s, now() AS at")
    with engine.begin() as conn:
        assert db.driver_rows(conn, statement, {"n": 3, "s": "y"})[0]["n"] == 3
        expected = conn.execute(statement, {"n": 3, "s": "y"}).mappings().one()
        got = db.driver_rows(conn, statement, {"n": 3, "s": "y"})
        assert got == [dict(expected)]  # same values, same transaction (same now())


def test_driver_rows_errors_come_back_as_sqlalchemy_errors(engine, db_url):
    with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="no_such_"):
        db.driver_rows(conn, sa.text("SELECT * FROM no_such_table"), {})
    with engine.connect() as conn:
        pid = conn.execute(PID_SQL).scalar()
        conn.rollback()
        _terminate(db_url, pid)
        # A lost connection: dropped from the pool and answered as "database unavailable"
        # (503), exactly as when SQLAlchemy runs the statement.
        with pytest.raises(DatabaseUnavailable), db.translate_errors():
            db.driver_rows(conn, PID_SQL, {})
        assert conn.invalidated


def test_one_statement_reads_run_outside_a_transaction(shared_url):
    app = create_app({"database_url": shared_url})
    with app.test_request_context():
        conn = db.get_read_connection()
        assert isinstance(conn, sa.Connection)
        assert conn.execute(sa.text("SELECT pg_current_xact_id_if_assigned()")).scalar() is None
        # Autocommit: each statement is its own transaction, none stays open.
        status = conn.connection.driver_connection.info.transaction_status
        assert status.name == "IDLE"

"""Fixtures: a real PostGIS + pgRouting, started once per test session.

* ``cluster``: a throwaway embedded cluster in a fresh folder under /tmp (fsync off).
* ``template_url``: a database migrated to head, used as the template of the others.
* ``db_url``: a fresh database cloned from the template, for one test (CLI tests, imports
  that must commit, migrations).
* ``connection``: a connection to a shared database inside a transaction that is rolled
  back after the test; ``app``/``client`` run their sessions inside it (savepoints).
* ``nanchang_url``: a database holding the whole default dataset, loaded once per session;
  tests read it inside a rolled-back transaction (``nanchang_connection``, ``nanchang_app``).

Every URL these fixtures give is the application role's (``pg.APP``), as the served app
connects: the whole suite runs with the service's grants and no more. Migrations and the
seed run as the owner (:func:`owner_url`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import sessionmaker

from geomap import config, create_app, db, pg

_counter = itertools.count()


@pytest.fixture(scope="session")
def cluster() -> Iterator[pg.Cluster]:
    state = Path(tempfile.mkdtemp(prefix="geomap-test-"))
    state.chmod(0o755)  # the postgres user must be able to enter it
    test_cluster = pg.Cluster(state, throwaway=True)
    test_cluster.up("geomap_template")
    # Tests only: the owner's test connection may SET ROLE to the app role (_as_app_role).
    engine = sa.create_engine(
        test_cluster.url("postgres", role=pg.SUPERUSER), poolclass=sa.NullPool
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(f"GRANT {pg.APP} TO {pg.OWNER}")
    engine.dispose()
    yield test_cluster
    db.dispose_engines()
    test_cluster.destroy()
    shutil.rmtree(state, ignore_errors=True)


def owner_url(url: str) -> str:
    """The same database as ``url``, as the schema owner (migrations, seed, test set-up)."""
    return sa.engine.make_url(url).set(username=pg.OWNER).render_as_string(hide_password=False)


def _settings(url: str) -> config.Settings:
    return config.load({"database_url": url, "migrate_url": owner_url(url)}, environ={})


@pytest.fixture(scope="session")
def template_url(cluster: pg.Cluster) -> str:
    url = cluster.url("geomap_template", role=pg.APP)
    db.migrate(_settings(url))
    return url


def _clone(cluster: pg.Cluster, template: str, name: str) -> str:
    cluster.drop_database(name)
    engine = sa.create_engine(
        cluster.url("postgres", role=pg.SUPERUSER),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with engine.connect() as conn:
        # A template must have no other connections while it is copied.
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :t AND pid <> pg_backend_pid()"
            ),
            {"t": template},
        )
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER {pg.OWNER}'))
    engine.dispose()
    return cluster.url(name, role=pg.APP)


@pytest.fixture
def db_url(cluster: pg.Cluster, template_url: str) -> Iterator[str]:
    """A fresh, migrated, empty database for this test only."""
    name = f"geomap_t{os.getpid()}_{next(_counter)}"
    url = _clone(cluster, "geomap_template", name)
    yield url
    db.dispose_engines()
    cluster.drop_database(name)


@pytest.fixture(scope="session")
def shared_url(cluster: pg.Cluster, template_url: str) -> str:
    """A migrated database shared by the transaction-isolated tests."""
    return _clone(cluster, "geomap_template", "geomap_shared")


def _rolled_back(url: str) -> Iterator[sa.Connection]:
    # The test's own statements (its set-up) run as the owner; the app's sessions on this
    # connection switch to the app role (_as_app_role).
    engine = db.get_engine(db.as_owner(_settings(url)))
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        finally:
            transaction.rollback()


@pytest.fixture
def connection(shared_url: str) -> Iterator[sa.Connection]:
    """A connection whose every change is rolled back after the test."""
    yield from _rolled_back(shared_url)


def _app_on(url: str, conn: sa.Connection, **overrides):
    app = create_app({"database_url": url, **overrides})
    app.config["TESTING"] = True
    # The app's sessions join the test's transaction through savepoints.
    app.extensions["geomap_sessionmaker"] = _as_app_role(
        sessionmaker(bind=conn, join_transaction_mode="create_savepoint"), conn
    )
    # One connection for every session: planning jobs run in the request, not a thread.
    app.extensions["geomap_jobs_inline"] = True
    return app


def _as_app_role(factory: sessionmaker, conn: sa.Connection) -> sessionmaker:
    """``factory``, whose sessions run as the app role (``SET ROLE``) while any is open.

    The test's connection is the owner's; what the app does through it must pass with the
    service's own grants, exactly as on the app's own connections.
    """
    open_sessions: set[int] = set()

    @sa.event.listens_for(factory, "after_begin")
    def _begun(session, transaction, connection) -> None:
        if not open_sessions:
            connection.exec_driver_sql(f"SET ROLE {pg.APP}")
        open_sessions.add(id(transaction))

    @sa.event.listens_for(factory, "after_transaction_end")
    def _ended(session, transaction) -> None:
        if id(transaction) in open_sessions:
            open_sessions.discard(id(transaction))
            if not open_sessions and conn.in_transaction():
                conn.exec_driver_sql("RESET ROLE")

    return factory


@pytest.fixture
def app(shared_url: str, connection: sa.Connection):
    """The ``make run`` demo's configuration: open reads on (a keyless caller on this
    machine, talking to the service directly, reads). Tests of the default settings
    (closed: every read needs a credential) build theirs with ``make_app()``."""
    return _app_on(shared_url, connection, open_read=True)


@pytest.fixture
def make_app(shared_url: str, connection: sa.Connection):
    """Another app on the test's transaction, at the default settings but ``overrides``.

    ``make_app()`` is the service as deployed (no open reads); ``make_app(open_read=True)``
    is the ``make run`` demo's configuration.
    """
    return lambda **overrides: _app_on(shared_url, connection, **overrides)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Click's runner with GEOMAP_DATABASE_URL (and the owner's GEOMAP_MIGRATE_URL) pointing
    at a fresh database."""
    monkeypatch.setenv("GEOMAP_DATABASE_URL", db_url)
    monkeypatch.setenv("GEOMAP_MIGRATE_URL", owner_url(db_url))
    return CliRunner()


@pytest.fixture(scope="session")
def nanchang_url(cluster: pg.Cluster, template_url: str) -> str:
    """A database holding the whole default Nanchang dataset (loaded once per session)."""
    from geomap.cli import main

    url = _clone(cluster, "geomap_template", "geomap_nanchang")
    # Through the real command, as `make run` does it: generate, load, all-or-nothing.
    env = {"GEOMAP_DATABASE_URL": url, "GEOMAP_MIGRATE_URL": owner_url(url)}
    result = CliRunner().invoke(main, ["seed", "nanchang"], env=env)
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture
def nanchang_connection(nanchang_url: str) -> Iterator[sa.Connection]:
    yield from _rolled_back(nanchang_url)


@pytest.fixture
def nanchang_client(nanchang_url: str, nanchang_connection: sa.Connection):
    """A client of the demo's configuration (open reads) on the default dataset."""
    return _app_on(nanchang_url, nanchang_connection, open_read=True).test_client()


@pytest.fixture
def world(connection):
    """The command loop's small world (tests/casesworld.py) in the test's transaction."""
    from tests import casesworld

    return casesworld.build(connection)


@pytest.fixture
def ops_client(shared_url: str, connection: sa.Connection, world):
    """A client whose app runs on the world's clock (``world.clock``)."""
    app = _app_on(shared_url, connection)
    app.extensions["geomap_clock"] = world.clock
    return app.test_client()

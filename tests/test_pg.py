"""The embedded cluster: idempotent up, data survives a restart, clear errors."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from geomap import config, db, dbroles, pg
from geomap.errors import ConfigError


@pytest.fixture
def own_cluster():
    state = Path(tempfile.mkdtemp(prefix="geomap-pgtest-"))
    state.chmod(0o755)
    cluster = pg.Cluster(state, port=5433, throwaway=True)
    yield cluster
    cluster.destroy()
    shutil.rmtree(state, ignore_errors=True)


def _query(url: str, sql: str):
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def test_up_is_idempotent_and_data_survives_restart(own_cluster):
    own_cluster.up()
    own_cluster.up()  # twice is fine
    assert own_cluster.status().running
    url = own_cluster.url()
    _query(url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    own_cluster.stop()
    assert not own_cluster.status().running
    own_cluster.stop()  # stopping a stopped cluster is fine too
    own_cluster.up()
    assert _query(url, "SELECT n FROM kept") == 42


def test_listens_on_a_socket_only(own_cluster):
    own_cluster.up()
    assert _query(own_cluster.url(), "SHOW listen_addresses") == ""
    assert (own_cluster.socket_dir / ".s.PGSQL.5433").exists()


def test_deep_paths_get_a_short_socket_folder(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 5)
    cluster = pg.Cluster(deep)
    assert len(str(cluster.socket_dir)) < 100
    assert not str(cluster.socket_dir).startswith(str(deep))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_unreachable_state_dir_is_explained():
    locked = Path(tempfile.mkdtemp(prefix="geomap-locked-"))  # mode 0700, owned by root
    try:
        with pytest.raises(ConfigError, match=r"cannot enter .*GEOMAP_STATE_DIR"):
            pg.Cluster(locked / "state").init()
    finally:
        shutil.rmtree(locked, ignore_errors=True)


def test_a_database_made_before_the_roles_is_handed_to_the_owner(own_cluster):
    # As before the roles: the superuser made and migrated the database, owning it all.
    own_cluster.init()
    own_cluster.start()
    maker = sa.create_engine(
        own_cluster.url("postgres", role=pg.SUPERUSER),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with maker.connect() as conn:
        conn.exec_driver_sql('CREATE DATABASE "geomap"')
    maker.dispose()
    superuser = own_cluster.url(role=pg.SUPERUSER)
    db.migrate(config.load({"database_url": superuser}, environ={}), "0012_sessions")
    own_cluster.up()
    state = {"state_dir": own_cluster.root.parent, "pg_port": own_cluster.port}
    db.migrate(config.load(state, environ={}))  # as the owner now
    assert _query(own_cluster.url(), "SELECT pg_get_userbyid(relowner) FROM pg_class "
                  "WHERE oid = 'audit_log'::regclass") == pg.OWNER  # fmt: skip
    engine = sa.create_engine(own_cluster.url(role=pg.APP), poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert dbroles.check(conn) == []
    engine.dispose()

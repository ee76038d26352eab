"""Least privilege: the service's own connection cannot alter, disable or bypass the audit.

The connection is made exactly as the served app makes it (``create_app`` → its engine),
so what is proved here is what a bug or an injected statement in the service could do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from geomap import create_app, db, dbroles, pg
from geomap.cli import main
from tests import casesworld
from tests.conftest import owner_url

AUDIT_ROW = (
    "INSERT INTO audit_log (at, key_name, key_role, action, changes) "
    "VALUES (now(), 'test', 'cli', 'case.create', '{}') RETURNING id"
)

#: Statement → what PostgreSQL answers the service's role.
FORBIDDEN = {
    "UPDATE audit_log SET key_name = 'someone else'": "permission denied for table audit_log",
    "DELETE FROM audit_log": "permission denied for table audit_log",
    "TRUNCATE audit_log": "permission denied for table audit_log",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change": "must be owner",
    "ALTER TABLE audit_log DISABLE TRIGGER ALL": "must be owner",
    "DROP TRIGGER audit_log_no_change ON audit_log": "must be owner",
    "DROP TRIGGER audit_log_no_truncate ON audit_log": "must be owner",
    "SET session_replication_role = replica": "permission denied to set parameter",
    "SET LOCAL session_replication_role = replica": "permission denied to set parameter",
    "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN NEW; END $$": "permission denied for schema public",
    "ALTER FUNCTION audit_log_append_only() SECURITY DEFINER": "must be owner",
    "ALTER TABLE audit_log OWNER TO geomap_app": "must be owner",
    "UPDATE events SET kind = 'case.gone'": "permission denied for table events",
    "DELETE FROM events": "permission denied for table events",
    "TRUNCATE events": "permission denied for table events",
    "CREATE TABLE scratch (n int)": "permission denied for schema public",
    "SET ROLE geomap_owner": "permission denied to set role",
    "SET ROLE postgres": "permission denied to set role",
}


@pytest.fixture
def app_connection(db_url: str) -> Iterator[sa.Connection]:
    """The served app's own connection (its engine, its URL), in a rolled-back transaction."""
    app = create_app({"database_url": db_url})
    with db.get_engine(app.config["GEOMAP"]).connect() as conn, conn.begin():
        yield conn


def _refused(conn: sa.Connection, statement: str) -> str:
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(statement)
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        return str(exc.orig)
    savepoint.rollback()
    return "accepted"


def test_the_services_connection_cannot_alter_disable_or_bypass_the_audit(app_connection):
    conn = app_connection
    assert conn.exec_driver_sql("SELECT current_user").scalar() == pg.APP
    row = conn.exec_driver_sql(AUDIT_ROW).scalar()  # appending is what the service does
    for statement, answer in FORBIDDEN.items():
        assert answer in _refused(conn, statement), statement
    # Nothing moved: the row is there, unchanged, and the audit's triggers are all on.
    assert conn.exec_driver_sql(
        "SELECT key_name FROM audit_log WHERE id = %s", (row,)
    ).scalar() == "test"  # fmt: skip
    triggers = conn.exec_driver_sql(
        "SELECT tgname, tgenabled FROM pg_trigger "
        "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal ORDER BY tgname"
    ).all()
    assert triggers == [("audit_log_no_change", "O"), ("audit_log_no_truncate", "O")]
    assert conn.exec_driver_sql("SHOW session_replication_role").scalar() == "origin"


def test_the_services_connection_can_neither_alter_nor_drop_any_table(app_connection):
    tables = app_connection.exec_driver_sql(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'geomap_partitions') "
        "AND c.relkind IN ('r', 'p') AND c.relname <> 'spatial_ref_sys' ORDER BY 1"
    ).scalars().all()  # fmt: skip
    assert "audit_log" in tables and "geomap_partitions.team_positions_default" in tables
    for table in tables:
        for statement in (
            f"ALTER TABLE {table} ADD COLUMN smuggled int",
            f"ALTER TABLE {table} DISABLE TRIGGER ALL",
            f"DROP TABLE {table} CASCADE",
            f"TRUNCATE {table} CASCADE",
        ):
            answer = _refused(app_connection, statement)
            assert "must be owner" in answer or "permission denied" in answer, statement


def test_partitions_made_by_the_service_are_the_owners_and_granted(app_connection):
    conn = app_connection
    made = conn.exec_driver_sql("SELECT team_positions_ensure('2031-01-01', '2031-02-15')")
    assert made.scalar() == 2
    table = "geomap_partitions.team_positions_2031_02"
    owner = conn.exec_driver_sql(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", (table,)
    ).scalar()
    assert owner == pg.OWNER
    granted = conn.exec_driver_sql(
        "SELECT has_table_privilege(%(app)s, %(t)s, 'INSERT'), "
        "has_table_privilege(%(app)s, %(t)s, 'SELECT'), "
        "has_table_privilege(%(read)s, %(t)s, 'SELECT'), "
        "has_table_privilege(%(read)s, %(t)s, 'INSERT')",
        {"app": pg.APP, "read": pg.READ, "t": table},
    ).one()
    assert tuple(granted) == (True, True, True, False)
    assert "must be owner" in _refused(conn, f"DROP TABLE {table}")


def test_the_read_only_role_cannot_write(cluster, db_url):
    name = sa.engine.make_url(db_url).database
    engine = sa.create_engine(cluster.url(name, role=pg.READ), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn, conn.begin():
            assert conn.exec_driver_sql("SELECT count(*) FROM cases").scalar() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM audit_log").scalar() == 0
            for statement in (
                AUDIT_ROW,
                "INSERT INTO events (at, kind, audience, payload) "
                "VALUES (now(), 'case.create', 'layers', '{}')",
                "UPDATE teams SET status = 'off_duty'",
                "DELETE FROM api_keys",
                "SELECT team_positions_ensure('2030-01-01', '2030-02-01')",
                "SELECT nextval('audit_log_id_seq')",
                "CREATE TABLE scratch (n int)",
            ):
                assert "permission denied" in _refused(conn, statement), statement
    finally:
        engine.dispose()


def test_the_service_works_with_its_grants(db_url):
    """A case reported through the served app (as geomap_app) is stored, audited, read."""
    setup = sa.create_engine(owner_url(db_url), poolclass=sa.NullPool)
    with setup.begin() as conn:
        world = casesworld.build(conn)
    setup.dispose()
    app = create_app({"database_url": db_url})
    client = app.test_client()
    lon, lat = casesworld.point(4, 4)
    created = client.post(
        "/api/cases",
        json={"kind": "incident", "title": "水管爆裂", "lon": lon, "lat": lat},
        headers=world.headers(),
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    case_id = created.get_json()["case"]["id"]
    read = client.get(f"/api/cases/{case_id}", headers=world.headers())
    assert read.status_code == 200
    assert read.get_json()["title"] == "水管爆裂"
    with db.get_engine(app.config["GEOMAP"]).connect() as conn:
        assert conn.exec_driver_sql("SELECT current_user").scalar() == pg.APP
        actions = conn.exec_driver_sql(
            "SELECT action FROM audit_log WHERE case_id = %s", (case_id,)
        ).scalars().all()  # fmt: skip
    assert "case.create" in actions


def test_the_app_fixtures_sessions_run_as_the_app_role(app):
    with app.app_context():
        assert db.get_session().execute(sa.text("SELECT current_user")).scalar() == pg.APP


def test_the_check_finds_nothing_wrong_with_the_embedded_roles(db_url):
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert dbroles.check(conn) == []
        assert dbroles.check(conn, pg.READ, read_only=True) == []
    engine.dispose()


def test_the_check_names_what_a_superuser_owner_has_too_much(cluster, db_url):
    name = sa.engine.make_url(db_url).database
    for role, expected in (
        (pg.SUPERUSER, "postgres is a superuser"),
        (pg.OWNER, "geomap_owner owns audit_log, events, "),
    ):
        engine = sa.create_engine(cluster.url(name, role=role), poolclass=sa.NullPool)
        with engine.connect() as conn:
            findings = [str(f) for f in dbroles.check(conn)]
        engine.dispose()
        assert any(f.startswith(f"excessive: {expected}") for f in findings), findings


def test_the_check_names_each_grant_too_many_or_missing(db_url):
    owner = sa.create_engine(owner_url(db_url), poolclass=sa.NullPool)
    with owner.begin() as conn:
        conn.exec_driver_sql(f"GRANT UPDATE, TRUNCATE ON audit_log TO {pg.APP}")
        conn.exec_driver_sql(f"REVOKE INSERT ON cases FROM {pg.APP}")
        conn.exec_driver_sql(f"REVOKE EXECUTE ON FUNCTION team_positions_ensure FROM {pg.APP}")
        conn.exec_driver_sql(f"GRANT INSERT ON teams TO {pg.READ}")
    owner.dispose()
    result = CliRunner().invoke(
        main, ["db", "check"], env={"GEOMAP_DATABASE_URL": db_url, "GEOMAP_MIGRATE_URL": ""}
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "geomap_app (the service's role): 4 problem(s)" in lines
    for finding in (
        "  missing: INSERT on cases",
        "  excessive: UPDATE on audit_log",
        "  excessive: TRUNCATE on audit_log",
        "  missing: EXECUTE on function team_positions_ensure(date, date)",
        "geomap_read (the read-only role): 1 problem(s)",
        "  excessive: INSERT on teams",
    ):
        assert finding in lines, result.output


def test_db_check_says_the_embedded_grants_are_right(runner):
    result = runner.invoke(main, ["db", "check"])
    assert result.exit_code == 0, result.output
    assert "geomap_app (the service's role): grants as they should be" in result.output
    assert "geomap_read (the read-only role): grants as they should be" in result.output

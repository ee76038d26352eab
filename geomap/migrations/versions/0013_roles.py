"""Least privilege: the service's role reads and writes rows, and only appends to the audit.

Revision ID: 0013_roles
Revises: 0012_sessions
Create Date: 2026-11-27

Three roles (``geomap.pg`` creates them in the embedded cluster; an operator creates them
for an external database, see README "Database roles"):

* ``geomap_owner`` owns the schema and runs the migrations (this one included): the
  default privileges below are its, so every table a later migration creates gets the
  same grants without a line of its own.
* ``geomap_app``, the service's: SELECT, INSERT, UPDATE and DELETE on the tables; only
  SELECT and INSERT on ``audit_log`` and ``events`` (so not even a bug or an injected
  statement rewrites history); USAGE on the sequences; EXECUTE on
  ``team_positions_ensure``. It owns nothing, so it cannot ALTER, DISABLE TRIGGER, DROP
  or TRUNCATE; a non-superuser cannot set ``session_replication_role``.
* ``geomap_read``: SELECT only (read nodes, reports).

``team_positions_ensure`` creates the monthly partitions the service needs while it runs:
it becomes SECURITY DEFINER (it runs as its owner, with a fixed search_path), so the
service can have its partitions made without the right to create tables; the partitions
are the owner's and get the grants of the ``geomap_partitions`` default privileges.
``streets_refresh`` (the trigger that refreshes the streets layer after a network change)
is SECURITY DEFINER for the same reason: only a materialized view's owner may refresh it.

Missing roles are created (NOLOGIN, so they grant nothing until an operator gives them a
login) when the migrating role may create roles; otherwise the migration stops and says
which to create.
"""

from __future__ import annotations

from alembic import op

revision = "0013_roles"
down_revision = "0012_sessions"
branch_labels = None
depends_on = None

UPGRADE = """
DO $$
DECLARE
    wanted text;
BEGIN
    FOREACH wanted IN ARRAY ARRAY['geomap_owner', 'geomap_app', 'geomap_read'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = wanted) THEN
            IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles
                    WHERE rolname = current_user) THEN
                RAISE EXCEPTION 'role % does not exist: create it first (CREATE ROLE % LOGIN;) '
                    'or migrate as a role that may create roles', wanted, wanted;
            END IF;
            EXECUTE format('CREATE ROLE %I NOLOGIN', wanted);
        END IF;
    END LOOP;
END $$;

GRANT USAGE ON SCHEMA public, geomap_partitions TO geomap_app, geomap_read;

-- Every table and view of the schema (not the extensions', not Alembic's bookkeeping).
DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT c.oid::regclass AS name, c.relname, c.relkind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'geomap_partitions')
          AND c.relkind IN ('r', 'p', 'v', 'm')
          AND c.relname <> 'alembic_version'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO geomap_read', item.name);
        IF item.relname IN ('audit_log', 'events') OR item.relkind IN ('v', 'm') THEN
            EXECUTE format('GRANT SELECT ON %s TO geomap_app', item.name);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO geomap_app',
                           item.name);
        END IF;
    END LOOP;
END $$;
GRANT SELECT ON alembic_version TO geomap_app, geomap_read;

-- The audit and the events: appended to, read, never changed (said explicitly, so that
-- grants made by hand before this migration are taken back as well).
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_log, events FROM geomap_app;
REVOKE ALL ON audit_log, events FROM geomap_read;
GRANT SELECT, INSERT ON audit_log, events TO geomap_app;
GRANT SELECT ON audit_log, events TO geomap_read;

GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO geomap_app;

-- Tables of later migrations, and partitions made while the service runs.
ALTER DEFAULT PRIVILEGES FOR ROLE geomap_owner IN SCHEMA public, geomap_partitions
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO geomap_app;
ALTER DEFAULT PRIVILEGES FOR ROLE geomap_owner IN SCHEMA public, geomap_partitions
    GRANT SELECT ON TABLES TO geomap_read;
ALTER DEFAULT PRIVILEGES FOR ROLE geomap_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO geomap_app;

ALTER FUNCTION team_positions_ensure(date, date)
    SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
REVOKE EXECUTE ON FUNCTION team_positions_ensure(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION team_positions_ensure(date, date) TO geomap_app;

ALTER FUNCTION streets_refresh() SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp;
"""

DOWNGRADE = """
ALTER FUNCTION streets_refresh() SECURITY INVOKER RESET search_path;
ALTER FUNCTION team_positions_ensure(date, date) SECURITY INVOKER RESET search_path;
GRANT EXECUTE ON FUNCTION team_positions_ensure(date, date) TO PUBLIC;
REVOKE EXECUTE ON FUNCTION team_positions_ensure(date, date) FROM geomap_app;

ALTER DEFAULT PRIVILEGES FOR ROLE geomap_owner IN SCHEMA public
    REVOKE USAGE, SELECT ON SEQUENCES FROM geomap_app;
ALTER DEFAULT PRIVILEGES FOR ROLE geomap_owner IN SCHEMA public, geomap_partitions
    REVOKE SELECT ON TABLES FROM geomap_read;
ALTER DEFAULT PRIVILEGES FOR ROLE geomap_owner IN SCHEMA public, geomap_partitions
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM geomap_app;

REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM geomap_app;
REVOKE ALL ON ALL TABLES IN SCHEMA public, geomap_partitions FROM geomap_app, geomap_read;
REVOKE USAGE ON SCHEMA public, geomap_partitions FROM geomap_app, geomap_read;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # The roles stay: they belong to the cluster (other databases may use them).
    op.execute(DOWNGRADE)

"""Routing sync: data versions the in-memory street graph and team mirror follow.

Revision ID: 0005_routing_sync
Revises: 0004_region_pieces
Create Date: 2026-11-25

The routing engine (``geomap.routing``) keeps the road network and the teams in memory.
It must notice every change, whoever makes it (the CLI, an import, psql, another worker),
and must never mix another transaction's uncommitted rows into what it shares:

* ``data_versions``: one row per mirrored data set (``network``, ``grids``, ``regions``,
  and a deletion epoch ``teams``), bumped by statement triggers with a number from a sequence
  (so a rolled-back bump is never reused for other content), stamped with the writing
  transaction, and announced with ``NOTIFY geomap_data``.
* ``teams.sync_xid``: the transaction that last wrote each team row (a BEFORE trigger).
  A reader fetches the rows written at or after the oldest transaction that was still
  running at its previous look (its snapshot's xmin): nothing committed since is missed,
  without a shared row that every team update would have to lock.
* ``circles.start_edge``/``start_fraction``: circles start at a position along an
  edge (as ``pgr_withPoints`` does), not at the nearest node; ``circles.population``:
  the residents inside, counted when the circle is built (so grids changing forget them).
"""

from __future__ import annotations

from alembic import op

revision = "0005_routing_sync"
down_revision = "0004_region_pieces"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE SEQUENCE data_version_seq;
CREATE TABLE data_versions (
    name        text PRIMARY KEY,
    version     bigint NOT NULL,
    changed_xid xid8,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO data_versions (name, version)
SELECT name, nextval('data_version_seq')
FROM (VALUES ('network'), ('grids'), ('regions'), ('teams')) v(name);

-- TG_ARGV[0]: the data set's name. The row lock taken here is held to commit, so writers
-- of one data set queue behind each other; these are bulk writes (imports), never the
-- per-team updates of live operations (those only stamp their own row, below).
CREATE FUNCTION data_versions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_version bigint;
BEGIN
    UPDATE data_versions
    SET version = nextval('data_version_seq'), changed_xid = pg_current_xact_id(),
        changed_at = now()
    WHERE name = TG_ARGV[0]
    RETURNING version INTO new_version;
    PERFORM pg_notify('geomap_data', TG_ARGV[0] || ' ' || new_version);
    RETURN NULL;
END $$;

CREATE TRIGGER road_edges_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road_edges
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_bump('network');
CREATE TRIGGER road_nodes_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_bump('network');
CREATE TRIGGER grids_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grids
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_bump('grids');
CREATE TRIGGER regions_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON regions
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_bump('regions');
CREATE TRIGGER teams_deleted_version
    AFTER DELETE OR TRUNCATE ON teams
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_bump('teams');

ALTER TABLE teams ADD COLUMN sync_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX teams_sync_xid_idx ON teams (sync_xid);
CREATE FUNCTION stamp_sync_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.sync_xid := pg_current_xact_id();
    RETURN NEW;
END $$;
CREATE TRIGGER teams_stamp_sync_xid
    BEFORE INSERT OR UPDATE ON teams
    FOR EACH ROW EXECUTE FUNCTION stamp_sync_xid();

ALTER TABLE circles ADD COLUMN start_edge bigint;
ALTER TABLE circles ADD COLUMN start_fraction double precision
    CHECK (start_fraction IS NULL OR start_fraction BETWEEN 0 AND 1);
ALTER TABLE circles ADD COLUMN population double precision;
-- A circle's residents come from the grids: new grids, new counts.
CREATE TRIGGER grids_forget_circles
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grids
    FOR EACH STATEMENT EXECUTE FUNCTION circles_forget_network();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS grids_forget_circles ON grids;
ALTER TABLE circles DROP COLUMN IF EXISTS population;
ALTER TABLE circles DROP COLUMN IF EXISTS start_fraction;
ALTER TABLE circles DROP COLUMN IF EXISTS start_edge;
DROP TRIGGER IF EXISTS teams_stamp_sync_xid ON teams;
DROP FUNCTION IF EXISTS stamp_sync_xid();
DROP INDEX IF EXISTS teams_sync_xid_idx;
ALTER TABLE teams DROP COLUMN IF EXISTS sync_xid;
DROP TRIGGER IF EXISTS teams_deleted_version ON teams;
DROP TRIGGER IF EXISTS grids_version ON grids;
DROP TRIGGER IF EXISTS regions_version ON regions;
DROP TRIGGER IF EXISTS road_nodes_version ON road_nodes;
DROP TRIGGER IF EXISTS road_edges_version ON road_edges;
DROP FUNCTION IF EXISTS data_versions_bump();
DROP TABLE IF EXISTS data_versions;
DROP SEQUENCE IF EXISTS data_version_seq;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

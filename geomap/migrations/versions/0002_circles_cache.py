"""Circles cache: isochrone polygons of venues, invalidated by the database itself.

Revision ID: 0002_circles_cache
Revises: 0001_initial_schema
Create Date: 2026-11-23

A circle is keyed by venue (table + id), mode, budget and the parameters that shape it.
Triggers keep the cache honest whatever writes the data (the CLI, an import, psql):
any change to the road network empties it; a venue that moves or disappears loses its
circles.
"""

from __future__ import annotations

from alembic import op

revision = "0002_circles_cache"
down_revision = "0001_initial_schema"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE circles (
    id             serial PRIMARY KEY,
    venue_table    text NOT NULL CHECK (venue_table IN ('sites', 'stations')),
    venue_id       integer NOT NULL,
    mode           text NOT NULL CHECK (mode IN ('walk', 'drive')),
    budget_s       double precision NOT NULL CHECK (budget_s > 0),
    walk_speed_kmh double precision NOT NULL CHECK (walk_speed_kmh > 0),
    access_m       double precision NOT NULL CHECK (access_m >= 0),
    start_node     bigint,
    reached_edges  integer NOT NULL DEFAULT 0,
    area_km2       double precision NOT NULL DEFAULT 0,
    geom           geometry(MultiPolygon, 4326) CHECK (geom IS NULL OR ST_IsValid(geom)),
    built_at       timestamptz NOT NULL DEFAULT now(),
    source         text NOT NULL CHECK (source ~ '^(real|synthetic):'),
    UNIQUE (venue_table, venue_id, mode, budget_s, walk_speed_kmh, access_m)
);
CREATE INDEX circles_geom_gist ON circles USING gist (geom);

CREATE FUNCTION circles_forget_network() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM circles;
    RETURN NULL;
END $$;

CREATE FUNCTION circles_forget_venue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM circles WHERE venue_table = TG_TABLE_NAME AND venue_id = OLD.id;
    RETURN NULL;
END $$;

CREATE TRIGGER road_edges_forget_circles
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road_edges
    FOR EACH STATEMENT EXECUTE FUNCTION circles_forget_network();

CREATE TRIGGER sites_forget_circles_moved
    AFTER UPDATE OF geom ON sites
    FOR EACH ROW WHEN (NOT ST_Equals(OLD.geom, NEW.geom))
    EXECUTE FUNCTION circles_forget_venue();
CREATE TRIGGER sites_forget_circles_deleted
    AFTER DELETE ON sites FOR EACH ROW EXECUTE FUNCTION circles_forget_venue();
CREATE TRIGGER stations_forget_circles_moved
    AFTER UPDATE OF geom ON stations
    FOR EACH ROW WHEN (NOT ST_Equals(OLD.geom, NEW.geom))
    EXECUTE FUNCTION circles_forget_venue();
CREATE TRIGGER stations_forget_circles_deleted
    AFTER DELETE ON stations FOR EACH ROW EXECUTE FUNCTION circles_forget_venue();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS road_edges_forget_circles ON road_edges;
DROP TRIGGER IF EXISTS sites_forget_circles_moved ON sites;
DROP TRIGGER IF EXISTS sites_forget_circles_deleted ON sites;
DROP TRIGGER IF EXISTS stations_forget_circles_moved ON stations;
DROP TRIGGER IF EXISTS stations_forget_circles_deleted ON stations;
DROP FUNCTION IF EXISTS circles_forget_network();
DROP FUNCTION IF EXISTS circles_forget_venue();
DROP TABLE IF EXISTS circles;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

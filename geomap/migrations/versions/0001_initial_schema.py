"""Initial schema: admin chain, grids, stations, sites, teams, dispatch, road network.

Revision ID: 0001_initial_schema
Revises:
Create Date: 2026-11-23

Written as SQL on purpose: PostGIS types, CHECK constraints and expression indexes read
best as the DDL PostgreSQL runs. The vocabularies are frozen here as they were at this
revision (``geomap/vocab.py`` is the live list; a later change to it needs a migration).
"""

from __future__ import annotations

from alembic import op

revision = "0001_initial_schema"
down_revision = None
branch_labels = None
depends_on = None

SOURCE_CHECK = "CHECK (source ~ '^(real|synthetic):')"
VALID_AREA = "CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom))"

UPGRADE = f"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgrouting;

CREATE TABLE regions (
    code        text PRIMARY KEY CHECK (code ~ '^[0-9]{{6,12}}$'),
    parent_code text REFERENCES regions (code) DEFERRABLE INITIALLY DEFERRED,
    level       text NOT NULL CHECK (level IN ('city', 'district', 'township', 'community')),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    name_en     text,
    geom        geometry(MultiPolygon, 4326) NOT NULL {VALID_AREA},
    source      text NOT NULL {SOURCE_CHECK},
    CHECK ((level = 'city') = (parent_code IS NULL))
);
CREATE INDEX regions_geom_gist ON regions USING gist (geom);
CREATE INDEX regions_parent_idx ON regions (parent_code);

CREATE TABLE grids (
    id             serial PRIMARY KEY,
    code           text NOT NULL UNIQUE CHECK (btrim(code) <> ''),
    name           text NOT NULL CHECK (btrim(name) <> ''),
    community_code text REFERENCES regions (code) DEFERRABLE INITIALLY DEFERRED,
    population     integer NOT NULL DEFAULT 0 CHECK (population >= 0),
    households     integer NOT NULL DEFAULT 0 CHECK (households >= 0 AND households <= population),
    geom           geometry(MultiPolygon, 4326) NOT NULL {VALID_AREA},
    source         text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX grids_geom_gist ON grids USING gist (geom);
CREATE INDEX grids_geog_gist ON grids USING gist ((geom::geography));
CREATE INDEX grids_community_idx ON grids (community_code);

CREATE TABLE stations (
    id          serial PRIMARY KEY,
    code        text UNIQUE,
    name        text NOT NULL CHECK (btrim(name) <> ''),
    kind        text NOT NULL CHECK (kind IN (
        'centre_district', 'centre_township', 'centre_community', 'service_complex',
        'red_station', 'grid_station', 'grid_lookout', 'party_post', 'branch_room',
        'red_cabin', 'love_station', 'discussion_pavilion', 'elderly_canteen', 'book_house')),
    region_code text REFERENCES regions (code) DEFERRABLE INITIALLY DEFERRED,
    grid_code   text REFERENCES grids (code) DEFERRABLE INITIALLY DEFERRED,
    address     text,
    geom        geometry(Point, 4326) NOT NULL CHECK (NOT ST_IsEmpty(geom)),
    source      text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX stations_geom_gist ON stations USING gist (geom);
CREATE INDEX stations_geog_gist ON stations USING gist ((geom::geography));
CREATE INDEX stations_kind_idx ON stations (kind);

CREATE TABLE sites (
    id            serial PRIMARY KEY,
    code          text UNIQUE,
    name          text NOT NULL CHECK (btrim(name) <> ''),
    kind          text NOT NULL CHECK (kind IN (
        'memorial_hall', 'monument', 'revolutionary_site', 'red_village', 'education_base')),
    region_code   text REFERENCES regions (code) DEFERRABLE INITIALLY DEFERRED,
    address       text,
    coord_quality text CHECK (coord_quality IN ('verified', 'approximate')),
    geom          geometry(Point, 4326) NOT NULL CHECK (NOT ST_IsEmpty(geom)),
    source        text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX sites_geom_gist ON sites USING gist (geom);
CREATE INDEX sites_geog_gist ON sites USING gist ((geom::geography));

CREATE TABLE teams (
    id              serial PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (btrim(code) <> ''),
    name            text NOT NULL CHECK (btrim(name) <> ''),
    kind            text NOT NULL CHECK (kind IN (
        'medical', 'organ_party', 'youth', 'veteran', 'steward', 'rider',
        'red_flag_car', 'service')),
    unit            text,
    headcount       integer NOT NULL CHECK (headcount > 0),
    status          text NOT NULL DEFAULT 'available'
                    CHECK (status IN ('available', 'deployed', 'off_duty')),
    capabilities    text[] NOT NULL DEFAULT '{{}}',
    home_grid_code  text REFERENCES grids (code) DEFERRABLE INITIALLY DEFERRED,
    base_station_id integer REFERENCES stations (id) DEFERRABLE INITIALLY DEFERRED,
    base_geom       geometry(Point, 4326),
    geom            geometry(Point, 4326) NOT NULL CHECK (NOT ST_IsEmpty(geom)),
    position_at     timestamptz,
    leader_name     text,
    leader_phone    text,
    source          text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX teams_geom_gist ON teams USING gist (geom);
CREATE INDEX teams_geog_gist ON teams USING gist ((geom::geography));
CREATE INDEX teams_kind_status_idx ON teams (kind, status);
CREATE INDEX teams_capabilities_gin ON teams USING gin (capabilities);

CREATE TABLE team_positions (
    id          bigserial PRIMARY KEY,
    team_id     integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    recorded_at timestamptz NOT NULL,
    geom        geometry(Point, 4326) NOT NULL,
    source      text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX team_positions_team_time_idx ON team_positions (team_id, recorded_at DESC);

CREATE TABLE incidents (
    id          serial PRIMARY KEY,
    title       text NOT NULL CHECK (btrim(title) <> ''),
    kind        text,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'dispatched', 'closed')),
    grid_code   text REFERENCES grids (code),
    reported_at timestamptz NOT NULL DEFAULT now(),
    geom        geometry(Point, 4326) NOT NULL,
    source      text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX incidents_geom_gist ON incidents USING gist (geom);

CREATE TABLE dispatches (
    id            serial PRIMARY KEY,
    incident_id   integer NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    team_id       integer NOT NULL REFERENCES teams (id),
    status        text NOT NULL DEFAULT 'sent'
                  CHECK (status IN ('sent', 'arrived', 'done', 'cancelled')),
    dispatched_at timestamptz NOT NULL DEFAULT now(),
    travel_min    double precision CHECK (travel_min >= 0),
    source        text NOT NULL {SOURCE_CHECK}
);

CREATE TABLE road_nodes (
    id     bigint PRIMARY KEY,
    osm_id bigint,
    geom   geometry(Point, 4326) NOT NULL,
    source text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX road_nodes_geom_gist ON road_nodes USING gist (geom);
CREATE INDEX road_nodes_geog_gist ON road_nodes USING gist ((geom::geography));

CREATE TABLE road_edges (
    id              bigint PRIMARY KEY,
    source_node     bigint NOT NULL REFERENCES road_nodes (id) DEFERRABLE INITIALLY DEFERRED,
    target_node     bigint NOT NULL REFERENCES road_nodes (id) DEFERRABLE INITIALLY DEFERRED,
    road_class      text NOT NULL,
    name            text,
    length_m        double precision NOT NULL CHECK (length_m > 0),
    walk_s          double precision NOT NULL,
    walk_reverse_s  double precision NOT NULL,
    drive_s         double precision NOT NULL,
    drive_reverse_s double precision NOT NULL,
    is_bridge       boolean NOT NULL DEFAULT false,
    osm_id          bigint,
    geom            geometry(LineString, 4326) NOT NULL,
    source          text NOT NULL {SOURCE_CHECK},
    CHECK (source_node <> target_node)
);
CREATE INDEX road_edges_geom_gist ON road_edges USING gist (geom);
CREATE INDEX road_edges_source_node_idx ON road_edges (source_node);
CREATE INDEX road_edges_target_node_idx ON road_edges (target_node);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS road_edges, road_nodes, dispatches, incidents, team_positions, teams,
    sites, stations, grids, regions;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    # The extensions stay: other databases objects may use them, and dropping PostGIS
    # needs more privileges than the schema's owner may have.
    op.execute(DOWNGRADE)

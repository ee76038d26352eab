"""Cases from report to closure: cases, dispatches, escalations, positions, events, audit.

Revision ID: 0011_cases
Revises: 0010_maps
Create Date: 2026-11-25

* ``cases`` replace ``incidents``: kind, severity, the unit chain resolved from the point,
  the escalation level (materialized; reads compute it from the clock as well), the
  acceptance deadlines in force when the case was reported, and the lifecycle times.
  Existing incidents become cases of kind ``incident`` with the same ids.
* ``dispatches`` get their own states (assigned → en_route → on_scene → released).
  ``dispatches_one_active_per_team`` is the database's guarantee that a team is in at most
  one active dispatch, whatever the application does.
* ``case_escalations``: one row per climb; (case, level) is unique, so materializing a
  climb twice (two readers, two workers) records it once.
* ``team_positions`` is partitioned by month (UTC months; partitions live in the schema
  ``geomap_partitions`` beside a default one). ``team_positions_ensure(first, last)``
  creates the missing months, moving any of their rows out of the default partition.
* ``events``: what the live stream (LISTEN ``geomap_events``) announces, with the
  permission needed to see each event and its personal fields kept apart.
* ``audit_log``: append-only (triggers refuse UPDATE, DELETE and TRUNCATE).
"""

from __future__ import annotations

from alembic import op

revision = "0011_cases"
down_revision = "0010_maps"
branch_labels = None
depends_on = None

SOURCE_CHECK = "CHECK (source ~ '^(real|synthetic):')"

UPGRADE = f"""
CREATE TABLE cases (
    id              serial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('incident', 'hazard', 'request')),
    severity        text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    title           text NOT NULL CHECK (btrim(title) <> '' AND length(title) <= 200),
    description     text CHECK (length(description) <= 4000),
    address         text CHECK (length(address) <= 500),
    status          text NOT NULL CHECK (status IN ('reported', 'accepted', 'dispatched',
                        'on_scene', 'resolved', 'closed', 'cancelled')),
    geom            geometry(Point, 4326) NOT NULL CHECK (NOT ST_IsEmpty(geom)),
    located         text NOT NULL CHECK (located IN ('grid', 'community', 'township',
                        'district', 'nearest_grid', 'none')),
    grid_code       text,
    community_code  text,
    township_code   text,
    district_code   text,
    level           text NOT NULL CHECK (level IN ('grid', 'community', 'township',
                        'district')),
    level_since     timestamptz NOT NULL,
    escalate_at     timestamptz,
    accept_minutes  integer[] NOT NULL CHECK (cardinality(accept_minutes) = 3),
    resolve_by      timestamptz NOT NULL,
    reporter_name   text CHECK (length(reporter_name) <= 100),
    reporter_phone  text CHECK (length(reporter_phone) <= 40),
    reported_at     timestamptz NOT NULL,
    accepted_at     timestamptz,
    resolved_at     timestamptz,
    closed_at       timestamptz,
    cancelled_at    timestamptz,
    resolved_by     text,
    resolved_key_id integer,
    created_by      text NOT NULL,
    updated_at      timestamptz NOT NULL,
    source          text NOT NULL {SOURCE_CHECK}
);
CREATE INDEX cases_geom_gist ON cases USING gist (geom);
CREATE INDEX cases_status_idx ON cases (status);
CREATE INDEX cases_reported_idx ON cases (reported_at);
-- The escalation loop's question: which unaccepted cases are due to climb?
CREATE INDEX cases_escalate_idx ON cases (escalate_at) WHERE status = 'reported';

CREATE TABLE case_escalations (
    case_id integer NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    level   text NOT NULL CHECK (level IN ('community', 'township', 'district')),
    at      timestamptz NOT NULL,
    PRIMARY KEY (case_id, level)
);

-- Incidents become cases (same ids, so their dispatches follow).
INSERT INTO cases (id, kind, severity, title, status, geom, located, grid_code,
                   community_code, level, level_since, escalate_at, accept_minutes,
                   resolve_by, reported_at, accepted_at, closed_at, created_by, updated_at,
                   source)
SELECT i.id, 'incident', 'medium', i.title,
       CASE i.status WHEN 'open' THEN 'reported' WHEN 'dispatched' THEN 'dispatched'
                     ELSE 'closed' END,
       i.geom, CASE WHEN i.grid_code IS NULL THEN 'none' ELSE 'grid' END, i.grid_code,
       g.community_code, 'grid', i.reported_at, NULL, ARRAY[10, 20, 30],
       i.reported_at + interval '4 hours', i.reported_at,
       CASE WHEN i.status <> 'open' THEN i.reported_at END,
       CASE WHEN i.status = 'closed' THEN i.reported_at END,
       'migration 0011_cases', i.reported_at, i.source
FROM incidents i LEFT JOIN grids g ON g.code = i.grid_code;
SELECT setval(pg_get_serial_sequence('cases', 'id'),
              coalesce((SELECT max(id) FROM cases), 0) + 1, false);

ALTER TABLE dispatches RENAME TO dispatches_0001;
ALTER TABLE dispatches_0001 RENAME CONSTRAINT dispatches_pkey TO dispatches_0001_pkey;
CREATE TABLE dispatches (
    id          serial PRIMARY KEY,
    case_id     integer NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    team_id     integer NOT NULL REFERENCES teams (id),
    status      text NOT NULL CHECK (status IN ('assigned', 'en_route', 'on_scene',
                    'released')),
    assigned_at timestamptz NOT NULL,
    en_route_at timestamptz,
    on_scene_at timestamptz,
    released_at timestamptz,
    eta_min     double precision CHECK (eta_min >= 0),
    origin      geometry(Point, 4326),
    assigned_by text NOT NULL,
    note        text CHECK (length(note) <= 1000),
    source      text NOT NULL {SOURCE_CHECK},
    CHECK ((status = 'released') = (released_at IS NOT NULL))
);
-- Before 0011 a team could hold several active dispatches: keep its latest one active.
INSERT INTO dispatches (id, case_id, team_id, status, assigned_at, on_scene_at, released_at,
                        eta_min, assigned_by, source)
SELECT d.id, d.incident_id, d.team_id,
       CASE WHEN d.status IN ('done', 'cancelled') OR d.id <> last.id THEN 'released'
            WHEN d.status = 'arrived' THEN 'on_scene' ELSE 'assigned' END,
       d.dispatched_at, CASE WHEN d.status = 'arrived' THEN d.dispatched_at END,
       CASE WHEN d.status IN ('done', 'cancelled') OR d.id <> last.id
            THEN d.dispatched_at END,
       d.travel_min, 'migration 0011_cases', d.source
FROM dispatches_0001 d
LEFT JOIN LATERAL (
    SELECT max(a.id) AS id FROM dispatches_0001 a
    WHERE a.team_id = d.team_id AND a.status IN ('sent', 'arrived')
) last ON true;
SELECT setval(pg_get_serial_sequence('dispatches', 'id'),
              coalesce((SELECT max(id) FROM dispatches), 0) + 1, false);
DROP TABLE dispatches_0001;
DROP TABLE incidents;
CREATE UNIQUE INDEX dispatches_one_active_per_team ON dispatches (team_id)
    WHERE status <> 'released';
CREATE INDEX dispatches_case_idx ON dispatches (case_id);

-- Position history, partitioned by month.
CREATE SCHEMA geomap_partitions;
ALTER TABLE team_positions RENAME TO team_positions_0001;
ALTER TABLE team_positions_0001 RENAME CONSTRAINT team_positions_pkey
    TO team_positions_0001_pkey;
ALTER INDEX team_positions_team_time_idx RENAME TO team_positions_0001_team_time_idx;
ALTER SEQUENCE team_positions_id_seq OWNED BY NONE;
CREATE TABLE team_positions (
    id          bigint NOT NULL DEFAULT nextval('team_positions_id_seq'),
    team_id     integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    recorded_at timestamptz NOT NULL,
    geom        geometry(Point, 4326) NOT NULL,
    accuracy_m  double precision CHECK (accuracy_m >= 0),
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL {SOURCE_CHECK},
    PRIMARY KEY (id, recorded_at)
) PARTITION BY RANGE (recorded_at);
ALTER SEQUENCE team_positions_id_seq OWNED BY team_positions.id;
CREATE INDEX team_positions_team_time_idx ON team_positions (team_id, recorded_at DESC);
CREATE TABLE geomap_partitions.team_positions_default PARTITION OF team_positions DEFAULT;

-- Months are UTC months. A month's rows that arrived before its partition existed sit in
-- the default partition: they move into the new one before it is attached.
CREATE FUNCTION team_positions_ensure(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', first_day)::date;
    name  text;
    low   timestamptz;
    high  timestamptz;
    made  integer := 0;
BEGIN
    WHILE month <= last_day LOOP
        name := 'team_positions_' || to_char(month, 'YYYY_MM');
        low := month::timestamp AT TIME ZONE 'UTC';
        high := (month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        IF to_regclass('geomap_partitions.' || quote_ident(name)) IS NULL THEN
            EXECUTE format('CREATE TABLE geomap_partitions.%I (LIKE public.team_positions '
                           'INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            EXECUTE format('WITH moved AS (DELETE FROM geomap_partitions.team_positions_default '
                           'WHERE recorded_at >= %L AND recorded_at < %L RETURNING *) '
                           'INSERT INTO geomap_partitions.%I SELECT * FROM moved',
                           low, high, name);
            EXECUTE format('ALTER TABLE public.team_positions ATTACH PARTITION '
                           'geomap_partitions.%I FOR VALUES FROM (%L) TO (%L)',
                           name, low, high);
            made := made + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN made;
END $$;

SELECT team_positions_ensure(
    least((SELECT min(recorded_at) FROM team_positions_0001), now())::date,
    (now() + interval '3 months')::date);
INSERT INTO team_positions (id, team_id, recorded_at, geom, received_at, source)
SELECT id, team_id, recorded_at, geom, recorded_at, source FROM team_positions_0001;
DROP TABLE team_positions_0001;

CREATE TABLE events (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL,
    kind     text NOT NULL CHECK (kind ~ '^[a-z_]+\\.[a-z_]+$'),
    audience text NOT NULL CHECK (audience IN ('layers', 'analysis', 'personal')),
    payload  jsonb NOT NULL,
    personal jsonb,
    case_id  integer,
    team_id  integer
);
CREATE INDEX events_at_idx ON events (at);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    key_id      integer,
    key_name    text NOT NULL,
    key_role    text NOT NULL,
    action      text NOT NULL CHECK (action ~ '^[a-z_]+\\.[a-z_]+$'),
    case_id     integer,
    dispatch_id integer,
    team_id     integer,
    changes     jsonb NOT NULL DEFAULT '{{}}'
);
CREATE INDEX audit_log_case_idx ON audit_log (case_id, id) WHERE case_id IS NOT NULL;
CREATE INDEX audit_log_team_idx ON audit_log (team_id, id) WHERE team_id IS NOT NULL;
CREATE INDEX audit_log_key_idx ON audit_log (key_name, id);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""

DOWNGRADE = f"""
DROP TABLE IF EXISTS audit_log;
DROP FUNCTION IF EXISTS audit_log_append_only();
DROP TABLE IF EXISTS events;

CREATE TABLE team_positions_0008 (
    id          bigserial PRIMARY KEY,
    team_id     integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    recorded_at timestamptz NOT NULL,
    geom        geometry(Point, 4326) NOT NULL,
    source      text NOT NULL {SOURCE_CHECK}
);
INSERT INTO team_positions_0008 (team_id, recorded_at, geom, source)
SELECT team_id, recorded_at, geom, source FROM team_positions ORDER BY id;
DROP TABLE team_positions;
DROP FUNCTION IF EXISTS team_positions_ensure(date, date);
DROP SCHEMA IF EXISTS geomap_partitions CASCADE;
ALTER TABLE team_positions_0008 RENAME TO team_positions;
ALTER TABLE team_positions RENAME CONSTRAINT team_positions_0008_pkey TO team_positions_pkey;
ALTER SEQUENCE team_positions_0008_id_seq RENAME TO team_positions_id_seq;
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
INSERT INTO incidents (id, title, kind, status, grid_code, reported_at, geom, source)
SELECT c.id, c.title, c.kind,
       CASE WHEN c.status IN ('closed', 'cancelled', 'resolved') THEN 'closed'
            WHEN c.status = 'reported' OR c.status = 'accepted' THEN 'open'
            ELSE 'dispatched' END,
       (SELECT code FROM grids WHERE code = c.grid_code), c.reported_at, c.geom, c.source
FROM cases c;
SELECT setval(pg_get_serial_sequence('incidents', 'id'),
              coalesce((SELECT max(id) FROM incidents), 0) + 1, false);

CREATE TABLE dispatches_0008 (
    id            serial PRIMARY KEY,
    incident_id   integer NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    team_id       integer NOT NULL REFERENCES teams (id),
    status        text NOT NULL DEFAULT 'sent'
                  CHECK (status IN ('sent', 'arrived', 'done', 'cancelled')),
    dispatched_at timestamptz NOT NULL DEFAULT now(),
    travel_min    double precision CHECK (travel_min >= 0),
    source        text NOT NULL {SOURCE_CHECK}
);
INSERT INTO dispatches_0008 (id, incident_id, team_id, status, dispatched_at, travel_min,
                             source)
SELECT id, case_id, team_id,
       CASE status WHEN 'released' THEN 'done' WHEN 'on_scene' THEN 'arrived' ELSE 'sent' END,
       assigned_at, eta_min, source
FROM dispatches;
DROP TABLE dispatches;
ALTER TABLE dispatches_0008 RENAME TO dispatches;
ALTER TABLE dispatches RENAME CONSTRAINT dispatches_0008_pkey TO dispatches_pkey;
ALTER SEQUENCE dispatches_0008_id_seq RENAME TO dispatches_id_seq;
SELECT setval('dispatches_id_seq', coalesce((SELECT max(id) FROM dispatches), 0) + 1, false);
DROP TABLE case_escalations;
DROP TABLE cases;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

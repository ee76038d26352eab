"""Planning: kept reach sets, scenarios, and jobs.

Revision ID: 0009_planning
Revises: 0007_streets_layer
Create Date: 2026-11-26

* ``coverage_samples``: the grids' sample lattice of one grids × network version and
  access width (each point's grid, each grid's area and inner point), so that a fresh
  process answers coverage without sampling the grids again (``geomap.planning.index``).
* ``venue_reach``: the sample points each place reaches, per reach (mode, budget, walking
  speed), keyed by the lattice and the place's position. Rows of an old lattice are
  deleted when rows of a new one are written.
* ``scenarios``: planners' what-if sets of venues added to or removed from a venue set,
  owned by the key (or local user) that saved them; live tables are never touched.
* ``plan_jobs``: long runs (site suggestions) with their status, progress, cancel flag and
  result, so every worker process of a server can answer for any job.
"""

from __future__ import annotations

from alembic import op

revision = "0009_planning"
down_revision = "0007_streets_layer"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE coverage_samples (
    key        text PRIMARY KEY,
    srid       integer NOT NULL,
    grid_codes text[] NOT NULL,
    area_m2    bytea NOT NULL,
    inner_xy   bytea NOT NULL,
    point_grid bytea NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE venue_reach (
    key            text NOT NULL,
    mode           text NOT NULL CHECK (mode IN ('walk', 'drive')),
    budget_s       double precision NOT NULL CHECK (budget_s > 0),
    walk_speed_kmh double precision NOT NULL CHECK (walk_speed_kmh > 0),
    lon            double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    lat            double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    points         bytea NOT NULL,
    built_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, mode, budget_s, walk_speed_kmh, lon, lat)
);

CREATE TABLE scenarios (
    id          serial PRIMARY KEY,
    owner       text NOT NULL,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    venue_set   jsonb NOT NULL,
    added       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(added) = 'array'),
    removed     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(removed) = 'array'),
    origin      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);

CREATE TABLE plan_jobs (
    id               text PRIMARY KEY,
    owner            text NOT NULL,
    kind             text NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    message          text NOT NULL DEFAULT '',
    params           jsonb NOT NULL,
    result           jsonb,
    error            jsonb,
    cancel_requested boolean NOT NULL DEFAULT false,
    worker           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    heartbeat_at     timestamptz,
    finished_at      timestamptz
);
CREATE INDEX plan_jobs_owner_idx ON plan_jobs (owner, created_at DESC);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS plan_jobs;
DROP TABLE IF EXISTS scenarios;
DROP TABLE IF EXISTS venue_reach;
DROP TABLE IF EXISTS coverage_samples;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

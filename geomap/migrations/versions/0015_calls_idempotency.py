"""One-click calls counted in the database, idempotency keys, one history row per fix.

Revision ID: 0015_calls_idempotency
Revises: 0014_job_queue
Create Date: 2026-12-02

* ``call_attempts``: every accepted one-click call, with the station, the client address
  and the case it opened or was counted on (``opened``). The call limits are counted from
  it under advisory locks, so they hold across workers and nodes; a flood at a station is
  the many rows of one case.
* ``idempotency_keys``: the first answer to a request sent with an ``Idempotency-Key``,
  per caller (``scope``), its body as the very text sent; the primary key makes
  concurrent repeats wait for the first and then read its answer.
* ``team_positions``: one row per (team, time); resent fixes are duplicates. Rows that
  already repeat are reduced to their first before the unique index is built.
"""

from __future__ import annotations

from alembic import op

revision = "0015_calls_idempotency"
down_revision = "0014_job_queue"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE call_attempts (
    id          bigserial PRIMARY KEY,
    station_id  integer NOT NULL REFERENCES stations (id) ON DELETE CASCADE,
    client      text NOT NULL CHECK (length(client) BETWEEN 1 AND 200),
    case_id     integer NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    opened      boolean NOT NULL,
    text        text CHECK (length(text) <= 200),
    phone       text CHECK (length(phone) <= 40),
    called_at   timestamptz NOT NULL
);
CREATE INDEX call_attempts_station_idx ON call_attempts (station_id, called_at);
CREATE INDEX call_attempts_client_idx ON call_attempts (client, called_at);
CREATE INDEX call_attempts_case_idx ON call_attempts (case_id);

CREATE TABLE idempotency_keys (
    scope           text NOT NULL CHECK (length(scope) BETWEEN 1 AND 300),
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256  text NOT NULL CHECK (length(request_sha256) = 64),
    status          integer NOT NULL CHECK (status BETWEEN 200 AND 299),
    body            text NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

DELETE FROM team_positions a USING team_positions b
WHERE a.team_id = b.team_id AND a.recorded_at = b.recorded_at AND a.id > b.id;
CREATE UNIQUE INDEX team_positions_team_time_key ON team_positions (team_id, recorded_at);
"""

DOWNGRADE = """
DROP INDEX IF EXISTS team_positions_team_time_key;
DROP TABLE IF EXISTS idempotency_keys;
DROP TABLE IF EXISTS call_attempts;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

"""Sign-in sessions: the map pages' cookie, exchanged once for an API key.

Revision ID: 0012_sessions
Revises: 0011_cases
Create Date: 2026-11-26

A person signs in on a map page with a key (``POST /api/session``); the service answers
with a random session token in an HttpOnly, SameSite=Strict cookie and keeps only its
SHA-256 here, with the key it came from, its CSRF token and when it expires. A session is
valid while it has not expired, has not been ended (sign-out) and its key is not revoked:
revoking the key ends every session made with it, with no extra step.
"""

from __future__ import annotations

from alembic import op

revision = "0012_sessions"
down_revision = "0011_cases"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE sessions (
    id            bigserial PRIMARY KEY,
    token_sha256  text NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    key_id        integer NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL CHECK (length(csrf_token) >= 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    CHECK (expires_at >= created_at)
);
CREATE INDEX sessions_key_idx ON sessions (key_id);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS sessions;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

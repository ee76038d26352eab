"""API keys: hashed at rest, with a role, revocable.

Revision ID: 0003_api_keys
Revises: 0002_circles_cache
Create Date: 2026-11-23

Only the SHA-256 of a key is stored: keys are 192-bit random strings, so a fast hash is
enough (a slow password hash protects guessable secrets, which these are not). The
prefix identifies a key in listings and revocations without revealing it.
"""

from __future__ import annotations

from alembic import op

revision = "0003_api_keys"
down_revision = "0002_circles_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE api_keys (
            id           serial PRIMARY KEY,
            name         text NOT NULL CHECK (btrim(name) <> ''),
            role         text NOT NULL CHECK (role IN ('commander', 'planner', 'viewer')),
            prefix       text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{8}$'),
            key_sha256   text NOT NULL UNIQUE CHECK (key_sha256 ~ '^[0-9a-f]{64}$'),
            created_at   timestamptz NOT NULL DEFAULT now(),
            revoked_at   timestamptz,
            last_used_at timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS api_keys")

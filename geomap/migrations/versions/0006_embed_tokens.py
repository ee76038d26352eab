"""Embed tokens: registered, so that each can be listed and revoked on its own.

Revision ID: 0006_embed_tokens
Revises: 0005_routing_sync
Create Date: 2026-11-26

A token stays a signed, expiring string handed to a portal (the signature and expiry are
checked without the database); its id is registered here, and a token whose row is
missing or revoked is refused. Ids are 8 hex characters, like API key prefixes, so that
`geomap keys revoke ID` takes either.
"""

from __future__ import annotations

from alembic import op

revision = "0006_embed_tokens"
down_revision = "0005_routing_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE embed_tokens (
            id          text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{8}$'),
            name        text NOT NULL CHECK (btrim(name) <> ''),
            origin      text NOT NULL CHECK (origin ~ '^https?://[^/]+$'),
            layers      text[] NOT NULL CHECK (cardinality(layers) > 0),
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz NOT NULL,
            revoked_at  timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS embed_tokens")

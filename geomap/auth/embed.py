"""Embed tokens: signed, with an expiry, the layers they open and the portal that shows them.

Each token is registered in ``embed_tokens`` and can be listed and revoked one by one.
Plain functions over a connection: where a request carries its token, and whether the
browser made the request for the token's portal, is ``geomap.web.access``'s part.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geomap.auth.keys import revoke_key
from geomap.auth.permissions import Principal, principal
from geomap.errors import InvalidInput, NotFound, Unauthorized

_TOKEN_SALT = "geomap-embed"


def secret_key(settings: Any) -> str:
    """The signing secret: ``GEOMAP_SECRET_KEY``, else one kept in the state folder."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.state_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def _check_origin(origin: str) -> str:
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or origin.count("/") != 2
    ):
        raise InvalidInput(
            f"origin must be scheme://host[:port] with no path, got {origin!r}", field="origin"
        )
    return origin.lower()


def create_embed_token(
    conn: Connection | Session,
    secret: str,
    layers: list[str],
    origin: str,
    days: float,
    name: str = "",
) -> tuple[str, str]:
    """Register and sign a token opening ``layers`` to frames of ``origin`` for ``days``.

    Returns
    -------
    (str, str)
        The token (``em_...``, handed to the portal) and its id (to list or revoke it).
    """
    if not layers:
        raise InvalidInput("an embed token needs at least one layer", field="layers")
    origin = _check_origin(origin)
    if not 0 < days <= 366:
        raise InvalidInput("days must be between 0 and 366", field="days")
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    while True:  # ids share the key prefixes' space, so `keys revoke ID` is unambiguous
        token_id = secrets.token_hex(4)
        taken = conn.execute(sa.text("SELECT 1 FROM api_keys WHERE prefix = :id"),
                             {"id": token_id}).first()  # fmt: skip
        if taken is None:
            break
    conn.execute(
        sa.text(
            "INSERT INTO embed_tokens (id, name, origin, layers, expires_at) "
            "VALUES (:id, :name, :origin, :layers, :expires)"
        ),
        {"id": token_id, "name": name.strip() or origin, "origin": origin,
         "layers": sorted(set(layers)), "expires": expires},
    )  # fmt: skip
    payload = {"id": token_id, "layers": sorted(set(layers)), "origin": origin,
               "exp": expires.timestamp()}  # fmt: skip
    token = "em_" + URLSafeTimedSerializer(secret, salt=_TOKEN_SALT).dumps(payload)
    return token, token_id


def list_embed_tokens(conn: Connection | Session) -> list[dict[str, Any]]:
    """Every embed token's id, name, portal, layers and dates (never the token)."""
    rows = conn.execute(
        sa.text(
            "SELECT id, name, origin, layers, created_at, expires_at, revoked_at "
            "FROM embed_tokens ORDER BY created_at, id"
        )
    )
    return [dict(row) for row in rows.mappings()]


def revoke(conn: Connection | Session, prefix: str) -> str:
    """Revoke the API key or the embed token with this prefix/id; returns which it was."""
    try:
        revoke_key(conn, prefix)
        return "key"
    except NotFound:
        pass
    done = conn.execute(
        sa.text(
            "UPDATE embed_tokens SET revoked_at = now() "
            "WHERE id = :id AND revoked_at IS NULL RETURNING id"
        ),
        {"id": prefix},
    ).first()
    if done is None:
        raise NotFound(f"no active key or embed token {prefix!r}", field="prefix")
    return "embed token"


EMBED_SQL = sa.text("SELECT expires_at, revoked_at FROM embed_tokens WHERE id = :id")


def embed_principal(
    secret: str, token: str, conn: Connection | Session | None = None
) -> Principal:
    """The principal of a valid embed token; Unauthorized names what is wrong.

    The signature and expiry are checked first (no database needed); with ``conn`` the
    token must also be registered and not revoked.
    """
    try:
        payload = URLSafeTimedSerializer(secret, salt=_TOKEN_SALT).loads(token.removeprefix("em_"))
    except SignatureExpired:
        raise Unauthorized("the embed token has expired") from None
    except BadSignature:
        raise Unauthorized("the embed token is not valid") from None
    if not isinstance(payload, dict) or "id" not in payload:
        raise Unauthorized("the embed token is not valid (made before tokens could be revoked)")
    if payload["exp"] < dt.datetime.now(dt.UTC).timestamp():
        raise Unauthorized("the embed token has expired")
    if conn is not None:
        row = conn.execute(EMBED_SQL, {"id": payload["id"]}).first()
        if row is None:
            raise Unauthorized("the embed token is not known to this service")
        if row.revoked_at is not None:
            raise Unauthorized("the embed token has been revoked")
    return principal(
        "embed",
        name="embed token",
        layers=frozenset(payload["layers"]),
        origin=payload["origin"],
        token_id=payload["id"],
    )

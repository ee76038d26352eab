"""Sign-in sessions: a key exchanged once for a random session token (a cookie).

The table ``sessions`` keeps the token's SHA-256, the key it came from, its expiry and a
CSRF token. A session acts with its key's role while it has not expired or been ended and
its key is not revoked. Plain functions over a connection: the cookie and the CSRF header
are read by ``geomap.web.access``.
"""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geomap.auth.keys import digest, key_principal
from geomap.auth.permissions import Principal, principal
from geomap.errors import Unauthorized

SESSION_SQL = sa.text(
    """
    SELECT s.csrf_token, s.expires_at, k.id AS key_id, k.name, k.role
    FROM sessions s JOIN api_keys k ON k.id = s.key_id
    WHERE s.token_sha256 = :hash AND s.ended_at IS NULL AND s.expires_at > clock_timestamp()
      AND k.revoked_at IS NULL
    """
)


def create_session(
    conn: Connection | Session, key: str, hours: float
) -> tuple[str, Principal, int]:
    """Exchange an active key for a new session lasting ``hours``.

    Returns
    -------
    (str, Principal, int)
        The session token (for the cookie; only its hash is stored), its principal (with
        its CSRF token and expiry) and the session's id (for the audit).

    Raises
    ------
    Unauthorized
        The key is unknown or revoked.
    """
    if not isinstance(key, str) or not key.startswith("gm_") or len(key) > 200:
        raise Unauthorized("sign in with an API key (gm_...)")
    owner = key_principal(conn, key)
    if owner is None:
        raise Unauthorized("the API key is not valid (unknown or revoked)")
    token = "gs_" + secrets.token_urlsafe(32)
    row = conn.execute(
        sa.text(
            "INSERT INTO sessions (token_sha256, key_id, csrf_token, expires_at) "
            "VALUES (:hash, :key_id, :csrf, clock_timestamp() + make_interval(secs => :seconds)) "
            "RETURNING id, csrf_token, expires_at"
        ),
        {"hash": digest(token), "key_id": owner.key_id, "csrf": secrets.token_urlsafe(32),
         "seconds": float(hours) * 3600.0},
    ).one()  # fmt: skip
    who = _session(owner.role, owner.name, owner.key_id, row.csrf_token, row.expires_at)
    return token, who, int(row.id)


def _session(role: str, name: str, key_id: int, csrf: str, expires: dt.datetime) -> Principal:
    return principal(role, name=name, key_id=key_id, kind="session", csrf_token=csrf,
                     expires_at=expires)  # fmt: skip


def session_principal(conn: Connection | Session, token: str) -> Principal | None:
    """The principal of a live session token, or None (unknown, ended, expired, revoked)."""
    if not token.startswith("gs_") or len(token) > 100:
        return None
    row = conn.execute(SESSION_SQL, {"hash": digest(token)}).first()
    if row is None:
        return None
    return _session(row.role, row.name, row.key_id, row.csrf_token, row.expires_at)


def end_session(conn: Connection | Session, token: str) -> int | None:
    """End a session (sign-out).

    Returns
    -------
    int or None
        The ended session's id (for the audit), None when it was not live.
    """
    done = conn.execute(
        sa.text(
            "UPDATE sessions SET ended_at = now() "
            "WHERE token_sha256 = :hash AND ended_at IS NULL RETURNING id"
        ),
        {"hash": digest(token)},
    ).first()
    return None if done is None else int(done.id)

"""API keys: created with a role, stored as SHA-256 only, revocable.

``geomap keys create --role commander|planner|viewer`` makes one; a request sends it as
``Authorization: Bearer gm_...`` or ``X-API-Key`` (read by ``geomap.web.access``). Plain
functions over a connection: nothing here knows about HTTP.

A key is looked up in a short transaction of its own, closed before the view runs;
``last_used_at`` is written in the background at most once a minute per key
(:class:`LastUsed`), so no row lock is ever held across a request.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from geomap import db
from geomap.auth.permissions import KEY_ROLES, Principal, principal
from geomap.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)


def digest(secret: str) -> str:
    """The SHA-256 of a key or session token, as stored (the secret itself never is)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(conn: Connection | Session, name: str, role: str) -> tuple[str, str]:
    """Create a key.

    Parameters
    ----------
    conn : Connection or Session
    name : str
        Who or what uses it.
    role : str
        One of :data:`geomap.auth.permissions.KEY_ROLES`.

    Returns
    -------
    (str, str)
        The key (shown once and never stored) and its prefix (to list or revoke it).
    """
    if role not in KEY_ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles: {', '.join(KEY_ROLES)}", field="role")
    if not name.strip():
        raise InvalidInput("a key needs a name (who or what uses it)", field="name")
    prefix = secrets.token_hex(4)
    key = f"gm_{prefix}_{secrets.token_urlsafe(24)}"
    conn.execute(
        sa.text(
            "INSERT INTO api_keys (name, role, prefix, key_sha256) "
            "VALUES (:name, :role, :prefix, :hash)"
        ),
        {"name": name.strip(), "role": role, "prefix": prefix, "hash": digest(key)},
    )
    return key, prefix


def revoke_key(conn: Connection | Session, prefix: str) -> list[int]:
    """Revoke the key with this prefix; its sessions stop working with it.

    A session's lookup joins its key, so the revocation itself closes them; they are
    listed here so that the audit can say which sessions it closed.

    Parameters
    ----------
    conn : Connection or Session
    prefix : str
        The key's prefix (the 8 characters after ``gm_``).

    Returns
    -------
    list of int
        The ids of the key's sessions that were live until now.

    Raises
    ------
    NotFound
        No active key has this prefix.
    """
    done = conn.execute(
        sa.text(
            "UPDATE api_keys SET revoked_at = now() "
            "WHERE prefix = :prefix AND revoked_at IS NULL RETURNING id"
        ),
        {"prefix": prefix},
    ).first()
    if done is None:
        raise NotFound(f"no active key with prefix {prefix!r}", field="prefix")
    closed = conn.execute(
        sa.text(
            "SELECT id FROM sessions WHERE key_id = :key_id AND ended_at IS NULL "
            "AND expires_at > clock_timestamp() ORDER BY id"
        ),
        {"key_id": done.id},
    )
    return [row.id for row in closed]


def list_keys(conn: Connection | Session) -> list[dict[str, Any]]:
    """Every key's name, role, prefix and dates (never the key)."""
    rows = conn.execute(
        sa.text(
            "SELECT name, role, prefix, created_at, revoked_at, last_used_at "
            "FROM api_keys ORDER BY id"
        )
    )
    return [dict(row) for row in rows.mappings()]


KEY_SQL = sa.text(
    "SELECT id, name, role, last_used_at FROM api_keys "
    "WHERE key_sha256 = :hash AND revoked_at IS NULL"
)


def key_principal(conn: Connection | Session, key: str) -> Principal | None:
    """The principal of an active key, or None. Reads only: it takes no lock."""
    row = conn.execute(KEY_SQL, {"hash": digest(key)}).first()
    if row is None:
        return None
    return principal(row.role, name=row.name, key_id=row.id)


class LastUsed:
    """Writes ``api_keys.last_used_at`` in the background, at most once a minute per key.

    The request never writes (a write in its transaction would hold the key's row lock
    until it ended, and two requests with one key would run one after the other); a
    single background thread does, each write its own transaction, skipping a row that
    someone else has locked.
    """

    INTERVAL_S = 60.0
    SQL = sa.text(
        "UPDATE api_keys SET last_used_at = now() WHERE id IN "
        "(SELECT id FROM api_keys WHERE id = :id FOR UPDATE SKIP LOCKED)"
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._noted: dict[tuple[str, int], float] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def note(self, settings: Any, key_id: int) -> None:
        """Stamp the key's use, unless it was stamped less than a minute ago."""
        now = time.monotonic()
        noted = (db.database_url(settings), key_id)  # key ids repeat across databases
        with self._lock:
            if now - self._noted.get(noted, -self.INTERVAL_S) < self.INTERVAL_S:
                return
            self._noted[noted] = now
            if self._pool is None or self._pid != os.getpid():  # a forked worker: new thread
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="geomap-last-used")
                self._pid = os.getpid()
            self._pool.submit(self._write, settings, key_id)

    def _write(self, settings: Any, key_id: int) -> None:
        try:
            with db.get_engine(settings).begin() as conn:
                conn.execute(self.SQL, {"id": key_id})
        except Exception as exc:  # best effort: a missed stamp is no reason to fail
            log.debug("last_used_at of key %s not written: %s", key_id, exc)


LAST_USED = LastUsed()

"""Idempotency keys: a request sent again with the same ``Idempotency-Key`` is answered once.

A client that lost the answer to a write (a dropped connection, a phone changing network)
sends it again with the same key; the service answers the first answer again, same status
and body, instead of doing the write twice. The table ``idempotency_keys`` holds one row
per (scope, key) — the scope is the caller — with a digest of the request and the answer.

The row is inserted first, in the transaction of the write itself, and holds the answer
when that transaction commits. The primary key does the rest: a concurrent repeat's
insert waits for the first transaction, then finds its row and answers its answer; if
the first failed (its transaction rolled back, nothing written), the repeat goes ahead as
the first. Only successful answers are kept: a failed request may be retried with the
same key. A key is remembered for :data:`KEEP`; the same key with another request is
:class:`KeyReused` (422, as the IETF draft on the header recommends: the request is well
formed but cannot be processed as the key is bound to another one).

Nothing here knows about HTTP beyond the header's name; the views call :func:`claim`
before they write and :func:`keep` before they commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from geomap.errors import GeomapError, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

HEADER = "Idempotency-Key"
#: How long a key is remembered.
KEEP = dt.timedelta(hours=24)
#: Longest key accepted (a UUID is 36 characters).
KEY_MAX = 255
#: Expired rows deleted by each claim, so the table stays at a day of keys.
PRUNE = 100


class KeyReused(GeomapError):
    """The key was used for another request within :data:`KEEP` (422)."""

    status = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class Answer:
    """The first answer to a keyed request: its HTTP status and JSON body.

    Parameters
    ----------
    status : int
        The status it was answered with (2xx).
    body : str
        Its JSON body, the very text that was sent.
    """

    status: int
    body: str


def check_key(raw: str | None) -> str | None:
    """The header's value, checked: 1 to ``KEY_MAX`` visible ASCII characters, or None.

    Parameters
    ----------
    raw : str or None
        The header as received (None: not sent).

    Returns
    -------
    str or None
        The key, or None when the request carries none.

    Raises
    ------
    InvalidInput
        An empty, too long or non-printable key (400 naming ``Idempotency-Key``).
    """
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > KEY_MAX or not all(33 <= ord(c) <= 126 for c in key):
        raise InvalidInput(
            f"{HEADER} must be 1 to {KEY_MAX} visible ASCII characters (a UUID, say)",
            field=HEADER,
        )
    return key


def digest(method: str, path: str, body: Any) -> str:
    """A request's fingerprint: its method, path with query, and decoded JSON body.

    Parameters
    ----------
    method : str
        The HTTP method.
    path : str
        The path and query string.
    body : object
        The decoded body (JSON values; key order does not matter).

    Returns
    -------
    str
        The SHA-256 hex digest.
    """
    text = json.dumps([method.upper(), path, body], sort_keys=True, ensure_ascii=False,
                      default=str)  # fmt: skip
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


PRUNE_SQL = sa.text(
    """
    DELETE FROM idempotency_keys WHERE ctid IN (
        SELECT ctid FROM idempotency_keys WHERE created_at < :cutoff LIMIT :n)
    """
)
EXPIRE_SQL = sa.text(
    "DELETE FROM idempotency_keys WHERE scope = :scope AND key = :key AND created_at < :cutoff"
)
# The answer is filled in by keep() before commit; the placeholder is never seen by
# another transaction.
CLAIM_SQL = sa.text(
    """
    INSERT INTO idempotency_keys (scope, key, request_sha256, status, body, created_at)
    VALUES (:scope, :key, :sha, 200, '', :now)
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING key
    """
)
READ_SQL = sa.text(
    "SELECT request_sha256, status, body FROM idempotency_keys "
    "WHERE scope = :scope AND key = :key"
)
KEEP_SQL = sa.text(
    "UPDATE idempotency_keys SET status = :status, body = :body "
    "WHERE scope = :scope AND key = :key"
)


def claim(
    conn: Connection | Session, scope: str, key: str, sha: str, *, now: dt.datetime
) -> Answer | None:
    """Take the key for this request, or find the answer of the request that took it.

    Parameters
    ----------
    conn : Connection or Session
        The write's own transaction (the claim is undone with it).
    scope : str
        Whose key it is (the caller).
    key : str
        The key, as :func:`check_key` gives it.
    sha : str
        The request's :func:`digest`.
    now : datetime.datetime
        The service's clock.

    Returns
    -------
    Answer or None
        None: the key is this request's; go ahead, then :func:`keep` the answer. An
        Answer: the key's first request was answered so; answer the same.

    Raises
    ------
    KeyReused
        The key was used for another request within ``KEEP``.
    """
    cutoff = now - KEEP
    conn.execute(PRUNE_SQL, {"cutoff": cutoff, "n": PRUNE})
    conn.execute(EXPIRE_SQL, {"scope": scope, "key": key, "cutoff": cutoff})
    params = {"scope": scope, "key": key, "sha": sha, "now": now}
    if conn.execute(CLAIM_SQL, params).first() is not None:
        return None
    row = conn.execute(READ_SQL, params).first()
    if row is None:  # expired and pruned by another request in between: take it now
        conn.execute(CLAIM_SQL, params)
        return None
    if row.request_sha256 != sha:
        raise KeyReused(
            f"this {HEADER} was used for another request within the last "
            f"{KEEP.total_seconds() / 3600:g} h; use a new key for a new request",
            field=HEADER,
        )
    return Answer(int(row.status), row.body)


def keep(conn: Connection | Session, scope: str, key: str, status: int, body: str) -> None:
    """Record the answer of the key's request, in its transaction (before it commits).

    Parameters
    ----------
    conn : Connection or Session
        The write's transaction, in which :func:`claim` took the key.
    scope, key : str
        As given to :func:`claim`.
    status : int
        The answer's status (2xx).
    body : str
        The answer's JSON body, as sent (a repeat gets the same bytes).
    """
    conn.execute(KEEP_SQL, {"scope": scope, "key": key, "status": status, "body": body})

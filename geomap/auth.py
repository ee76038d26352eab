"""Who may see and do what: API keys with roles, embed tokens bound to a portal, open local reads.

Roles grant permissions (see :data:`ROLES`); every endpoint declares the one it needs
(``geomap.api.spec.endpoint``, or its blueprint's default in :data:`BLUEPRINT_DEFAULTS`).
The check runs before the view, so a denied caller learns nothing about whether the thing
asked for exists (no 404-versus-403 leak).

A request proves who it is with one **credential**; :data:`CREDENTIALS` lists the kinds, and
the first that finds its own in the request decides (a bad one is a 401, never a fall-
through to the next kind). A sign-in session (a cookie) slots in there as one more reader.

* **API keys** (``Authorization: Bearer gm_...`` or ``X-API-Key``): created with
  ``geomap keys create --role commander|planner|viewer``, stored as SHA-256 only,
  revocable. The key is looked up in a short transaction of its own, closed before the
  view runs; ``last_used_at`` is written in the background at most once a minute per key
  (:class:`_LastUsed`), so no row lock is ever held across a request.
* **Embed tokens** (``?token=em_...`` or ``Authorization: Bearer em_...``): signed, with an
  expiry, the layers they open and the **portal** (origin) allowed to show them; each is
  registered in ``embed_tokens`` and can be listed and revoked one by one. The embed page
  tells browsers that only the portal may frame it (``frame-ancestors``, per token), and
  requests whose browser headers (``Sec-Fetch-Site``, ``Origin``, ``Referer``) name another
  site are refused; the embed page's own requests to its own origin are accepted.
* **Sign-in sessions** (the cookie ``geomap_session``): a person on a map page exchanges a
  key once (``POST /api/session``) for a random session token in an HttpOnly,
  SameSite=Strict cookie; the table ``sessions`` keeps its SHA-256, the key it came from,
  its expiry and a CSRF token. A session acts with its key's role while it has not
  expired or been ended and its key is not revoked. Requests that write with it must send
  the CSRF token in ``X-CSRF-Token`` (a forged form or fetch from another page cannot read
  it), else 403 ``csrf``.
* **Open local reads** (``GEOMAP_OPEN_READ``, on by default for the ``make run`` demo):
  a caller talking to us directly from this machine (:func:`geomap.api.guard.direct_local`:
  a loopback peer and no proxy header, so never through a reverse proxy) may read layers
  and run analyses, without personal fields and without writing. Nobody else gets
  anything without a credential.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from geomap.errors import ConfigError, GeomapError, InvalidInput, NotFound

log = logging.getLogger(__name__)

ROLES: dict[str, frozenset[str]] = {
    "commander": frozenset({"public", "layers", "analysis", "personal", "write"}),
    "planner": frozenset({"public", "layers", "analysis"}),
    "viewer": frozenset({"public", "layers"}),
    "embed": frozenset({"public", "layers"}),
    "open": frozenset({"public", "layers", "analysis"}),
    "anonymous": frozenset({"public"}),
}
KEY_ROLES = ("commander", "planner", "viewer")

#: Permission of the views that declare none, by blueprint (static files, map pages, OGC).
BLUEPRINT_DEFAULTS = {"static": "public", "maps": "layers", "ogc": "layers"}
#: Views that bind a layer: their layer argument is checked against an embed token.
LAYER_VIEW_ARGS = ("layer_id", "collection_id")
_TOKEN_SALT = "geomap-embed"
#: Views beyond the maps and layers an embed token may call, with the layer it must open
#: (None: any token; the view filters by the token's layers itself).
EMBED_VIEWS: dict[str, str | None] = {
    "cases.list_cases": "cases",
    "cases.get_case": "cases",
    "events.stream": None,
}


class Unauthorized(GeomapError):
    """No valid credentials for something that needs them (401)."""

    status = 401
    code = "unauthorized"


class Forbidden(GeomapError):
    """Valid credentials that do not allow this (403)."""

    status = 403
    code = "forbidden"


class CsrfRefused(Forbidden):
    """A write with a session cookie but without the session's CSRF token (403)."""

    code = "csrf"


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as far as access goes."""

    role: str
    name: str = ""
    layers: frozenset[str] | None = None  # embed tokens: the layers they open
    origin: str | None = None  # embed tokens: the portal that may frame or fetch them
    key_id: int | None = None
    permissions: frozenset[str] = field(default=frozenset())
    #: The credential it came from: key, session, embed, open or anonymous.
    kind: str = "anonymous"
    token_id: str | None = None  # embed tokens: their id in embed_tokens
    csrf_token: str | None = None  # sessions: what their writes must send back
    expires_at: dt.datetime | None = None  # sessions: when they end

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    def may_see_layer(self, layer_id: str) -> bool:
        return self.layers is None or layer_id in self.layers


def principal(role: str, **kwargs: Any) -> Principal:
    kwargs.setdefault("kind", role if role in ("open", "anonymous", "embed") else "key")
    return Principal(role=role, permissions=ROLES[role], **kwargs)


#: Opens a short-lived session for a credential lookup (used as a context manager).
Lookup = Callable[[], Any]


# -- API keys ------------------------------------------------------------------------------
def _sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(conn: Any, name: str, role: str) -> tuple[str, str]:
    """Create a key; returns (the key, shown once and never stored; its prefix)."""
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
        {"name": name.strip(), "role": role, "prefix": prefix, "hash": _sha256(key)},
    )
    return key, prefix


def revoke_key(conn: Any, prefix: str) -> None:
    """Revoke the key with this prefix (NotFound when there is none)."""
    done = conn.execute(
        sa.text(
            "UPDATE api_keys SET revoked_at = now() "
            "WHERE prefix = :prefix AND revoked_at IS NULL RETURNING id"
        ),
        {"prefix": prefix},
    ).first()
    if done is None:
        raise NotFound(f"no active key with prefix {prefix!r}", field="prefix")


def list_keys(conn: Any) -> list[dict[str, Any]]:
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


def key_principal(conn: Any, key: str) -> Principal | None:
    """The principal of an active key, or None. Reads only: it takes no lock."""
    row = conn.execute(KEY_SQL, {"hash": _sha256(key)}).first()
    if row is None:
        return None
    return principal(row.role, name=row.name, key_id=row.id)


class _LastUsed:
    """Writes ``api_keys.last_used_at`` in the background, at most once a minute per key.

    An UPDATE in the request's own transaction would hold the key's row lock until the
    request ended, so two requests with one key would run one after the other. So the
    request never writes; a single background thread does, each write its own
    transaction, skipping a row that someone else has locked.
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
        from geomap import db

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
        from geomap import db

        try:
            with db.get_engine(settings).begin() as conn:
                conn.execute(self.SQL, {"id": key_id})
        except Exception as exc:  # best effort: a missed stamp is no reason to fail
            log.debug("last_used_at of key %s not written: %s", key_id, exc)


LAST_USED = _LastUsed()


# -- sign-in sessions ----------------------------------------------------------------------
SESSION_COOKIE = "geomap_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SESSION_SQL = sa.text(
    """
    SELECT s.csrf_token, s.expires_at, k.id AS key_id, k.name, k.role
    FROM sessions s JOIN api_keys k ON k.id = s.key_id
    WHERE s.token_sha256 = :hash AND s.ended_at IS NULL AND s.expires_at > clock_timestamp()
      AND k.revoked_at IS NULL
    """
)


def create_session(conn: Any, key: str, hours: float) -> tuple[str, Principal]:
    """Exchange an active key for a new session lasting ``hours``.

    Returns
    -------
    (str, Principal)
        The session token (for the cookie; only its hash is stored) and its principal,
        with its CSRF token and expiry.

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
            "RETURNING csrf_token, expires_at"
        ),
        {"hash": _sha256(token), "key_id": owner.key_id, "csrf": secrets.token_urlsafe(32),
         "seconds": float(hours) * 3600.0},
    ).one()  # fmt: skip
    return token, _session(owner.role, owner.name, owner.key_id, row.csrf_token, row.expires_at)


def _session(role: str, name: str, key_id: int, csrf: str, expires: dt.datetime) -> Principal:
    return principal(role, name=name, key_id=key_id, kind="session", csrf_token=csrf,
                     expires_at=expires)  # fmt: skip


def session_principal(conn: Any, token: str) -> Principal | None:
    """The principal of a live session token, or None (unknown, ended, expired, revoked)."""
    if not token.startswith("gs_") or len(token) > 100:
        return None
    row = conn.execute(SESSION_SQL, {"hash": _sha256(token)}).first()
    if row is None:
        return None
    return _session(row.role, row.name, row.key_id, row.csrf_token, row.expires_at)


def end_session(conn: Any, token: str) -> bool:
    """End a session (sign-out); False when it was not live."""
    done = conn.execute(
        sa.text(
            "UPDATE sessions SET ended_at = now() "
            "WHERE token_sha256 = :hash AND ended_at IS NULL RETURNING id"
        ),
        {"hash": _sha256(token)},
    ).first()
    return done is not None


# -- embed tokens --------------------------------------------------------------------------
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
    conn: Any, secret: str, layers: list[str], origin: str, days: float, name: str = ""
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


def list_embed_tokens(conn: Any) -> list[dict[str, Any]]:
    """Every embed token's id, name, portal, layers and dates (never the token)."""
    rows = conn.execute(
        sa.text(
            "SELECT id, name, origin, layers, created_at, expires_at, revoked_at "
            "FROM embed_tokens ORDER BY created_at, id"
        )
    )
    return [dict(row) for row in rows.mappings()]


def revoke(conn: Any, prefix: str) -> str:
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


def embed_principal(secret: str, token: str, conn: Any = None) -> Principal:
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


def _origin_of(url: str | None) -> str | None:
    if not url or url == "null":
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_embed_context(who: Principal, request: Any) -> None:
    """Refuse a request with an embed token that a browser made for another site.

    Browsers say who makes a request: ``Sec-Fetch-Site`` (same-origin, same-site,
    cross-site, or none when a person typed or bookmarked the address), ``Origin`` (sent
    with fetches) and ``Referer`` (the page, or with our referrer policy its origin).

    * ``same-origin``: the embed page's own requests (Chromium sends our own ``Origin``
      with them): accepted. ``none``: a person opened the address: accepted.
    * otherwise the initiating origin (``Origin``, else the ``Referer``'s) must be the
      token's portal; a cross-site request that is not a navigation and names no origin
      is refused too (a fetch always names one).
    * no ``Sec-Fetch-Site`` (not a browser, or an old one): an ``Origin`` other than ours
      or the portal's is refused.

    Framing by another site is also stopped by the page's ``frame-ancestors`` (the token's
    portal only: ``geomap.maps.views``).
    """
    site = request.headers.get("Sec-Fetch-Site")
    own = request.host_url.rstrip("/").lower()
    initiator = _origin_of(request.headers.get("Origin")) or _origin_of(
        request.headers.get("Referer")
    )
    if site in ("same-origin", "none"):
        return
    if site in ("same-site", "cross-site"):
        if initiator is None:
            if request.headers.get("Sec-Fetch-Mode") == "navigate":
                return  # a frame with no referrer: frame-ancestors decides
            raise Forbidden(f"the embed token is for pages of {who.origin}")
        if initiator != who.origin:
            raise Forbidden(
                f"the embed token is for pages of {who.origin}, not {initiator}"
            )
        return
    origin = _origin_of(request.headers.get("Origin"))
    if origin is not None and origin not in (own, who.origin):
        raise Forbidden(f"the embed token is for pages of {who.origin}, not {origin}")


# -- per request ---------------------------------------------------------------------------
def _bearer(request: Any) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def api_key_credential(request: Any, settings: Any, lookup: Lookup) -> Principal | None:
    """An API key in ``Authorization: Bearer gm_...`` or ``X-API-Key`` (None: no key)."""
    bearer = _bearer(request)
    key = bearer if bearer and not bearer.startswith("em_") else request.headers.get("X-API-Key")
    if not key:
        return None
    with lookup() as session:  # its own short transaction, over before the view runs
        found = key_principal(session, key)
    if found is None:
        raise Unauthorized("the API key is not valid (unknown or revoked)")
    LAST_USED.note(settings, found.key_id)
    return found


def embed_token_credential(request: Any, settings: Any, lookup: Lookup) -> Principal | None:
    """An embed token in ``?token=em_...`` or ``Authorization: Bearer em_...``."""
    bearer = _bearer(request)
    token = bearer if bearer and bearer.startswith("em_") else request.args.get("token")
    if not token:
        return None
    if not token.startswith("em_"):
        raise Unauthorized("the token is not an embed token (em_...); send keys in a header")
    with lookup() as session:
        found = embed_principal(secret_key(settings), token, session)
    check_embed_context(found, request)
    return found


def check_csrf(who: Principal, request: Any) -> None:
    """Refuse a write whose ``X-CSRF-Token`` is not the session's own (403 ``csrf``)."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(sent.encode(), (who.csrf_token or "").encode()):
        raise CsrfRefused(
            f"a write with a sign-in session must send its CSRF token in {CSRF_HEADER} "
            "(GET /api/session gives it)"
        )


def session_credential(request: Any, settings: Any, lookup: Lookup) -> Principal | None:
    """A sign-in session in the ``geomap_session`` cookie (None: no cookie).

    A write (any method but GET, HEAD, OPTIONS) must carry the session's CSRF token in
    ``X-CSRF-Token``: the cookie goes with every request the browser makes to us, even one
    another page started, but only our own page can read the token.
    """
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with lookup() as session:
        found = session_principal(session, token)
    if found is None:
        raise Unauthorized("the sign-in session has ended (expired, signed out or its key "
                           "revoked): sign in again")  # fmt: skip
    if request.method not in SAFE_METHODS:
        check_csrf(found, request)
    LAST_USED.note(settings, found.key_id)
    return found


#: The kinds of credential a request may carry, tried in order.
CREDENTIALS: tuple[Callable[[Any, Any, Lookup], Principal | None], ...] = (
    api_key_credential,
    embed_token_credential,
    session_credential,
)


def authenticate(request: Any, settings: Any, lookup: Lookup) -> Principal:
    """Who is calling: a credential's owner, an open local reader, or anonymous."""
    from geomap.api.guard import direct_local

    for credential in CREDENTIALS:
        found = credential(request, settings, lookup)
        if found is not None:
            return found
    if settings.open_read and direct_local(request):
        return principal("open", name="open local read")
    return principal("anonymous")


def required_permission(app: Any, request: Any) -> str | None:
    """The permission the request's view needs (None: no such view, let it 404/405)."""
    from geomap.api.spec import declared

    if request.endpoint is None:
        return None
    spec = declared(app.view_functions.get(request.endpoint))
    if spec is not None:
        return spec.permission
    return BLUEPRINT_DEFAULTS.get(request.blueprint or request.endpoint.split(".")[0], "write")


def check(who: Principal, permission: str, request: Any) -> None:
    """Raise Unauthorized/Forbidden unless ``who`` may make this request."""
    if not who.may(permission):
        if who.role == "anonymous":
            raise Unauthorized(
                "this needs an API key: send `Authorization: Bearer <key>`, or sign in on a "
                "map page (keys are created with `geomap keys create --role ...`)"
            )
        raise Forbidden(f"the {who.role} role may not do this (needs {permission})")
    if who.layers is not None and permission != "public":
        asked = [request.view_args[a] for a in LAYER_VIEW_ARGS if a in (request.view_args or {})]
        asked += [x for x in request.args.get("layers", "").split(",") if x]
        if request.blueprint not in ("maps", "ogc", "layers", "static"):
            opened = EMBED_VIEWS.get(request.endpoint, False)
            if opened is False:
                raise Forbidden("an embed token opens maps and layers only")
            if opened is not None:
                asked.append(opened)
        if any(not who.may_see_layer(layer) for layer in asked):
            raise Forbidden("the embed token does not open this layer")


def init_app(app: Any) -> None:
    """Install the access check on every request, and refuse unsafe configurations."""
    from flask import g, request

    settings = app.config["GEOMAP"]
    if settings.open_read:
        log.warning(
            "open read access: callers on 127.0.0.1 need no key to read layers and run "
            "analyses (GEOMAP_OPEN_READ=true; fine for a local demo, never for a server)"
        )

    @app.before_request
    def _access() -> None:
        permission = required_permission(app, request)
        # Public views need nobody's credentials: no key lookup, so they work even when
        # the database (which holds the keys) is away.
        if permission in (None, "public") or request.method == "OPTIONS":
            return
        who = authenticate(request, settings, lambda: lookup_session(app))
        check(who, permission, request)
        g.principal = who


def lookup_session(app: Any) -> Any:
    """A session of its own for a credential lookup, closed as soon as it is read."""
    return app.extensions["geomap_sessionmaker"]()


def optional(request: Any) -> Principal:
    """Who is calling a public view (which checks nobody): anonymous when unsure.

    For views that show more to some callers (``/healthz``); never raises, so that they
    still answer when the database holding the keys is away.
    """
    from flask import current_app

    app = current_app._get_current_object()
    try:
        return authenticate(request, app.config["GEOMAP"], lambda: lookup_session(app))
    except Exception:  # a bad key, or no database: such callers see what anyone sees
        return principal("anonymous")


def current() -> Principal:
    """The caller of the current request (anonymous outside a checked request)."""
    from flask import g

    return g.get("principal") or principal("anonymous")


def check_bind(host: str, settings: Any) -> None:
    """Refuse to serve beyond loopback while anonymous reads are open."""
    if settings.open_read and not _is_loopback_host(host):
        raise ConfigError(
            f"refusing to listen on {host} with open read access: anyone on the network "
            "could read the data. Set GEOMAP_OPEN_READ=false and give clients keys "
            "(`geomap keys create --role viewer|planner|commander --name ...`)."
        )


def _is_loopback_host(host: str) -> bool:
    from geomap.api.guard import _is_loopback

    if host == "localhost":
        return True
    return _is_loopback(host)

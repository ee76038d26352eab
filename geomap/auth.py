"""Who may see and do what: API keys with roles, signed embed tokens, open local reads.

Roles grant permissions (see :data:`ROLES`); every endpoint declares the one it needs
(``geomap.api.spec.endpoint``, or its blueprint's default in :data:`BLUEPRINT_DEFAULTS`).
The check runs before the view, so a denied caller learns nothing about whether the thing
asked for exists (no 404-versus-403 leak).

* **API keys** (``Authorization: Bearer gm_...`` or ``X-API-Key``): created with
  ``geomap keys create --role commander|planner|viewer``, stored as SHA-256 only,
  revocable.
* **Embed tokens** (``?token=...`` or ``Authorization: Bearer em_...``): signed, with an
  expiry, the layers they open and the origin allowed to frame or fetch them; read-only,
  never personal fields.
* **Open local reads** (``GEOMAP_OPEN_READ``, on by default for the ``make run`` demo):
  a caller on the loopback interface with no credentials may read layers and run
  analyses, without personal fields and without writing. Nobody else gets anything
  without a key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class Unauthorized(GeomapError):
    """No valid credentials for something that needs them (401)."""

    status = 401
    code = "unauthorized"


class Forbidden(GeomapError):
    """Valid credentials that do not allow this (403)."""

    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as far as access goes."""

    role: str
    name: str = ""
    layers: frozenset[str] | None = None  # embed tokens: the layers they open
    origin: str | None = None  # embed tokens: who may frame or fetch
    key_id: int | None = None
    permissions: frozenset[str] = field(default=frozenset())

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    def may_see_layer(self, layer_id: str) -> bool:
        return self.layers is None or layer_id in self.layers


def principal(role: str, **kwargs: Any) -> Principal:
    return Principal(role=role, permissions=ROLES[role], **kwargs)


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


def key_principal(conn: Any, key: str) -> Principal | None:
    """The principal of an active key, or None."""
    row = conn.execute(
        sa.text(
            "UPDATE api_keys SET last_used_at = now() "
            "WHERE key_sha256 = :hash AND revoked_at IS NULL RETURNING id, name, role"
        ),
        {"hash": _sha256(key)},
    ).first()
    if row is None:
        return None
    return principal(row.role, name=row.name, key_id=row.id)


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


def make_embed_token(secret: str, layers: list[str], origin: str, days: float) -> str:
    """A signed token opening ``layers`` to pages of ``origin`` for ``days``."""
    if not layers:
        raise InvalidInput("an embed token needs at least one layer", field="layers")
    if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
        raise InvalidInput(
            f"origin must be scheme://host[:port] with no path, got {origin!r}", field="origin"
        )
    if not 0 < days <= 366:
        raise InvalidInput("days must be between 0 and 366", field="days")
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    payload = {"layers": sorted(set(layers)), "origin": origin, "exp": expires.timestamp()}
    return "em_" + URLSafeTimedSerializer(secret, salt=_TOKEN_SALT).dumps(payload)


def embed_principal(secret: str, token: str) -> Principal:
    """The principal of a valid embed token; Unauthorized names what is wrong."""
    try:
        payload = URLSafeTimedSerializer(secret, salt=_TOKEN_SALT).loads(token.removeprefix("em_"))
    except SignatureExpired:
        raise Unauthorized("the embed token has expired") from None
    except BadSignature:
        raise Unauthorized("the embed token is not valid") from None
    if payload["exp"] < dt.datetime.now(dt.UTC).timestamp():
        raise Unauthorized("the embed token has expired")
    return principal(
        "embed", name="embed token", layers=frozenset(payload["layers"]), origin=payload["origin"]
    )


# -- per request ---------------------------------------------------------------------------
def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _credentials(request: Any) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("X-API-Key") or request.args.get("token")


def authenticate(request: Any, settings: Any, conn_factory: Any) -> Principal:
    """Who is calling: a key, an embed token, an open local reader, or anonymous."""
    credential = _credentials(request)
    if credential:
        if credential.startswith("em_"):
            return embed_principal(secret_key(settings), credential)
        found = key_principal(conn_factory(), credential)
        if found is None:
            raise Unauthorized("the API key is not valid (unknown or revoked)")
        return found
    if settings.open_read and _is_loopback(request.remote_addr):
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
                "this needs an API key: send `Authorization: Bearer <key>` "
                "(keys are created with `geomap keys create --role ...`)"
            )
        raise Forbidden(f"the {who.role} role may not do this (needs {permission})")
    if who.layers is not None and permission != "public":
        asked = [request.view_args[a] for a in LAYER_VIEW_ARGS if a in (request.view_args or {})]
        asked += [x for x in request.args.get("layers", "").split(",") if x]
        if request.blueprint not in ("maps", "ogc", "layers", "static"):
            raise Forbidden("an embed token opens maps and layers only")
        if any(not who.may_see_layer(layer) for layer in asked):
            raise Forbidden("the embed token does not open this layer")
        origin = request.headers.get("Origin")
        if origin and origin != who.origin:
            raise Forbidden("the embed token is not for this origin")


def init_app(app: Any) -> None:
    """Install the access check on every request, and refuse unsafe configurations."""
    from flask import g, request

    from geomap import db

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
        who = authenticate(request, settings, lambda: db.get_session())
        check(who, permission, request)
        g.principal = who


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
    if host == "localhost":
        return True
    return _is_loopback(host)

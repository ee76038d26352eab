"""Who may do what: roles, the permissions they grant, and the caller as plain data.

Roles grant permissions (see :data:`ROLES`); every endpoint declares the one it needs
(``geomap.web.spec.endpoint``, or its blueprint's default in :data:`BLUEPRINT_DEFAULTS`).
:func:`check` decides from plain values (the caller, the permission, which view and which
layers are asked for); the request hook (``geomap.web.access``) reads those from the
request. Nothing here knows about HTTP.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from geomap.errors import ConfigError, Forbidden, Unauthorized

#: What a caller may be allowed to do; roles grant sets of these.
PERMISSIONS = ("public", "layers", "analysis", "personal", "write")

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
#: Blueprints whose every view serves maps or layers: an embed token may call them.
EMBED_BLUEPRINTS = ("maps", "ogc", "layers", "static")
#: Views beyond the maps and layers an embed token may call, with the layer it must open
#: (None: any token; the view filters by the token's layers itself).
EMBED_VIEWS: dict[str, str | None] = {
    "cases.list_cases": "cases",
    "cases.get_case": "cases",
    "events.stream": None,
}


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
        """Whether the role grants ``permission``."""
        return permission in self.permissions

    def may_see_layer(self, layer_id: str) -> bool:
        """Whether the caller may see the catalog layer ``layer_id`` (embed tokens: theirs)."""
        return self.layers is None or layer_id in self.layers


def principal(role: str, **kwargs: Any) -> Principal:
    """A :class:`Principal` of ``role`` with the role's permissions.

    Parameters
    ----------
    role : str
        One of :data:`ROLES`.
    **kwargs
        The other fields of :class:`Principal`; ``kind`` defaults to the role's kind.

    Returns
    -------
    Principal
    """
    kwargs.setdefault("kind", role if role in ("open", "anonymous", "embed") else "key")
    return Principal(role=role, permissions=ROLES[role], **kwargs)


def check(
    who: Principal,
    permission: str,
    *,
    blueprint: str | None,
    endpoint: str | None,
    layers: Iterable[str] = (),
) -> None:
    """Raise unless ``who`` may call a view that needs ``permission``.

    Parameters
    ----------
    who : Principal
    permission : str
        What the view needs (one of :data:`PERMISSIONS`).
    blueprint, endpoint : str or None
        The view's blueprint and endpoint name (an embed token opens maps and layers only,
        and the views of :data:`EMBED_VIEWS`).
    layers : iterable of str
        The catalog layers the request names (its layer arguments and ``layers=``).

    Raises
    ------
    Unauthorized
        An anonymous caller and a view that needs more than ``public``; an open local
        reader and a view that needs more than reading (personal fields, writes).
    Forbidden
        A caller whose role or embed token does not allow this.
    """
    if not who.may(permission):
        if who.role in ("anonymous", "open"):  # no credential was sent: a key is missing
            raise Unauthorized(
                "this needs an API key: send `Authorization: Bearer <key>`, or sign in on a "
                "map page (keys are created with `geomap keys create --role ...`)"
            )
        raise Forbidden(f"the {who.role} role may not do this (needs {permission})")
    if who.layers is not None and permission != "public":
        asked = list(layers)
        if blueprint not in EMBED_BLUEPRINTS:
            opened = EMBED_VIEWS.get(endpoint or "", False)
            if opened is False:
                raise Forbidden("an embed token opens maps and layers only")
            if opened is not None:
                asked.append(opened)
        if any(not who.may_see_layer(layer) for layer in asked):
            raise Forbidden("the embed token does not open this layer")


# -- open local reads ----------------------------------------------------------------------
def is_loopback(address: str | None) -> bool:
    """Whether ``address`` (an IP address as text) is a loopback address."""
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Any) -> None:
    """Refuse to serve beyond loopback while anonymous reads are open.

    Parameters
    ----------
    host : str
        The address or name the server would listen on.
    settings : geomap.config.Settings

    Raises
    ------
    ConfigError
        ``open_read`` is on and ``host`` is not a loopback address.
    """
    if settings.open_read and not (host == "localhost" or is_loopback(host)):
        raise ConfigError(
            f"refusing to listen on {host} with open read access: anyone on the network "
            "could read the data. Set GEOMAP_OPEN_READ=false and give clients keys "
            "(`geomap keys create --role viewer|planner|commander --name ...`)."
        )

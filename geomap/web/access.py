"""The access check on every request: which credential it carries, and whether it may.

Every endpoint declares the permission it needs (:func:`geomap.web.spec.endpoint`, or
its blueprint's default in :data:`geomap.auth.permissions.BLUEPRINT_DEFAULTS`). The check
runs before the view, so a denied caller learns nothing about whether the thing asked for
exists (no 404-versus-403 leak).

A request proves who it is with one **credential**; :data:`CREDENTIALS` lists the kinds,
and the first that finds its own in the request decides (a bad one is a 401, never a
fall-through to the next kind):

* **API keys** (``Authorization: Bearer gm_...`` or ``X-API-Key``): :mod:`geomap.auth.keys`.
* **Embed tokens** (``?token=em_...`` or ``Authorization: Bearer em_...``):
  :mod:`geomap.auth.embed`. The embed page tells browsers that only the portal may frame
  it (``frame-ancestors``, per token), and requests whose browser headers
  (``Sec-Fetch-Site``, ``Origin``, ``Referer``) name another site are refused
  (:func:`check_embed_context`); the embed page's own requests to its own origin are
  accepted.
* **Sign-in sessions** (the cookie ``geomap_session``, HttpOnly and SameSite=Strict):
  :mod:`geomap.auth.sessions`. Requests that write with one must send its CSRF token in
  ``X-CSRF-Token`` (a forged form or fetch from another page cannot read it), else 403
  ``csrf``.
* **Open local reads** (``GEOMAP_OPEN_READ``, off unless set; the ``make run`` demo sets
  it): a browser or curl talking to us directly from this machine
  (:func:`geomap.web.guard.direct_local`, a rule that a reverse proxy on this machine with
  a minimal configuration does not pass) may ``GET`` layers and analyses, without personal
  fields. Never a write of any kind: any other method without a credential is a 401, as
  for everyone else. Nobody else gets anything without a credential.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, current_app, g, request

from geomap.auth import embed, keys, permissions, sessions
from geomap.auth.permissions import BLUEPRINT_DEFAULTS, LAYER_VIEW_ARGS, Principal, principal
from geomap.errors import CsrfRefused, Forbidden, Unauthorized
from geomap.web.guard import direct_local
from geomap.web.spec import declared

log = logging.getLogger(__name__)

SESSION_COOKIE = "geomap_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What open local reads may do: read (a POST that starts a plan or saves a scenario is a
#: write, whatever permission it declares).
OPEN_METHODS = frozenset({"GET", "HEAD"})

#: Opens a short-lived session for a credential lookup (used as a context manager).
Lookup = Callable[[], Any]


def _origin_of(url: str | None) -> str | None:
    if not url or url == "null":
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_embed_context(who: Principal, req: Request) -> None:
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
    site = req.headers.get("Sec-Fetch-Site")
    own = req.host_url.rstrip("/").lower()
    initiator = _origin_of(req.headers.get("Origin")) or _origin_of(req.headers.get("Referer"))
    if site in ("same-origin", "none"):
        return
    if site in ("same-site", "cross-site"):
        if initiator is None:
            if req.headers.get("Sec-Fetch-Mode") == "navigate":
                return  # a frame with no referrer: frame-ancestors decides
            raise Forbidden(f"the embed token is for pages of {who.origin}")
        if initiator != who.origin:
            raise Forbidden(f"the embed token is for pages of {who.origin}, not {initiator}")
        return
    origin = _origin_of(req.headers.get("Origin"))
    if origin is not None and origin not in (own, who.origin):
        raise Forbidden(f"the embed token is for pages of {who.origin}, not {origin}")


def _bearer(req: Request) -> str | None:
    header = req.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def api_key_credential(req: Request, settings: Any, lookup: Lookup) -> Principal | None:
    """An API key in ``Authorization: Bearer gm_...`` or ``X-API-Key`` (None: no key)."""
    bearer = _bearer(req)
    key = bearer if bearer and not bearer.startswith("em_") else req.headers.get("X-API-Key")
    if not key:
        return None
    with lookup() as session:  # its own short transaction, over before the view runs
        found = keys.key_principal(session, key)
    if found is None:
        raise Unauthorized("the API key is not valid (unknown or revoked)")
    keys.LAST_USED.note(settings, found.key_id)
    return found


def embed_token_credential(req: Request, settings: Any, lookup: Lookup) -> Principal | None:
    """An embed token in ``?token=em_...`` or ``Authorization: Bearer em_...``."""
    bearer = _bearer(req)
    token = bearer if bearer and bearer.startswith("em_") else req.args.get("token")
    if not token:
        return None
    if not token.startswith("em_"):
        raise Unauthorized("the token is not an embed token (em_...); send keys in a header")
    with lookup() as session:
        found = embed.embed_principal(embed.secret_key(settings), token, session)
    check_embed_context(found, req)
    return found


def check_csrf(who: Principal, req: Request) -> None:
    """Refuse a write whose ``X-CSRF-Token`` is not the session's own (403 ``csrf``)."""
    sent = req.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(sent.encode(), (who.csrf_token or "").encode()):
        raise CsrfRefused(
            f"a write with a sign-in session must send its CSRF token in {CSRF_HEADER} "
            "(GET /api/session gives it)"
        )


def session_credential(req: Request, settings: Any, lookup: Lookup) -> Principal | None:
    """A sign-in session in the ``geomap_session`` cookie (None: no cookie).

    A write (any method but GET, HEAD, OPTIONS) must carry the session's CSRF token in
    ``X-CSRF-Token``: the cookie goes with every request the browser makes to us, even one
    another page started, but only our own page can read the token.
    """
    token = req.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with lookup() as session:
        found = sessions.session_principal(session, token)
    if found is None:
        raise Unauthorized("the sign-in session has ended (expired, signed out or its key "
                           "revoked): sign in again")  # fmt: skip
    if req.method not in SAFE_METHODS:
        check_csrf(found, req)
    keys.LAST_USED.note(settings, found.key_id)
    return found


#: The kinds of credential a request may carry, tried in order.
CREDENTIALS: tuple[Callable[[Request, Any, Lookup], Principal | None], ...] = (
    api_key_credential,
    embed_token_credential,
    session_credential,
)


def authenticate(req: Request, settings: Any, lookup: Lookup) -> Principal:
    """Who is calling: a credential's owner, an open local reader, or anonymous."""
    for credential in CREDENTIALS:
        found = credential(req, settings, lookup)
        if found is not None:
            return found
    if settings.open_read and req.method in OPEN_METHODS and direct_local(req):
        return principal("open", name="open local read")
    return principal("anonymous")


def required_permission(app: Flask, req: Request) -> str | None:
    """The permission the request's view needs (None: no such view, let it 404/405)."""
    if req.endpoint is None:
        return None
    spec = declared(app.view_functions.get(req.endpoint))
    if spec is not None:
        return spec.permission
    return BLUEPRINT_DEFAULTS.get(req.blueprint or req.endpoint.split(".")[0], "write")


def check(who: Principal, permission: str, req: Request) -> None:
    """Raise Unauthorized/Forbidden unless ``who`` may make this request.

    The layers a request names are its layer path arguments and its ``layers=`` list
    (see :func:`geomap.auth.permissions.check`).
    """
    view_args = req.view_args or {}
    asked = [view_args[a] for a in LAYER_VIEW_ARGS if a in view_args]
    asked += [x for x in req.args.get("layers", "").split(",") if x]
    permissions.check(who, permission, blueprint=req.blueprint, endpoint=req.endpoint,
                      layers=asked)  # fmt: skip


def lookup_session(app: Flask) -> Any:
    """A session of its own for a credential lookup, closed as soon as it is read."""
    return app.extensions["geomap_sessionmaker"]()


def init_app(app: Flask) -> None:
    """Install the access check on every request, and warn of open local reads."""
    settings = app.config["GEOMAP"]
    if settings.open_read:
        log.warning(
            "open read access: a browser or curl on this machine, talking to the service "
            "directly, needs no key to read layers and run analyses (GEOMAP_OPEN_READ=true; "
            "fine for a local demo, never for a server or behind a proxy)"
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


def optional(req: Request) -> Principal:
    """Who is calling a public view (which checks nobody): anonymous when unsure.

    For views that show more to some callers (``/healthz``); never raises, so that they
    still answer when the database holding the keys is away.
    """
    app = current_app._get_current_object()
    try:
        return authenticate(req, app.config["GEOMAP"], lambda: lookup_session(app))
    except Exception:  # a bad key, or no database: such callers see what anyone sees
        return principal("anonymous")


def current() -> Principal:
    """The caller of the current request (anonymous outside a checked request)."""
    return g.get("principal") or principal("anonymous")

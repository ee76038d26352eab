"""Sign-in for the map pages: a key exchanged once for a session cookie (``/api/session``).

* ``POST /api/session`` ``{"key": "gm_..."}``: a new session; the token travels only in
  the ``geomap_session`` cookie (HttpOnly: no script reads it; SameSite=Strict: no other
  site's page sends it; Secure over HTTPS), the answer carries the CSRF token the page
  sends back with its writes.
* ``GET /api/session``: who this browser is (signed in or not, the role, the CSRF token);
  always 200, so a page can decide to show its sign-in form.
* ``DELETE /api/session``: sign out (the session ends in the database, the cookie is
  cleared).

Both writes append their audit row (``session.create``, ``session.end``) in the same
transaction, under the key's name.

The views are public: the credential is in the body or the cookie, and each view checks
it itself (``geomap.auth``); a failed sign-in is a 401 and draws from the caller's rate-
limit bucket like any request.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from geomap import auth, db
from geomap.api import _ops
from geomap.ops import audit
from geomap.web import access
from geomap.web.spec import body, endpoint

bp = Blueprint("session", __name__, url_prefix="/api")


def _describe(who: auth.Principal) -> dict[str, Any]:
    return {
        "signed_in": who.kind == "session",
        "role": who.role,
        "name": who.name or None,
        "permissions": sorted(who.permissions),
        "csrf_token": who.csrf_token,
        "expires_at": who.expires_at.isoformat() if who.expires_at else None,
    }


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/session")
@endpoint(
    "Sign in: exchange an API key for a session cookie (HttpOnly, SameSite=Strict)",
    permission="public",
    tags=("session",),
    body="SessionNew",
    response="Session",
    statuses=(400, 401),
    success=200,
)
def sign_in() -> Response:
    """Create a session for a key."""
    key = body()["key"]
    settings = current_app.config["GEOMAP"]
    session = db.get_session()
    token, who, session_id = auth.create_session(session, key, settings.session_hours)
    audit.record(session, audit.Actor.of(who), "session.create", at=_ops.now(),
                 changes={"session_id": session_id, "expires_at": who.expires_at})  # fmt: skip
    session.commit()  # the session and its audit row together
    response = jsonify(_describe(who))
    response.set_cookie(
        access.SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return _no_store(response)


@bp.get("/session")
@endpoint(
    "Who this browser is: signed in or not, the role, the CSRF token for writes",
    permission="public",
    tags=("session",),
    response="Session",
)
def whoami() -> Response:
    """Describe the caller (never an error: an ended session is just not signed in)."""
    return _no_store(jsonify(_describe(access.optional(request))))


@bp.delete("/session")
@endpoint(
    "Sign out: end the session and clear its cookie",
    permission="public",
    tags=("session",),
    statuses=(403,),
    success=204,
)
def sign_out() -> Response:
    """End this browser's session (send ``X-CSRF-Token``)."""
    token = request.cookies.get(access.SESSION_COOKIE)
    if token:
        session = db.get_session()
        who = auth.session_principal(session, token)
        if who is not None:
            access.check_csrf(who, request)
            session_id = auth.end_session(session, token)
            if session_id is not None:
                audit.record(session, audit.Actor.of(who), "session.end", at=_ops.now(),
                             changes={"session_id": session_id, "reason": "sign-out"})  # fmt: skip
            session.commit()
    response = Response(status=204)
    del response.headers["Content-Type"]  # no content, no type
    response.delete_cookie(access.SESSION_COOKIE, path="/", httponly=True, samesite="Strict",
                           secure=request.is_secure)  # fmt: skip
    return _no_store(response)

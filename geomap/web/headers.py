"""Headers on every response: security headers, and CORS for the allow-listed origins.

Pages that set their own Content-Security-Policy (the maps, which may be framed by the
configured origins) keep it; everything else may not be framed at all.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

from geomap.web import access, security

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), camera=(), microphone=()",
}
#: For API answers: nothing to run, nothing to frame.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
#: HTML pages that set none of their own (the OGC pages, /docs) get the map pages' policy
#: (geomap.web.security): our own files, inline code only with the response's nonce,
#: which templates write as ``nonce="{{ csp_nonce() }}"``.
CORS_METHODS = "GET, POST, PATCH, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-API-Key"


def allowed_origin(origin: str | None, settings: Any) -> bool:
    """Whether a browser page of ``origin`` may call the API (the CORS allow-list)."""
    if not origin:
        return False
    embed_origin = access.current().origin
    return origin in settings.cors_origins or origin == embed_origin


def init_app(app: Any) -> None:
    """Install the headers on every response of ``app``."""
    settings = app.config["GEOMAP"]
    app.jinja_env.globals["csp_nonce"] = security.nonce

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            policy = security.content_security_policy(("'self'",), security.nonce())
        else:
            policy = DEFAULT_CSP
        response.headers.setdefault("Content-Security-Policy", policy)
        origin = request.headers.get("Origin")
        if origin:
            # The answer depends on the Origin (CORS headers or not): caches must know,
            # beside whatever else it varies on (Accept, Accept-Language...): merged.
            response.vary.add("Origin")
        if allowed_origin(origin, settings):
            response.headers["Access-Control-Allow-Origin"] = origin
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
                response.headers["Access-Control-Max-Age"] = "600"
        return response

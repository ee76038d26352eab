"""Headers on every response: security headers, and CORS for the allow-listed origins.

Pages that set their own Content-Security-Policy (the maps, which may be framed by the
configured origins) keep it; everything else may not be framed at all.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), camera=(), microphone=()",
}
#: For API answers: nothing to run, nothing to frame.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
#: For HTML pages that set none of their own: Folium pages run inline scripts and styles,
#: load only our own assets, and may show basemap tiles (https images) when one is chosen.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'self'"
)
CORS_METHODS = "GET, POST, PATCH, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-API-Key"


def allowed_origin(origin: str | None, settings: Any) -> bool:
    """Whether a browser page of ``origin`` may call the API (the CORS allow-list)."""
    from geomap import auth

    if not origin:
        return False
    embed_origin = auth.current().origin
    return origin in settings.cors_origins or origin == embed_origin


def init_app(app: Any) -> None:
    """Install the headers on every response of ``app``."""
    settings = app.config["GEOMAP"]

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        page = response.mimetype == "text/html"
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP if page else DEFAULT_CSP)
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

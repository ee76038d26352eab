"""Security headers of the map pages, in one place (reusable by any blueprint).

* ``Content-Security-Policy``: scripts, styles, fonts and data from this origin only,
  inline ``<script>``/``<style>`` only with this response's nonce
  (:func:`content_security_policy`), and ``frame-ancestors``: who may show the page in a
  frame. An embed opened with an embed token may be framed by that token's portal only;
  other embeds by the origins of the ``frame_ancestors`` setting; every other page only
  by its own origin (``'self'``), so that no other site can frame the battle map and
  trick a commander into clicks (clickjacking).
* ``X-Frame-Options``: the same rule for old browsers, on non-embed pages only (it cannot
  name other origins, and a browser that knows CSP ignores it).
* ``X-Content-Type-Options: nosniff``: scripts and data are only what they say they are.
* ``Referrer-Policy: strict-origin-when-cross-origin``: tile servers see our origin (OSM's
  usage policy asks for it), never a page's path and query.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

from geomap.errors import ConfigError

#: A CSP source expression for frame-ancestors: 'self', 'none', a scheme (https:) or a
#: host source (scheme, host with an optional leading wildcard label, port, path).
_SOURCE = re.compile(
    r"^(?:'self'|'none'|\*|[a-z][a-z0-9+.-]*:"
    r"|(?:[a-z][a-z0-9+.-]*://)?(?:\*\.)?[a-z0-9.-]+(?::(?:\d{1,5}|\*))?(?:/[^\s;,]*)?)$",
    re.IGNORECASE,
)


def frame_ancestors_value(sources: Sequence[str]) -> str:
    """The ``frame-ancestors`` directive's value for these sources.

    Parameters
    ----------
    sources : sequence of str
        CSP source expressions, e.g. ``("'self'", "https://portal.example.gov.cn")``.

    Returns
    -------
    str
        Space-separated; ``'none'`` when the sequence is empty.

    Raises
    ------
    ConfigError
        When a source is not a valid CSP source (a ``;`` or a space would let a setting
        inject other directives).
    """
    bad = [s for s in sources if not _SOURCE.match(s)]
    if bad:
        raise ConfigError(
            f"GEOMAP_FRAME_ANCESTORS holds invalid CSP source(s): {', '.join(bad)} "
            "(use e.g. 'self', https://portal.example.gov.cn, *.example.gov.cn)",
            field="GEOMAP_FRAME_ANCESTORS",
        )
    return " ".join(sources) if sources else "'none'"


def nonce() -> str:
    """This request's CSP nonce (made on first use; one per response)."""
    from flask import g

    if "geomap_csp_nonce" not in g:
        g.geomap_csp_nonce = secrets.token_urlsafe(18)
    return g.geomap_csp_nonce


_INLINE_TAG = re.compile(r"<(script|style)(?=[\s>])", re.IGNORECASE)


def with_nonce(html: str, value: str) -> str:
    """``html`` with ``nonce="value"`` on every ``<script>`` and ``<style>`` element.

    Safe because the page never holds either tag name inside its inline code or data:
    JSON is written with ``<`` escaped (:func:`geomap.maps.page.script_safe`).
    """
    return _INLINE_TAG.sub(lambda m: f'<{m[1]} nonce="{value}"', html)


def content_security_policy(frame_ancestors: Sequence[str], nonce: str | None) -> str:
    """The pages' CSP: everything from this origin; inline code only with the nonce.

    Images may also come from https tile servers (the ``osm``, ``tianditu`` and ``amap``
    basemaps); nothing else leaves the origin.
    """
    inline = f" 'nonce-{nonce}'" if nonce else ""
    return (
        f"frame-ancestors {frame_ancestors_value(frame_ancestors)}; default-src 'self'; "
        f"script-src 'self'{inline}; style-src 'self'{inline}; "
        "img-src 'self' data: https:; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'"
    )


def page_headers(
    response: Any, *, frame_ancestors: Sequence[str] = ("'self'",), nonce: str | None = None
) -> Any:
    """Add the pages' security headers to a Flask/Werkzeug response.

    Parameters
    ----------
    response : flask.Response
        Changed in place.
    frame_ancestors : sequence of str
        Who may frame the page; ``("'self'",)`` for every page that is not an embed.

    Returns
    -------
    flask.Response
        ``response``.
    """
    response.headers["Content-Security-Policy"] = content_security_policy(frame_ancestors, nonce)
    if tuple(frame_ancestors) == ("'self'",):
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response

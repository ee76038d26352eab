"""``/ogc``: OGC API - Features over HTTP, a thin Flask adapter over :mod:`geomap.ogc.core`.

Each view checks its query arguments, picks the representation (``f=json|html``, else the
``Accept`` header: ``application/geo+json``/``application/json`` or ``text/html``; JSON
when nothing matches) and the language (``Accept-Language``), calls the core and writes
the document. Items are streamed feature by feature in both representations. Errors are
the application's JSON errors (OGC clients expect JSON exceptions), whatever the format.
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    stream_template,
    stream_with_context,
)

from geomap import db
from geomap.ogc import core
from geomap.web.args import Args, single_values
from geomap.web.catalog import catalog, may_see_personal, visible_catalog

bp = Blueprint("ogc", __name__, url_prefix="/ogc", template_folder="templates")

#: What ``Accept`` may ask for, best first when the client does not care (``*/*``).
_OFFERED = (core.MEDIA_GEOJSON, core.MEDIA_JSON, core.MEDIA_HTML)
#: Parameters read before the view (``geomap.web.access``: an embed token travels in the query):
#: accepted everywhere, and repeated in every link so that following one keeps access.
CARRIED = ("token",)


def _args() -> Args:
    """The query arguments of a document without parameters of its own (only ``f``)."""
    return Args(request.args, {"f", *CARRIED})


def _negotiate(f: str | None) -> core.Context:
    fmt = core.parse_format(f)
    if fmt is None:
        best = request.accept_mimetypes.best_match(_OFFERED)
        fmt = "html" if best == core.MEDIA_HTML else "json"
    lang = request.accept_languages.best_match(core.LANGUAGES, default=core.LANGUAGES[0])
    root = request.url_root.rstrip("/")  # honours the script root, and a proxy's fixes
    return core.Context(
        base_url=root + (bp.url_prefix or ""),
        openapi_url=f"{root}/openapi.json",
        format=fmt,
        lang=lang,
        carry=tuple((name, request.args[name]) for name in CARRIED if request.args.get(name)),
    )


def _vary(response: Response, ctx: core.Context) -> Response:
    # The same URL answers JSON or HTML, Chinese or English: caches must know.
    response.vary.update(("Accept", "Accept-Language"))
    response.headers["Content-Language"] = ctx.lang
    return response


def _document(ctx: core.Context, doc: dict[str, Any], template: str, **page: Any) -> Response:
    if ctx.format == "html":
        response = Response(render_template(template, doc=doc, ctx=ctx, **page),
                            mimetype=core.MEDIA_HTML)  # fmt: skip
    else:
        response = jsonify(doc)
    return _vary(response, ctx)


@bp.get("", strict_slashes=False)
def landing_page() -> Response:
    """The landing page: links to the API definition, conformance and collections."""
    ctx = _negotiate(_args().str("f"))
    return _document(ctx, core.landing_page(ctx), "ogc/landing.html")


@bp.get("/conformance")
def conformance() -> Response:
    """The conformance classes implemented."""
    ctx = _negotiate(_args().str("f"))
    return _document(ctx, core.conformance(ctx), "ogc/conformance.html")


@bp.get("/collections")
def collections() -> Response:
    """Every layer of the catalog as a collection."""
    ctx = _negotiate(_args().str("f"))
    doc = core.collections(db.get_session(), visible_catalog(), ctx)
    return _document(ctx, doc, "ogc/collections.html")


@bp.get("/collections/<collection_id>")
def collection(collection_id: str) -> Response:
    """One collection: title, extent, links to its items."""
    layer = core.get_collection(catalog(), collection_id)
    ctx = _negotiate(_args().str("f"))
    return _document(ctx, core.collection(db.get_session(), layer, ctx), "ogc/collection.html")


@bp.get("/collections/<collection_id>/items")
def items(collection_id: str) -> Response:
    """A page of a collection's features: bbox, datetime, property filters, limit, offset."""
    layer = core.get_collection(catalog(), collection_id)
    personal = may_see_personal()
    query = core.parse_items_query(
        layer,
        single_values(request.args),
        max_features=current_app.config["GEOMAP"].max_features,
        personal=personal,
        extra=CARRIED,
    )
    ctx = _negotiate(request.args.get("f"))  # checked by parse_items_query
    session = db.get_session()
    page = core.items(session, layer, query, ctx, personal=personal)
    if ctx.format == "html":
        body = stream_template(
            "ogc/items.html",
            doc=page.head,
            features=page.features,
            columns=layer.public_properties(personal),
            layer=layer,
            collection_title=layer.title.get(ctx.lang) or layer.id,
            query=query,
            ctx=ctx,
        )
        response = Response(db.closing_after(session, body), mimetype=core.MEDIA_HTML)
    else:
        body = stream_with_context(core.stream_items(page))
        response = Response(db.closing_after(session, body), mimetype=core.MEDIA_GEOJSON)
    response.headers["Content-Crs"] = f"<{core.CRS84}>"
    return _vary(response, ctx)


@bp.get("/collections/<collection_id>/items/<feature_id>")
def item(collection_id: str, feature_id: str) -> Response:
    """One feature of a collection, by id."""
    layer = core.get_collection(catalog(), collection_id)
    ctx = _negotiate(_args().str("f"))
    personal = may_see_personal()
    doc = core.item(db.get_session(), layer, feature_id, ctx, personal=personal)
    if ctx.format == "html":
        return _document(
            ctx,
            doc,
            "ogc/item.html",
            columns=layer.public_properties(personal),
            collection_id=layer.id,
            collection_title=layer.title.get(ctx.lang) or layer.id,
            geometry_json=json.dumps(doc["geometry"], ensure_ascii=False),
        )
    response = Response(json.dumps(doc, ensure_ascii=False), mimetype=core.MEDIA_GEOJSON)
    response.headers["Content-Crs"] = f"<{core.CRS84}>"
    return _vary(response, ctx)

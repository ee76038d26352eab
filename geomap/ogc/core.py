"""OGC API - Features, Part 1 (Core): the documents, built without a web framework.

Every function here takes plain values (a session, catalog layers, a :class:`Context` saying
where the API lives and in which language and format it answers, the query arguments) and
returns plain data: the landing page, the conformance declaration, the collections, one
collection, a page of items and one item. ``geomap.ogc.views`` only negotiates, calls these
and writes the result as JSON or HTML, as pygeoapi's Flask adapter does for its core.

Choices where the standard leaves room
--------------------------------------
* ``limit``: default :data:`DEFAULT_LIMIT`; a value above the server's maximum
  (``settings.max_features``, the ``maximum`` of the OpenAPI declaration) is a 400
  naming ``limit`` (the standard's ``limit`` building block would let a server clamp it,
  but a client would then not learn that it got less than it asked for); ``limit=0``,
  negative or non-integer is a 400 too.
* Paging is ``offset``-based and ordered by the layer's id, so consecutive pages neither
  skip nor repeat features; ``next``/``prev`` links carry every other parameter unchanged.
* ``numberReturned`` is written after the features (the features are streamed, and the
  count is the one actually written); JSON member order carries no meaning.
* Coordinates: CRS84 only (``bbox-crs`` other than CRS84 is a 400); ``bbox`` takes 4 or 6
  numbers (the heights of a 6-number box are ignored: the layers are 2D); a feature is in
  the box when its geometry meets it (not only its bounding box); a box whose minimum
  longitude is greater than its maximum crosses the antimeridian.
* ``datetime`` on a collection without time is checked, then matches every feature.
* Property filters: ``?name=value`` equality on the layer's filterable public properties
  (:func:`geomap.analysis.features.filterable`); the standard parameter names win over a
  property of the same name; a personal property is refused by name (400).
* Language: titles and descriptions in Chinese or English (``Accept-Language``; Chinese by
  default); the features themselves are the same in both.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy.orm import Session

from geomap import provenance
from geomap.analysis import features
from geomap.errors import NotFound
from geomap.layers import Layer
from geomap.ogc.query import BBOX_CRS as BBOX_CRS
from geomap.ogc.query import CRS84 as CRS84
from geomap.ogc.query import DEFAULT_LIMIT as DEFAULT_LIMIT
from geomap.ogc.query import FORMATS as FORMATS
from geomap.ogc.query import ITEMS_PARAMETERS as ITEMS_PARAMETERS
from geomap.ogc.query import LANGUAGES as LANGUAGES
from geomap.ogc.query import ItemsQuery as ItemsQuery
from geomap.ogc.query import parse_format as parse_format
from geomap.ogc.query import parse_items_query as parse_items_query

MEDIA_JSON = "application/json"
MEDIA_GEOJSON = "application/geo+json"
MEDIA_HTML = "text/html"
MEDIA_OPENAPI = "application/vnd.oai.openapi+json;version=3.0"

TRS_GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
_CONF = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
CONFORMANCE = tuple(_CONF + name for name in ("core", "geojson", "html", "oas30"))

_TEXT = {
    "zh": {
        "title": "作战图 OGC API - Features 要素服务",
        "description": "南昌城市网格治理作战图的图层：网格、服务阵地、红色文化阵地、队伍与边界",
        "self": "本文档",
        "alternate": "本文档的{}版本",
        "service_desc": "API 定义（OpenAPI 3.0）",
        "conformance": "符合的标准类别",
        "data": "要素集合",
        "items": "要素",
        "collection": "所属集合",
        "next": "下一页",
        "prev": "上一页",
    },
    "en": {
        "title": "geomap battle map: OGC API - Features",
        "description": "The layers of the Nanchang grid governance battle map: grids, service "
        "stations, red culture sites, teams and boundaries",
        "self": "this document",
        "alternate": "this document as {}",
        "service_desc": "the API definition (OpenAPI 3.0)",
        "conformance": "conformance classes implemented",
        "data": "feature collections",
        "items": "features",
        "collection": "the collection",
        "next": "next page",
        "prev": "previous page",
    },
}
_FORMAT_NAMES = {"json": "JSON", "html": "HTML"}


@dataclass(frozen=True)
class Context:
    """Where the API lives and how this request wants its answer.

    Parameters
    ----------
    base_url : str
        Absolute URL of the landing page, without a trailing slash
        (``http://127.0.0.1:5000/ogc``); every link is built from it.
    openapi_url : str
        Absolute URL of the OpenAPI document (``service-desc``).
    format : str
        ``json`` or ``html``: the representation of this answer (its ``self`` link).
    lang : str
        ``zh`` or ``en``: the language of titles and descriptions.
    carry : tuple of (name, value)
        Query parameters repeated in every link to this API, so that following a link
        keeps them: the embed ``token`` a caller authenticated with (see ``geomap.auth``).
    """

    base_url: str
    openapi_url: str
    format: str = "json"
    lang: str = "zh"
    carry: tuple[tuple[str, str], ...] = ()

    def text(self, key: str) -> str:
        """A fixed text of the API in the context's language."""
        return _TEXT[self.lang][key]

    def url(self, href: str, query: Mapping[str, Any] | None = None) -> str:
        """``href`` with ``query`` and the parameters every link carries (``carry``)."""
        return _url(href, {**(query or {}), **dict(self.carry)})

    def page(self, path: str = "", fmt: str = "html") -> str:
        """The URL of ``path`` (already quoted; under ``base_url``) in ``fmt``: for templates."""
        return self.url(self.base_url + path, {"f": fmt})


def _url(href: str, query: Mapping[str, Any] | None = None) -> str:
    if not query:
        return href
    return f"{href}?{urlencode(query, safe=',:/')}"


def _link(href: str, rel: str, media: str, title: str, **extra: Any) -> dict[str, Any]:
    return {"href": href, "rel": rel, "type": media, "title": title, **extra}


def _format_links(
    ctx: Context, href: str, query: Mapping[str, Any] | None = None, json_media: str = MEDIA_JSON
) -> list[dict[str, Any]]:
    """``self`` in the format of this answer, ``alternate`` in each other format."""
    links = []
    for fmt in FORMATS:
        media = MEDIA_HTML if fmt == "html" else json_media
        rel = "self" if fmt == ctx.format else "alternate"
        title = (
            ctx.text("self") if rel == "self" else ctx.text("alternate").format(_FORMAT_NAMES[fmt])
        )
        links.append(_link(ctx.url(href, {**(query or {}), "f": fmt}), rel, media, title))
    links.sort(key=lambda link: link["rel"] != "self")  # self first, for people reading
    return links


def landing_page(ctx: Context) -> dict[str, Any]:
    """The landing page: title, description and the links to everything else.

    Parameters
    ----------
    ctx : Context

    Returns
    -------
    dict
        ``title``, ``description`` and ``links`` (``self``, ``alternate``,
        ``service-desc``, ``conformance``, ``data``).
    """
    base = ctx.base_url
    return {
        "title": ctx.text("title"),
        "description": ctx.text("description"),
        "links": [
            *_format_links(ctx, base),
            _link(ctx.openapi_url, "service-desc", MEDIA_OPENAPI, ctx.text("service_desc")),
            _link(ctx.url(f"{base}/conformance", {"f": "json"}), "conformance", MEDIA_JSON,
                  ctx.text("conformance")),
            _link(ctx.url(f"{base}/conformance", {"f": "html"}), "conformance", MEDIA_HTML,
                  ctx.text("conformance")),
            _link(ctx.url(f"{base}/collections", {"f": "json"}), "data", MEDIA_JSON,
                  ctx.text("data")),
            _link(ctx.url(f"{base}/collections", {"f": "html"}), "data", MEDIA_HTML,
                  ctx.text("data")),
        ],
    }  # fmt: skip


def conformance(ctx: Context) -> dict[str, Any]:
    """The conformance declaration: core, GeoJSON, HTML and OpenAPI 3.0.

    Parameters
    ----------
    ctx : Context

    Returns
    -------
    dict
        ``conformsTo`` (URIs of the conformance classes) and ``links``.
    """
    return {
        "conformsTo": list(CONFORMANCE),
        "links": _format_links(ctx, f"{ctx.base_url}/conformance"),
    }


def get_collection(catalog: Mapping[str, Layer], collection_id: str) -> Layer:
    """The catalog layer behind a collection id, or NotFound (field ``collectionId``)."""
    try:
        return catalog[collection_id]
    except KeyError:
        raise NotFound(
            f"no collection {collection_id!r}; collections: {', '.join(catalog)}",
            field="collectionId",
        ) from None


def _isoformat(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def collection(session: Session, layer: Layer, ctx: Context) -> dict[str, Any]:
    """The description of one collection: title, extent, CRS and links to its items.

    Parameters
    ----------
    session : Session
    layer : Layer
        The catalog layer served as this collection.
    ctx : Context

    Returns
    -------
    dict
        ``id``, ``title``, ``description``, ``itemType``, ``crs``, ``storageCrs``,
        ``extent`` (``spatial`` from the data; ``temporal`` where the layer has a time
        column and data), the provenance (:func:`provenance_members`) and ``links``
        (``self``, ``alternate``, ``items`` as GeoJSON and HTML, ``license``).
    """
    href = f"{ctx.base_url}/collections/{quote(layer.id, safe='')}"
    doc: dict[str, Any] = {
        "id": layer.id,
        "title": layer.title.get(ctx.lang) or layer.id,
        "description": layer.description.get(ctx.lang, ""),
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": CRS84,
    }
    extent: dict[str, Any] = {}
    bbox = features.extent(session, layer)
    if bbox is not None:
        extent["spatial"] = {"bbox": [list(bbox)], "crs": CRS84}
    times = features.time_extent(session, layer)
    if times is not None:
        extent["temporal"] = {
            "interval": [[_isoformat(times[0]), _isoformat(times[1])]],
            "trs": TRS_GREGORIAN,
        }
    if extent:
        doc["extent"] = extent
    members, licence_links = provenance_members(session, layer)
    doc.update(members)
    doc["links"] = [
        *_format_links(ctx, href),
        _link(ctx.url(f"{href}/items", {"f": "json"}), "items", MEDIA_GEOJSON, ctx.text("items")),
        _link(ctx.url(f"{href}/items", {"f": "html"}), "items", MEDIA_HTML, ctx.text("items")),
        *licence_links,
    ]
    return doc


def provenance_members(
    session: Session, layer: Layer
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What a collection's data owes its sources: credits, licences, real and synthetic rows.

    Parameters
    ----------
    session : Session
    layer : Layer

    Returns
    -------
    (dict, list)
        Members of the collection document: ``attribution`` and ``license`` (the credit
        lines and licences the rows call for, :mod:`geomap.provenance`; absent when
        nothing is to be credited) and ``geomap:provenance`` (``real`` and ``synthetic``
        row counts, rows by ``source`` label, and the tables the layer is computed from
        with their labels); and the ``license`` links (one per credited source).
    """
    own = features.sources(session, layer)
    derived = features.derived_sources(session, layer)
    labels = [*own, *derived]
    members: dict[str, Any] = {}
    credited = provenance.credits(labels)
    if credited:
        members["attribution"] = "; ".join(c.attribution for c in credited)
        members["license"] = provenance.licence_text(labels)
    members["geomap:provenance"] = {
        "real": sum(n for label, n in own.items() if provenance.is_real(label)),
        "synthetic": sum(n for label, n in own.items() if not provenance.is_real(label)),
        "sources": own,
        "derivedFrom": {"tables": list(layer.derived_from), "sources": derived},
    }
    links = [
        _link(c.url, "license", MEDIA_HTML, f"{c.attribution} ({c.license})")
        for c in credited
        if c.url
    ]
    return members, links


def collections(session: Session, catalog: Mapping[str, Layer], ctx: Context) -> dict[str, Any]:
    """Every collection of the catalog, described as :func:`collection` describes one.

    Parameters
    ----------
    session : Session
    catalog : mapping of str to Layer
        The layer catalog (``geomap.web.catalog.catalog()``), in its order.
    ctx : Context

    Returns
    -------
    dict
        ``links`` (``self``, ``alternate``), ``crs`` and ``collections``.
    """
    return {
        "links": _format_links(ctx, f"{ctx.base_url}/collections"),
        "crs": [CRS84],
        "collections": [collection(session, layer, ctx) for layer in catalog.values()],
    }


@dataclass
class ItemsPage:
    """One page of a collection's items, ready to be written.

    Attributes
    ----------
    head : dict
        The FeatureCollection without its features: ``type``, ``timeStamp``,
        ``numberMatched`` and ``links``.
    features : iterator of dict
        The GeoJSON Features of the page, streamed from the database in id order.
    """

    head: dict[str, Any]
    features: Iterator[dict[str, Any]]


def items(
    session: Session, layer: Layer, query: ItemsQuery, ctx: Context, *, personal: bool = False
) -> ItemsPage:
    """A page of a collection's items, with the links to the pages around it.

    The matching features are counted first (``numberMatched``, and whether there is a
    next page); the features themselves are read lazily, batch by batch, so a page of
    10,000 polygons never sits in memory.

    Parameters
    ----------
    session : Session
    layer : Layer
    query : ItemsQuery
        From :func:`parse_items_query`.
    ctx : Context
    personal : bool
        Whether personal properties are included.

    Returns
    -------
    ItemsPage
    """
    matched = features.count(session, layer, query.selection, personal=personal)
    collection_href = f"{ctx.base_url}/collections/{quote(layer.id, safe='')}"
    href = f"{collection_href}/items"
    # next/prev stay in the representation being read (GDAL follows the GeoJSON ones).
    page_media = MEDIA_HTML if ctx.format == "html" else MEDIA_GEOJSON

    def page(offset: int, limit: int) -> str:
        paging = {"limit": limit, "offset": offset, "f": ctx.format}
        return ctx.url(href, {**query.passthrough, **paging})

    this_page = {**query.passthrough, "limit": query.limit, "offset": query.offset}
    links = _format_links(ctx, href, this_page, MEDIA_GEOJSON)
    if query.offset + query.limit < matched:
        next_href = page(query.offset + query.limit, query.limit)
        links.append(_link(next_href, "next", page_media, ctx.text("next")))
    if query.offset > 0:
        # Exactly the features before this page, even when offset is not a multiple of limit.
        before = min(query.limit, query.offset)
        prev_href = page(query.offset - before, before)
        links.append(_link(prev_href, "prev", page_media, ctx.text("prev")))
    collection_link = ctx.url(collection_href, {"f": "json"})
    links.append(_link(collection_link, "collection", MEDIA_JSON, ctx.text("collection")))
    head = {
        "type": "FeatureCollection",
        "timeStamp": _isoformat(dt.datetime.now(dt.UTC).replace(microsecond=0)),
        "numberMatched": matched,
        "links": links,
    }
    # Lazy: the query runs when the body is written (the filters were already checked by
    # the count above, so what can still fail there is the database itself).
    rows = features.iter_features(session, layer, query.selection, personal=personal)
    return ItemsPage(head=head, features=rows)


def stream_items(page: ItemsPage) -> Iterator[str]:
    """The page as GeoJSON text, written feature by feature.

    ``numberReturned`` comes last: it is the number of features actually written.

    Parameters
    ----------
    page : ItemsPage

    Yields
    ------
    str
        Consecutive pieces of one JSON document.
    """
    yield json.dumps(page.head, ensure_ascii=False)[:-1] + ', "features": ['
    returned = 0
    for item in page.features:
        yield ("," if returned else "") + json.dumps(item, ensure_ascii=False)
        returned += 1
    yield f'], "numberReturned": {returned}}}'


def item(
    session: Session, layer: Layer, feature_id: str, ctx: Context, *, personal: bool = False
) -> dict[str, Any]:
    """One feature of a collection, with its links.

    A feature that exists in the table but not in the collection (a township asked for in
    ``districts``) is not found: the layer's fixed filters apply.

    Parameters
    ----------
    session : Session
    layer : Layer
    feature_id : str
        The feature's id as it appears in the URL.
    ctx : Context
    personal : bool
        Whether personal properties are included.

    Returns
    -------
    dict
        A GeoJSON Feature with ``links`` (``self``, ``alternate``, ``collection``).

    Raises
    ------
    NotFound
        No such feature in the collection (field ``featureId``).
    """
    try:
        found = features.feature(session, layer, feature_id, personal=personal)
    except NotFound as exc:
        raise NotFound(exc.message, field="featureId") from None
    collection_href = f"{ctx.base_url}/collections/{quote(layer.id, safe='')}"
    href = f"{collection_href}/items/{quote(str(found['id']), safe='')}"
    found["links"] = [
        *_format_links(ctx, href, json_media=MEDIA_GEOJSON),
        _link(ctx.url(collection_href, {"f": "json"}), "collection", MEDIA_JSON,
              ctx.text("collection")),
    ]  # fmt: skip
    return found

"""The map pages over HTTP: thin views over the builders of :mod:`geomap.maps`.

* ``GET /map``: the battle map (作战图); ``/map/circles`` and ``/map/coverage``: the
  planners' maps. Query: ``lang`` (zh|en), ``basemap`` (none|osm|tianditu|amap),
  ``center=lat,lon`` and ``zoom``, ``layers`` (a subset), and the analysis parameters of
  the planners' maps (as ``/api/circles`` and ``/api/coverage`` take them).
* ``GET /embed/<map>``: the same maps without chrome, for an iframe (``map`` is an alias
  of ``battle``); framing allowed from the ``frame_ancestors`` setting.
* ``GET /map/data/<layer>``: a catalog layer in the compact form the pages draw
  (:mod:`geomap.maps.compact`); ``zoom``: generalised for that zoom (layers with a
  catalog ``detail_zoom``).
* ``GET /map/circles/data`` and ``/map/coverage/data``: the planners' maps' analyses in
  the same compact form (each circle or unit a feature, the summary beside them).
* ``GET /tiles/<layer>/<z>/<x>/<y>.pbf``: a catalog layer as vector tiles (PostGIS
  ``ST_AsMVT``, :mod:`geomap.analysis.tiles`), for layers above the ``map_tiles_above``
  setting.

Every payload is kept until the data it was built from changes (:mod:`geomap.web.keep`)
and sent gzip-compressed with an ETag (:mod:`geomap.web.compression`).

Every response of this blueprint carries the security headers of
:mod:`geomap.web.security`.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, g, request

from geomap import db, provenance
from geomap.analysis import circles, coverage, covergrids, features, tiles, versions
from geomap.errors import InvalidInput, NotFound
from geomap.layers import Layer, get_layer
from geomap.maps import basemaps, battle, compact, entries, page, planning, text
from geomap.params import MODES, check_int
from geomap.planning import question
from geomap.web import access, costs, guard, keep, queries, security
from geomap.web.args import Args
from geomap.web.catalog import catalog
from geomap.web.compression import Payload, payload_response
from geomap.web.spec import Param, endpoint

bp = Blueprint("maps", __name__)

#: The maps /embed/<map> knows; "map" is the battle map under the name of its page.
EMBEDDABLE = ("battle", "map", "circles", "coverage")

# Query parameters, declared once: for parsing (unknown ones are a 400 naming them) and
# for /openapi.json (geomap.web.spec).
PAGE_PARAMS = (
    Param("lang", "string", "Language of labels and legend.", enum=text.LANGS, default="zh"),
    Param("basemap", "string", "Tiles under the map; none sends no request anywhere.",
          enum=basemaps.BASEMAPS, default="none"),
    Param("center", "string", "Initial centre, lat,lon (WGS84)."),
    Param("zoom", "integer", "Initial zoom (with center).", minimum=0, maximum=18),
    Param("layers", "string", "Only these layers (comma-separated).", array=True),
)  # fmt: skip
CIRCLES_PARAMS = (
    Param("of", "string", "Venues: red (sites and red stations), sites or stations.",
          enum=circles.VENUE_SETS, default="red"),
    Param("kind", "string", "Only venues of these kinds.", array=True),
    Param("minutes", "number", "Walking minutes (default 15).", minimum=0,
          maximum=costs.MAX_CIRCLE_MINUTES),
    Param("distance_m", "number", "Or a walking distance in metres.", minimum=0,
          maximum=costs.MAX_CIRCLE_M),
)  # fmt: skip
COVERAGE_PARAMS = (
    Param("of", "string", "Providers.", enum=tuple(coverage.PROVIDERS), default="stations"),
    Param("kind", "string", "Only providers of these kinds.", array=True),
    Param("within_m", "number", "Reach in metres (by=distance; default 1000).", minimum=0,
          maximum=costs.MAX_COVERAGE_M),
    Param("within_min", "number", "Reach in minutes (by=walk or drive).", minimum=0,
          maximum=coverage.MAX_WITHIN_MIN),
    Param("by", "string", "Straight line or travel time.", enum=MODES, default="distance"),
    Param("level", "string", "Units of the map.", enum=coverage.LEVELS, default="grid"),
)  # fmt: skip


def _names(*groups: tuple[Param, ...]) -> set[str]:
    # "token": an embed token (geomap.web.access) opens a page and travels on with its requests.
    return {p.name for group in groups for p in group} | {"token"}


_PAGE_ARGS = _names(PAGE_PARAMS)
_CIRCLES_ARGS = _names(CIRCLES_PARAMS)
_COVERAGE_ARGS = _names(COVERAGE_PARAMS)
_EMBED_PARAMS = PAGE_PARAMS + tuple(
    {p.name: p for p in CIRCLES_PARAMS + COVERAGE_PARAMS if p.name not in ("of", "kind")}.values()
) + (
    Param("of", "string", "Circles: venues; coverage: providers."),
    Param("kind", "string", "Only these kinds.", array=True),
)
ZOOM_PARAM = Param(
    "zoom", "integer", "Generalise the geometry for this zoom (layers with a catalog "
    "detail_zoom; from that zoom on, or without zoom: full detail).", minimum=0, maximum=18,
)  # fmt: skip
#: The data sets behind the planners' maps (besides the providers of a coverage map).
CIRCLES_DATA_SETS = ("circles", "sites", "stations", "grids", "network")
COVERAGE_DATA_SETS = ("grids", "regions", "network")


@bp.after_request
def _security_headers(response: Response) -> Response:
    settings = current_app.config["GEOMAP"]
    ancestors: tuple[str, ...] = ("'self'",)
    if g.get("geomap_embed"):
        who = access.current()
        # An embed token names its portal: that page, and no other, may frame the map.
        ancestors = (who.origin,) if who.kind == "embed" else tuple(settings.frame_ancestors)
    return security.page_headers(response, frame_ancestors=ancestors, nonce=security.nonce())


def _view(args: Args) -> dict:
    """The initial view: ``center``/``zoom`` if given, else the gridded area fills it."""
    view: dict = {}
    center = args.str("center")
    if center:
        parts = center.split(",")
        try:
            lat, lon = (float(p) for p in parts)
        except ValueError:
            raise InvalidInput("center must be lat,lon in degrees", field="center") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidInput("center must be lat,lon in degrees", field="center")
        view["center"] = [lat, lon]
    if args.raw("zoom") is not None:
        view["zoom"] = check_int(args.raw("zoom"), "zoom", 0, 18)
        if "center" not in view:
            raise InvalidInput("zoom needs a center (center=lat,lon)", field="zoom")
    if "center" in view:
        view.setdefault("zoom", 12)
        return view
    session = db.get_session()
    layers = catalog()
    for name in ("grids", "districts"):
        if name in layers:
            box = features.extent(session, layers[name])
            if box:
                view["bounds"] = [[box[1], box[0]], [box[3], box[2]]]
                break
    return view


def _spec(args: Args, *, embed: bool) -> page.PageSpec:
    settings = current_app.config["GEOMAP"]
    lang = text.check_lang(args.str("lang"))
    return page.PageSpec(
        lang=lang,
        basemap=basemaps.basemap(
            args.str("basemap"), lang=lang, tianditu_key=settings.tianditu_key
        ),
        embed=embed,
        view=_view(args),
        static_url=request.script_root + "/static",
        service_url=request.script_root,
        token=args.str("token"),
    )


def _tiled(names: list[str]) -> dict[str, dict]:
    """The layers among ``names`` to draw from vector tiles: more features than the
    ``map_tiles_above`` setting (or than ``max_features``, which one document may hold).

    Kept until their data changes, like the documents: the counts and the tiled layers'
    summaries are a page's own query work (0.1 s for a city ten times Nanchang), at the
    head of every load."""
    settings = current_app.config["GEOMAP"]
    layers = catalog()
    # The live layers (the cases) come from the live API: never tiles.
    known = [name for name in names if name in layers and name not in battle.LIVE_LAYERS]
    limit = min(settings.map_tiles_above, settings.max_features)

    def build() -> Payload:
        session = db.get_session()
        out = {}
        for name in known:
            if settings.map_tiles_above > 0:
                count = features.count(session, layers[name], features.Selection())
                if count <= limit:
                    continue
            out[name] = features.tiled_summary(session, layers[name])
        return Payload(json.dumps(out).encode("utf-8"))

    key = ("tiled", tuple(known), settings.map_tiles_above, settings.max_features)
    per_layer = [versions.layer_data_sets(layers[name]) for name in known]
    # A layer of unknown provenance (no data set) means the answer is never kept.
    data_sets = set().union(*per_layer) if all(per_layer) else set()
    return json.loads(keep.kept(key, data_sets, build).body)


def _html(m) -> Response:
    # Every inline <script> and <style> of the page carries this response's nonce: the
    # page's CSP allows those and nothing else inline (geomap.web.security).
    html = security.with_nonce(page.page_html(m), security.nonce())
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


def _token_layers(allowed: list[str]) -> list[str] | None:
    """The layers an embed token opens (geomap.web.access), which a page shows by default."""
    opened = access.current().layers
    if opened is None:
        return None
    return [name for name in allowed if name in opened] or None


def _requested_layers(args: Args) -> list[str] | None:
    """The ``layers`` argument, or None when it is absent (then the page's defaults)."""
    return args.list("layers") if "layers" in request.args else None


def _battle(embed: bool) -> Response:
    args = Args(request.args, _PAGE_ARGS)
    allowed = battle.battle_layers(catalog())
    layer_names = entries.check_layer_names(
        _requested_layers(args), allowed, "battle"
    )
    if layer_names is None:
        layer_names = _token_layers(allowed)
    shown = layer_names if layer_names is not None else allowed
    settings = current_app.config["GEOMAP"]
    m = battle.battle_map(
        catalog(), _spec(args, embed=embed), layers=layer_names, tiled=_tiled(list(shown)),
        stale_minutes=getattr(settings, "stale_minutes", battle.STALE_MINUTES),
        routes={rule.rule for rule in current_app.url_map.iter_rules()},
        preload=_may_read_layers(),
    )  # fmt: skip
    return _html(m)


def _may_read_layers() -> bool:
    """Whether this page's caller may load the layers now (else the page signs in first,
    and a preloaded answer would be a cached refusal).

    The map pages are public shells, so nobody checked the caller: ask who it is (its
    session cookie, its key, an open local read). Then a signed-in commander's browser
    fetches the layers while it still loads the scripts, as before the pages went public.
    """
    who = g.get("principal") or access.optional(request)
    return who.may("layers")


def _circles(embed: bool) -> Response:
    args = Args(request.args, _PAGE_ARGS | _CIRCLES_ARGS)
    layer_names = entries.check_layer_names(
        _requested_layers(args),
        list(planning.CIRCLES_LAYERS),
        "circles",
    )
    # Checked here, so a bad parameter is a 400 rather than an error in the page.
    query = queries.circles_query(args, current_app.config["GEOMAP"])
    api_query = {
        "of": query.of,
        "kind": query.kinds,
        "minutes": query.minutes,
        "distance_m": query.distance_m,
    }
    m = planning.circles_map(
        catalog(), _spec(args, embed=embed), query=api_query, layers=layer_names,
        credits=_credits("circles"),
        tiled=_tiled(["districts", "townships", "grids"]),
    )  # fmt: skip
    return _html(m)


#: The coverage map's question when it names no reach: what has a station within 1 km?
DEFAULT_WITHIN_M = 1000.0


def _coverage_query(args: Args) -> covergrids.Query:
    """The coverage map's question, checked as ``/api/coverage`` checks it."""
    return queries.coverage_query(args, current_app.config["GEOMAP"], db.get_session(),
                                  default_within_m=DEFAULT_WITHIN_M)  # fmt: skip


def _coverage(embed: bool) -> Response:
    args = Args(request.args, _PAGE_ARGS | _COVERAGE_ARGS)
    layer_names = entries.check_layer_names(
        _requested_layers(args),
        list(planning.COVERAGE_LAYERS),
        "coverage",
    )
    query = _coverage_query(args)
    api_query = {
        "of": query.of,
        "kind": query.kinds,
        "by": query.by,
        "within_m": query.within_m,
        "within_min": query.within_min,
        "level": query.level,
    }
    # Coverage is of grids; by travel time it is also drawn from the road network.
    m = planning.coverage_map(
        catalog(), _spec(args, embed=embed), query=api_query, layers=layer_names,
        credits=_credits("grids", *(["streets"] if query.by != "distance" else [])),
        tiled=_tiled(["districts", "townships", query.of]),
    )  # fmt: skip
    return _html(m)


def _credits(*layer_ids: str) -> list[str]:
    """The credit lines the rows of these catalog layers (and their sources) call for."""
    session = db.get_session()
    layers = catalog()
    labels: list[str] = []
    for layer_id in layer_ids:
        if layer_id in layers:
            labels += [*features.sources(session, layers[layer_id]),
                       *features.derived_sources(session, layers[layer_id])]  # fmt: skip
    return provenance.attributions(labels)


def _page(
    summary: str,
    params: tuple[Param, ...],
    statuses: tuple[int, ...] = (400,),
    permission: str = "public",
):
    # A page is a shell (layout, catalog, the city's extent) that loads its data with the
    # caller's credentials: anyone may load it, and it shows its sign-in form to callers
    # whose data requests would be refused (geomap.api.session). Embeds need their token.
    return endpoint(summary, permission=permission, params=params, media_type="text/html",
                    tags=("maps",), statuses=statuses)  # fmt: skip


@bp.get("/map")
@_page("The battle map (作战图): teams, stations, grids, circles; nearest teams", PAGE_PARAMS)
def battle_page() -> Response:
    """The battle map (作战图)."""
    return _battle(embed=False)


@bp.get("/map/circles")
@_page("The 15-minute red culture circles and their residents", PAGE_PARAMS + CIRCLES_PARAMS)
def circles_page() -> Response:
    """The 15-minute red culture circles, with residents inside each."""
    return _circles(embed=False)


@bp.get("/map/coverage")
@_page("Coverage gaps: units with no provider in reach", PAGE_PARAMS + COVERAGE_PARAMS)
def coverage_page() -> Response:
    """Coverage gaps: grids (or higher units) with no provider in reach."""
    return _coverage(embed=False)


@bp.get("/embed/<name>")
@_page("A map without chrome, for an iframe: battle (alias map), circles, coverage",
       _EMBED_PARAMS, statuses=(400, 404), permission="layers")  # fmt: skip
def embed_page(name: str) -> Response:
    """A map without chrome for an iframe: ``battle`` (alias ``map``), circles, coverage."""
    if name not in EMBEDDABLE:
        raise NotFound(f"no map {name!r} to embed; maps: {', '.join(EMBEDDABLE)}", field="map")
    g.geomap_embed = True
    if name in ("battle", "map"):
        return _battle(embed=True)
    if name == "circles":
        return _circles(embed=True)
    return _coverage(embed=True)


def _zoom(args: Args, detail_zoom: int) -> int | None:
    """The zoom to generalise for, or None for full detail (none asked, or not coarser)."""
    raw = args.raw("zoom")
    if raw is None:
        return None
    zoom = check_int(raw, "zoom", 0, 18)
    return zoom if detail_zoom and zoom < detail_zoom else None


def _json(payload: Payload) -> Response:
    # Teams move, circles get built: browsers keep the body but always revalidate.
    return payload_response(payload, "application/json", cache_control="no-cache")


def _encoded(document: dict) -> Payload:
    return Payload(compact.dumps(document).encode("utf-8"))


@bp.get("/map/data/<layer_id>")
@endpoint("A layer in the maps' compact form (geomap-compact/1; no personal fields)",
          permission="layers", tags=("maps",), statuses=(400, 404),
          params=(ZOOM_PARAM,))  # fmt: skip
def layer_data(layer_id: str) -> Response:
    """One catalog layer as ``geomap-compact/1`` JSON (no personal fields, ever)."""
    layer = get_layer(catalog(), layer_id)
    args = Args(request.args, {"token", "zoom"})
    return _json(_layer_payload(layer, _zoom(args, layer.detail_zoom)))


def _layer_payload(layer: Layer, zoom: int | None) -> Payload:
    """A catalog layer's compact document (generalised for ``zoom``), kept until its data
    changes."""
    settings = current_app.config["GEOMAP"]

    def build() -> Payload:
        session = db.get_session()
        general = compact.generalisation(zoom)
        selection = features.Selection(
            limit=settings.max_features, simplify_m=general[0] if general else None
        )
        matched = features.count(session, layer, selection)
        rows = features.iter_features(session, layer, selection, personal=False)
        credited = [*features.sources(session, layer), *features.derived_sources(session, layer)]
        return _encoded(compact.encode_layer(layer, rows, matched=matched, zoom=zoom,
                                             credited=credited))

    key = ("layer", layer.id, zoom, settings.max_features)
    return keep.kept(key, versions.layer_data_sets(layer), build)


def warm_battle_map(app: Flask) -> list[str]:
    """Build and keep the documents the battle map loads at its first view.

    Called in the gunicorn master before the workers fork (:mod:`geomap.serving`): the
    kept documents are then every worker's from its first request, instead of each
    worker building its own on the first pages it serves (seconds, after a restart).

    Parameters
    ----------
    app : Flask

    Returns
    -------
    list of str
        The URLs whose documents are now kept.
    """
    with app.test_request_context("/map"):
        layers = catalog()
        m = battle.battle_map(layers, _spec(Args(request.args, _PAGE_ARGS), embed=False),
                              tiled=_tiled(battle.battle_layers(layers)))  # fmt: skip
        warmed = []
        for entry in page.first_view_layers(page.config_of(m)):
            url = urlsplit(entry["source"]["url"])
            if not url.path.startswith(battle.DATA_PATH.format(layer="")):
                continue
            layer = get_layer(layers, url.path.rsplit("/", 1)[1])
            zoom = parse_qs(url.query).get("zoom")
            _layer_payload(layer, int(zoom[0]) if zoom else None)
            warmed.append(entry["source"]["url"])
        return warmed


@bp.get("/map/circles/data")
@endpoint("The circles map's data: each venue's circle and residents (geomap-compact/1), "
          "and the residents inside their union", permission="analysis", tags=("maps",),
          params=(*CIRCLES_PARAMS, ZOOM_PARAM))  # fmt: skip
def circles_data() -> Response:
    """The circles of a query as a compact document, the union's residents as its summary."""
    args = Args(request.args, _CIRCLES_ARGS | {"zoom"})
    settings = current_app.config["GEOMAP"]
    query = queries.circles_query(args, settings)
    layer = catalog().get("circles")
    zoom = _zoom(args, layer.detail_zoom if layer else 0)

    def build() -> Payload:
        session = db.get_session()
        with guard.heavy("circles map"):
            records = circles.circles(session, query)
            session.commit()  # circles built on first use are a cache worth keeping
            if len(records) > settings.max_features:
                raise InvalidInput(
                    f"{len(records)} circles exceed the limit of {settings.max_features}; "
                    "filter by kind",
                    field="kind",
                )
            union = circles.union(session, query)
            session.commit()
        return _encoded(
            planning.circles_document(
                records, union, simplify_m=layer.simplify_m if layer else 0, zoom=zoom
            )
        )

    key = ("circles", repr(query), zoom, settings.max_features)
    return _json(keep.kept(key, CIRCLES_DATA_SETS, build))


@bp.get("/map/coverage/data")
@endpoint("The coverage map's data: every unit with its coverage (geomap-compact/1) and "
          "the summary", permission="analysis", tags=("maps",),
          params=(*COVERAGE_PARAMS, ZOOM_PARAM))  # fmt: skip
def coverage_data() -> Response:
    """Coverage of every unit as a compact document, with the summary and the query."""
    args = Args(request.args, _COVERAGE_ARGS | {"zoom"})
    settings = current_app.config["GEOMAP"]
    query = _coverage_query(args)
    grids = catalog().get("grids")
    zoom = _zoom(args, grids.detail_zoom if grids else 0)

    def build() -> Payload:
        with guard.heavy("coverage map"):
            answer = coverage.coverage(
                db.get_session(),
                query,
                walk_speed_kmh=settings.walk_speed_kmh,
                access_m=settings.circle_access_m,
                with_geometry=True,
            )
        if len(answer["units"]) > settings.max_features:
            raise InvalidInput(f"{len(answer['units'])} units exceed the limit of "
                               f"{settings.max_features}; choose a coarser level",
                               field="level")  # fmt: skip
        return _encoded(
            planning.coverage_document(
                answer, simplify_m=grids.simplify_m if grids else 0, zoom=zoom
            )
        )

    key = ("coverage", repr(query), zoom, settings.walk_speed_kmh, settings.circle_access_m,
           settings.max_features)  # fmt: skip
    return _json(keep.kept(key, (*COVERAGE_DATA_SETS, query.of), build))


@bp.get("/tiles/<layer_id>/<int:z>/<int:x>/<int:y>.pbf")
@endpoint("A layer as a vector tile (Mapbox Vector Tile from PostGIS ST_AsMVT; no "
          "personal fields), from the layer's min_zoom", permission="layers", tags=("maps",),
          media_type=tiles.MEDIA_TYPE, statuses=(400, 404))  # fmt: skip
def layer_tile(layer_id: str, z: int, x: int, y: int) -> Response:
    """One vector tile of a catalog layer (empty when nothing touches it)."""
    layer = get_layer(catalog(), layer_id)
    Args(request.args, {"token"})
    tiles.check_tile(layer, z, x, y)

    def build() -> Payload:
        return Payload(tiles.layer_tile(db.get_session(), layer, z, x, y))

    payload = keep.kept(("tile", layer.id, z, x, y), versions.layer_data_sets(layer), build)
    return payload_response(payload, tiles.MEDIA_TYPE, cache_control="no-cache")


# -- the planning map (geomap.maps.plan, static/geomap/planmap.js) ---------------------------
PLAN_PARAMS = (
    Param("of", "string", "Venue set kept as it is.", enum=circles.VENUE_SETS, default="red"),
    Param("minutes", "number", "Reach in minutes (default 15).", minimum=0,
          maximum=circles.MAX_MINUTES),
    Param("distance_m", "number", "Or a walking distance in metres.", minimum=0,
          maximum=circles.MAX_DISTANCE_M),
    Param("mode", "string", "Walk or drive.", enum=("walk", "drive"), default="walk"),
    Param("n", "integer", "Sites to add.", minimum=1, maximum=200, default=5),
    Param("area", "string", "Region code the run is restricted to."),
)  # fmt: skip
_PLAN_ARGS = _names(PAGE_PARAMS, PLAN_PARAMS)
_DISTRICTS_SQL = sa.text(
    "SELECT code, name FROM regions WHERE level IN ('district', 'township') "
    "ORDER BY level, code"
)


@bp.get("/map/plan")
@_page("Planners: suggest where the next sites go, try scenarios", PAGE_PARAMS + PLAN_PARAMS)
def plan_page() -> Response:
    """The planning map: site suggestions with progress, scenarios, downloads."""
    from geomap.maps import plan

    args = Args(request.args, _PLAN_ARGS)
    settings = current_app.config["GEOMAP"]
    # Validated now (a 400 naming the field), so the page starts from a sound question.
    checked = question.make_plan(
        of=args.str("of", "red"), minutes=args.raw("minutes"), distance_m=args.raw("distance_m"),
        mode=args.str("mode", "walk"), n=args.raw("n") or 5, area=args.str("area"),
        walk_speed_kmh=settings.walk_speed_kmh, access_m=settings.circle_access_m,
    )  # fmt: skip
    defaults = {"of": checked.of, "minutes": checked.minutes, "distance_m": checked.distance_m,
                "mode": checked.mode, "n": checked.n, "area": checked.area or ""}  # fmt: skip
    regions = [{"code": c, "name": n} for c, n in db.get_session().execute(_DISTRICTS_SQL)]
    m = plan.plan_map(catalog(), _spec(args, embed=False), districts=regions, defaults=defaults)
    return _html(m)

"""Planners' maps: the 15-minute red culture circles, and coverage gaps.

* :func:`circles_map`: each venue's walking circle with the residents inside it (from
  ``/map/circles/data``: the circles of ``/api/circles``, built on first use, and the
  residents inside their union), the venues, and a summary.
* :func:`coverage_map`: every grid (or community, township, district) coloured by the
  share of its residents within reach of the providers (from ``/map/coverage/data``: the
  answer of ``/api/coverage``);
  uncovered units are highlighted and their popups say how many residents are left
  outside; a summary box lists the largest gaps.

Builders take the catalog and the (validated) analysis query; the browser loads the
analysis answer itself, once. Like :func:`geomap.maps.battle.battle_map`, they return a
folium map to render once with :func:`geomap.maps.page.page_html`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import folium

from geomap.layers import Layer
from geomap.maps import compact, page, text
from geomap.maps.battle import DATA_PATH
from geomap.maps.entries import catalog_layer

#: The layers each planners' map can show, in drawing order; the analysis layers are
#: ``circles``/``venues`` and ``coverage``/``providers``, the others come from the catalog.
CIRCLES_LAYERS = ("districts", "townships", "grids", "circles", "venues")
COVERAGE_LAYERS = ("districts", "townships", "coverage", "providers")
_DEFAULT_HIDDEN = {"grids"}
#: Where the planners' maps load their analyses (compact, kept until the data changes).
CIRCLES_DATA_PATH = "/map/circles/data"
COVERAGE_DATA_PATH = "/map/coverage/data"


def _query_string(query: Mapping[str, Any]) -> str:
    """``a=1&kind=x,y`` from a normalised query (None dropped, lists joined by commas)."""
    pairs = []
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        pairs.append((key, str(value)))
    return urlencode(pairs, safe=",")


def _catalog_entries(
    catalog: Mapping[str, Layer], names: Sequence[str], chosen: Sequence[str] | None,
    spec: page.PageSpec, tiled: Mapping[str, Mapping[str, Any]] | None,
) -> list[dict[str, Any]]:  # fmt: skip
    entries = []
    zoom = page.detail_zoom(spec.view)
    for name in names:
        if name not in catalog or (chosen is not None and name not in chosen):
            continue
        visible = True if chosen is not None else name not in _DEFAULT_HIDDEN
        source = {"url": DATA_PATH.format(layer=name)}
        entries.append(
            catalog_layer(
                catalog[name], spec.lang, source=source, visible=visible, zoom=zoom,
                tiled=(tiled or {}).get(name),
            )
        )
    return entries


def _data_url(
    path: str, query: Mapping[str, Any], detail: Layer | None, spec: page.PageSpec
) -> str:
    """The URL of a planners' map's data: its query, and the zoom to generalise for."""
    params = dict(query)
    zoom = page.detail_zoom(spec.view)
    if detail is not None and zoom is not None and zoom < detail.detail_zoom:
        params["zoom"] = zoom
    return path + "?" + _query_string(params)


def circles_map(
    catalog: Mapping[str, Layer],
    spec: page.PageSpec,
    *,
    query: Mapping[str, Any],
    layers: Sequence[str] | None = None,
    credits: Sequence[str] = (),
    tiled: Mapping[str, Mapping[str, Any]] | None = None,
) -> folium.Map:
    """The 15-minute circles map.

    Parameters
    ----------
    catalog : mapping
        The layer catalog (styles of circles, sites and stations; outlines).
    spec : PageSpec
        Language, basemap, embedding, view.
    query : mapping
        ``/api/circles`` parameters, validated (``of``, ``kind``, ``minutes`` or
        ``distance_m``).
    layers : sequence of str, optional
        Only these of :data:`CIRCLES_LAYERS` (an embed); default: all but grids.
    credits : sequence of str
        Credit lines the circles owe (their road network's sources: OpenStreetMap),
        shown in the attribution control while they are drawn.
    tiled : mapping, optional
        Catalog layers drawn from vector tiles (see :func:`geomap.maps.battle.battle_map`).

    Returns
    -------
    folium.Map
    """
    lang = spec.lang
    entries = _catalog_entries(catalog, ("districts", "townships", "grids"), layers, spec, tiled)
    circles_layer = catalog.get("circles")
    # The circles and the venues come from one document (the venues with and without a
    # circle), fetched once.
    source = {"url": _data_url(CIRCLES_DATA_PATH, query, circles_layer, spec)}
    if layers is None or "circles" in layers:
        entries.append(
            {
                "id": "circles",
                "type": "circles",
                "title": text.ui("title_circles", lang),
                "geometry": "polygon",
                "minZoom": 0,
                "detailZoom": circles_layer.detail_zoom if circles_layer else 0,
                "visible": True,
                "style": circles_layer.style if circles_layer else {},
                "credits": list(credits),
                "source": source,
            }
        )
    if layers is None or "venues" in layers:
        entries.append(
            {
                "id": "venues",
                "type": "venues",
                "title": text.ui("venues", lang),
                "geometry": "point",
                "minZoom": 0,
                "visible": True,
                # Venues are sites and stations: each keeps its own table's icons.
                "styles": {
                    name: catalog[name].style for name in ("sites", "stations") if name in catalog
                },
                "source": dict(source),
            }
        )
    config = {
        "page": "circles",
        "layers": entries,
        "query": dict(query),
    }
    return page.shell(spec, config, title=text.ui("title_circles", lang))


def coverage_map(
    catalog: Mapping[str, Layer],
    spec: page.PageSpec,
    *,
    query: Mapping[str, Any],
    layers: Sequence[str] | None = None,
    credits: Sequence[str] = (),
    tiled: Mapping[str, Mapping[str, Any]] | None = None,
) -> folium.Map:
    """The coverage-gaps map.

    Parameters
    ----------
    catalog : mapping
        The layer catalog (outlines; the providers' layer and its styles).
    spec : PageSpec
        Language, basemap, embedding, view.
    query : mapping
        ``/api/coverage`` parameters, validated: ``of`` (stations, teams or sites),
        ``kind``, ``by``, ``within_m`` or ``within_min``, ``level``.
    layers : sequence of str, optional
        Only these of :data:`COVERAGE_LAYERS` (an embed); default: all.
    credits : sequence of str
        Credit lines the coverage layer owes (the grids' residents; the road network
        when reach is by travel time), shown while it is drawn.
    tiled : mapping, optional
        Catalog layers drawn from vector tiles (see :func:`geomap.maps.battle.battle_map`).

    Returns
    -------
    folium.Map
    """
    lang = spec.lang
    entries = _catalog_entries(catalog, ("districts", "townships"), layers, spec, tiled)
    grids = catalog.get("grids")
    if layers is None or "coverage" in layers:
        entries.append(
            {
                "id": "coverage",
                "type": "coverage",
                "title": text.ui("coverage_layer", lang),
                "geometry": "polygon",
                "minZoom": 0,
                "detailZoom": grids.detail_zoom if grids else 0,
                "visible": True,
                "style": grids.style if grids else {},
                "credits": list(credits),
                "source": {"url": _data_url(COVERAGE_DATA_PATH, query, grids, spec)},
            }
        )
    provider = catalog.get(query.get("of") or "stations")
    if provider is not None and (layers is None or "providers" in layers):
        entry = catalog_layer(
            provider, lang, source={"url": DATA_PATH.format(layer=provider.id)}, visible=True,
            zoom=page.detail_zoom(spec.view), tiled=(tiled or {}).get(provider.id),
        )  # fmt: skip
        if "tiles" not in entry["source"]:
            # What the analysis is about: shown from the city view on, whatever zoom the
            # battle map waits for (tiles start at the catalog's min_zoom, though).
            entry["minZoom"] = 0
        entry.update(
            {
                "id": "providers",
                "title": f"{text.ui('providers', lang)}: {entry['title']}",
                "kindsShown": list(query.get("kind") or []) or None,
                "catalogId": provider.id,
            }
        )
        entries.append(entry)
    config = {
        "page": "coverage",
        "layers": entries,
        "query": dict(query),
    }
    return page.shell(spec, config, title=text.ui("title_coverage", lang))


#: The properties of each circle in the circles map's document, in order.
CIRCLE_FIELDS = (
    "venue_table", "site_id", "name", "kind", "lon", "lat", "minutes", "distance_m",
    "area_km2", "population", "reached_edges",
)  # fmt: skip
#: The properties of each unit in the coverage map's document, in order.
COVERAGE_FIELDS = (
    "code", "name", "level", "grids", "population", "covered_population",
    "uncovered_population", "covered_share_area", "covered_share_population", "nearest_m",
    "covered",
)  # fmt: skip


def _simplified(geometries: list[Any], simplify_m: float, zoom: int | None) -> list[Any]:
    general = compact.generalisation(zoom)
    tolerance = max(float(simplify_m or 0), general[0] if general else 0.0)
    return compact.simplify_geometries(geometries, tolerance)


def circles_document(
    records: Sequence[Mapping[str, Any]],
    union: Mapping[str, Any],
    *,
    simplify_m: float = 0.0,
    zoom: int | None = None,
) -> dict[str, Any]:
    """The circles map's data: a ``geomap-compact/1`` document of circles, with a summary.

    Parameters
    ----------
    records : sequence of mapping
        :func:`geomap.analysis.circles.circles` records (``geometry`` a GeoJSON geometry
        or None: a venue without a circle).
    union : mapping
        :func:`geomap.analysis.circles.union` of the same query: its residents, area and
        circle count become ``summary`` (its geometry is not sent: the page draws each
        circle).
    simplify_m : float
        The catalog's simplification of circles, in metres.
    zoom : int, optional
        Generalise the circles for this zoom (:func:`geomap.maps.compact.generalisation`).

    Returns
    -------
    dict
        The document; its features' ids are ``<venue_table>/<id>``.
    """
    shapes = _simplified([r.get("geometry") for r in records], simplify_m, zoom)
    features = [
        {
            "id": f"{r['venue_table']}/{r['site_id']}",
            "geometry": shape,
            "properties": {**r, "source": circles_source()},
        }
        for r, shape in zip(records, shapes, strict=True)
    ]
    document = compact.encode_features(
        "circles", "polygon", CIRCLE_FIELDS, features, zoom=zoom
    )
    document["summary"] = {
        key: union.get(key)
        for key in ("circles", "area_km2", "population", "covered_population", "covered_share")
    }
    document["query"] = dict(union.get("query") or {})
    return document


def circles_source() -> str:
    """The provenance of circles: derived by geomap from the network and the venues."""
    from geomap.analysis.circles import SOURCE

    return SOURCE


def coverage_document(
    answer: Mapping[str, Any], *, simplify_m: float = 0.0, zoom: int | None = None
) -> dict[str, Any]:
    """The coverage map's data: a ``geomap-compact/1`` document of units, with the summary.

    Parameters
    ----------
    answer : mapping
        :func:`geomap.analysis.coverage.coverage` with ``with_geometry=True``.
    simplify_m : float
        The catalog's simplification of grids, in metres.
    zoom : int, optional
        Generalise the units for this zoom.

    Returns
    -------
    dict
        The document (feature ids: the unit codes), plus ``summary`` and ``query``.
    """
    units = answer["units"]
    shapes = _simplified([u.get("geometry") for u in units], simplify_m, zoom)
    features = [
        {"id": u["code"], "geometry": shape, "properties": u}
        for u, shape in zip(units, shapes, strict=True)
    ]
    document = compact.encode_features(
        "coverage", "polygon", COVERAGE_FIELDS, features, zoom=zoom
    )
    document["summary"] = dict(answer["summary"])
    document["query"] = dict(answer["query"])
    return document

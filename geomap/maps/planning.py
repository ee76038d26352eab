"""Planners' maps: the 15-minute red culture circles, and coverage gaps.

* :func:`circles_map`: each venue's walking circle with the residents inside it (from
  ``/api/circles``, which builds missing circles on first use), the venues, and a summary.
* :func:`coverage_map`: every grid (or community, township, district) coloured by the
  share of its residents within reach of the providers (from ``/api/coverage``);
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
from geomap.maps import page, text
from geomap.maps.battle import DATA_PATH

#: The layers each planners' map can show, in drawing order; the analysis layers are
#: ``circles``/``venues`` and ``coverage``/``providers``, the others come from the catalog.
CIRCLES_LAYERS = ("districts", "townships", "grids", "circles", "venues")
COVERAGE_LAYERS = ("districts", "townships", "coverage", "providers")
_DEFAULT_HIDDEN = {"grids"}


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
    catalog: Mapping[str, Layer], names: Sequence[str], chosen: Sequence[str] | None, lang: str
) -> list[dict[str, Any]]:
    entries = []
    for name in names:
        if name not in catalog or (chosen is not None and name not in chosen):
            continue
        visible = True if chosen is not None else name not in _DEFAULT_HIDDEN
        source = {"url": DATA_PATH.format(layer=name)}
        entries.append(page.catalog_layer(catalog[name], lang, source=source, visible=visible))
    return entries


def circles_map(
    catalog: Mapping[str, Layer],
    spec: page.PageSpec,
    *,
    query: Mapping[str, Any],
    layers: Sequence[str] | None = None,
    credits: Sequence[str] = (),
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

    Returns
    -------
    folium.Map
    """
    lang = spec.lang
    entries = _catalog_entries(catalog, ("districts", "townships", "grids"), layers, lang)
    circles_layer = catalog.get("circles")
    if layers is None or "circles" in layers:
        entries.append(
            {
                "id": "circles",
                "type": "circles",
                "title": text.ui("title_circles", lang),
                "geometry": "polygon",
                "minZoom": 0,
                "visible": True,
                "style": circles_layer.style if circles_layer else {},
                "credits": list(credits),
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
            }
        )
    config = {
        "page": "circles",
        "layers": entries,
        "urls": {
            "circles": "/api/circles?" + _query_string(query),
            # Residents inside the union of the circles: the share the planners report.
            "circlesUnion": "/api/circles/union?" + _query_string(query),
        },
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

    Returns
    -------
    folium.Map
    """
    lang = spec.lang
    entries = _catalog_entries(catalog, ("districts", "townships"), layers, lang)
    if layers is None or "coverage" in layers:
        entries.append(
            {
                "id": "coverage",
                "type": "coverage",
                "title": text.ui("coverage_layer", lang),
                "geometry": "polygon",
                "minZoom": 0,
                "visible": True,
                "style": catalog["grids"].style if "grids" in catalog else {},
                "credits": list(credits),
            }
        )
    provider = catalog.get(query.get("of") or "stations")
    if provider is not None and (layers is None or "providers" in layers):
        entry = page.catalog_layer(
            provider, lang, source={"url": DATA_PATH.format(layer=provider.id)}, visible=True
        )
        entry.update(
            {
                "id": "providers",
                "title": f"{text.ui('providers', lang)}: {entry['title']}",
                "kindsShown": list(query.get("kind") or []) or None,
                "catalogId": provider.id,
            }
        )
        entries.append(entry)
    api_query = {**query, "format": "geojson"}
    config = {
        "page": "coverage",
        "layers": entries,
        "urls": {"coverage": "/api/coverage?" + _query_string(api_query)},
        "query": dict(query),
    }
    return page.shell(spec, config, title=text.ui("title_coverage", lang))

"""The battle map (作战图): where every team is, and the nearest ones to an incident.

:func:`battle_map` takes the layer catalog and, for a standalone file, the layers' data;
never a database connection. It draws (through the page scripts, ``static/geomap/map/``):

* district and township outlines (communities on demand), labelled in the page language;
* grids coloured by population, by station coverage (from ``/api/coverage``) or by the
  number of teams whose home grid it is; each grid's tooltip gives its teams;
* stations and red culture sites by kind, with the catalog's icons and colours;
* teams by kind and status, clustered;
* the 15-minute red culture circles (the ones built so far);
* the streets, real and synthetic told apart (off by default), with the credit their
  sources call for (OpenStreetMap) in the attribution control while they are drawn;
* a layer control, a legend from the catalog, a scale bar, fullscreen, a search by name
  or code, and the nearest-teams panel (a click, coordinates or a grid code →
  ``/api/teams/nearest?by=drive&route=1``), unless embedded.

Each layer is drawn only from its catalog ``min_zoom`` on, and its data is loaded once:
from ``/map/data/<layer>`` (compact, see :mod:`geomap.maps.compact`; generalised for the
view's zoom below the layer's ``detail_zoom``) or, in a standalone file, from JSON inlined
in the page. A layer too big for one document is drawn from vector tiles instead
(``/tiles/<layer>/{z}/{x}/{y}.pbf``, ``vectortiles.js``).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Any

import folium

from geomap.layers import Layer
from geomap.maps import compact, page, text
from geomap.maps.entries import catalog_layer

#: The layers of the battle map, in drawing order (bottom first); all from the catalog.
BATTLE_LAYERS = (
    "districts", "townships", "communities", "grids", "streets", "circles", "stations", "sites",
    "teams", "cases",
)  # fmt: skip
#: Layers the page draws itself from the live API rather than from ``/map/data``.
LIVE_LAYERS = ("cases",)

#: Service paths the page calls (relative to ``PageSpec.service_url``).
DATA_PATH = "/map/data/{layer}"
NEAREST_PATH = "/api/teams/nearest"
#: The live screen (commanders): sign-in, the event stream, the cases and their steps.
SESSION_PATH = "/api/session"
EVENTS_PATH = "/api/events"
CASES_PATH = "/api/cases"
#: The open cases the live screen lists at start (the page's ``live.openCases``).
OPEN_CASES_QUERY = "?open=true&limit=1000"
#: Minutes after which a team's last position is marked stale (the setting's default).
STALE_MINUTES = 30.0
#: The coverage behind the grids' "coverage" colouring: stations within 1 km.
GRID_COVERAGE_PATH = "/api/coverage?of=stations&within_m=1000&format=json"

#: Element id of a layer's inlined data in a standalone page.
INLINE_ID = "geomap-data-{layer}"


def battle_layers(catalog: Mapping[str, Layer]) -> list[str]:
    """The layer names the battle map can show (the catalog's, in drawing order).

    Parameters
    ----------
    catalog : mapping
        Layers by id.

    Returns
    -------
    list of str
    """
    ordered = [name for name in BATTLE_LAYERS if name in catalog]
    return ordered + [name for name in catalog if name not in ordered]


def battle_map(
    catalog: Mapping[str, Layer],
    spec: page.PageSpec,
    *,
    data: Mapping[str, Mapping[str, Any]] | None = None,
    layers: Sequence[str] | None = None,
    tiled: Mapping[str, Mapping[str, Any]] | None = None,
    stale_minutes: float = STALE_MINUTES,
    routes: Container[str] | None = None,
    preload: bool = True,
) -> folium.Map:
    """The battle map as a folium map (render it once with :func:`page.page_html`).

    Parameters
    ----------
    catalog : mapping
        The layer catalog (:func:`geomap.layers.load_catalog`).
    spec : PageSpec
        Language, basemap, embedding, view, where the service is.
    data : mapping, optional
        ``geomap-compact/1`` documents by layer id, inlined in the page (a standalone
        file). None: the page loads each layer from the service.
    layers : sequence of str, optional
        Only these layers, all shown (an embed's ``?layers=``); default: every layer of
        the catalog, shown as the catalog says.
    tiled : mapping, optional
        Layers drawn from vector tiles instead of one document (served pages: the ones
        above the ``map_tiles_above`` setting), each with its
        :func:`geomap.analysis.features.tiled_summary`.
    stale_minutes : float
        A team position older than this is marked stale (setting ``stale_minutes``).
    routes : container of str, optional
        The service's URL rules (``/api/session``...): the page calls only those there
        are. None: all of them.
    preload : bool
        Let the browser fetch the first view's data with the page (false when the caller
        must sign in first: a preloaded refusal would be used after the sign-in).

    Returns
    -------
    folium.Map
    """
    names = list(layers) if layers is not None else battle_layers(catalog)
    inline: dict[str, str] | None = None if data is None else {}
    zoom = page.detail_zoom(spec.view)
    entries = []
    # Served pages are live (sign-in, events, the case layer and queue); a file is not.
    live = data is None and spec.service_url is not None
    # The full page always has the case layer and queue; an embed only when its token (or
    # ?layers=) names the cases.
    if spec.embed or layers is not None:
        show_cases = live and layers is not None and "cases" in layers
    else:
        show_cases = live
    for name in battle_layers(catalog):
        if name not in names or name in LIVE_LAYERS:
            continue
        if data is not None and name not in data:
            continue  # not exported: the standalone file goes without it
        if inline is not None:
            element_id = INLINE_ID.format(layer=name)
            inline[element_id] = compact.dumps(dict(data[name]))
            source = {"inline": element_id}
        else:
            source = {"url": DATA_PATH.format(layer=name)}
        entries.append(
            catalog_layer(
                catalog[name],
                spec.lang,
                source=source,
                visible=_visible(name, spec, layers),
                zoom=zoom,
                tiled=(tiled or {}).get(name) if inline is None else None,
            )
        )
    config = {
        "page": "battle",
        "layers": entries,
        "urls": {"nearest": NEAREST_PATH, "gridCoverage": GRID_COVERAGE_PATH},
        "nearest": {"k": 5, "by": "drive", "route": True, "onClick": not spec.embed},
        "staleMinutes": stale_minutes,
        "preload": preload,
    }
    if live:
        def there(path: str) -> str | None:
            return path if routes is None or path in routes else None

        cases = there(CASES_PATH) if show_cases else None
        config["live"] = {
            "session": there(SESSION_PATH),
            "events": there(EVENTS_PATH),
            "cases": cases,
            # The one URL of the open cases: the page asks it, and preloads it below.
            "openCases": cases and cases + OPEN_CASES_QUERY,
            "teamsGeojson": "/api/layers/teams",
        }
        if preload:
            # Who is signed in and the open cases: fetched with the page, like the layers
            # (the live screen asks for them before it draws anything).
            config["live"]["preload"] = [
                path for path in (
                    there(SESSION_PATH) if not spec.embed else None,
                    config["live"]["openCases"],
                ) if path
            ]  # fmt: skip
    return page.shell(spec, config, title=text.ui("title_battle", spec.lang), inline_data=inline)


def _visible(name: str, spec: page.PageSpec, layers: Sequence[str] | None) -> bool | None:
    """Shown at start: every layer asked for; else the catalog's choice, except that with
    no basemap the streets are drawn (a route then has streets under it)."""
    if layers is not None:
        return True
    if name == "streets" and spec.basemap.id == "none" and not spec.embed:
        return True
    return None

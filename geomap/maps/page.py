"""The page shell every map shares: a Folium map, its basemap, and our browser module.

Folium builds the shell: the Leaflet map with its scale bar, the fullscreen button, the
basemap tiles and the asset links (made local by :mod:`geomap.maps.assets`). One element
of ours, :class:`MapModule`, adds our browser module (with the Leaflet.markercluster and
leaflet-search plugins it uses), ``battlemap.css`` and the page's configuration; the
module draws every layer in the browser, from data it loads once per layer (or finds
inlined in a standalone file). Nothing here reads a database: builders get their data
and styles as arguments.

The module is split by job into classic scripts (no ES modules, no bundler), Leaflet
plugin style: ``map/core.js`` makes the ``window.GeomapMap`` namespace, each later file
adds to it or ``include``-s methods into its page class, and ``battlemap.js`` (last)
defines ``GeomapMap.start``. :data:`MODULE_SCRIPTS` lists them once, in load order, and
that one list is used three ways: linked one ``<script src>`` each on served pages,
hashed together (with the CSS and ``vectortiles.js``) into their ``?v=`` version
(:func:`module_version`), and inlined in that order into one ``<script>`` of a
standalone page (:func:`module_script`). A new file is added to the list, nowhere else.

Two renderings of the same map (:func:`page_html`):

``served``
    Assets and data come from the service (``/static/...``, ``/map/data/<layer>``, the
    analysis APIs); the page itself is small.
``standalone``
    One file: every asset inlined by :func:`geomap.maps.assets.to_standalone_html`, our
    module and the layers' data inlined as well; it opens from disk with no network.

Text that must not pass through Jinja (branca renders every element's output as a
template a second time: ``{{`` or ``{%`` inside JS or data would break it) is put in
after rendering, in place of comment placeholders.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from html import escape as html_escape
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import folium
from branca.element import MacroElement
from folium import plugins
from folium.elements import JSCSSMixin
from jinja2 import Template

from geomap.maps import assets, text

# The basemaps and the layer entries have their own modules; the faces that build pages
# (maps.views, maps.cli) reach them through this one, the page's front door.
from geomap.maps.basemaps import Basemap

Rendering = Literal["served", "standalone"]

#: Our own browser files (served from ``/static/geomap/``).
MODULE_DIR = Path(__file__).resolve().parent.parent / "static" / "geomap"
#: Our browser module, in load order (paths under MODULE_DIR): see the module docstring.
MODULE_SCRIPTS = (
    "map/core.js",  # namespace, coordinates, helpers, compact decoding
    "map/pathset.js",  # the Leaflet layers it draws with: ZoomGate, PathSet
    "map/page.js",  # the page class: start-up, loading, stats
    "map/layers.js",  # the catalog's layers: styles, popups, paths, labels, markers
    "map/planners.js",  # grids' colouring, circles, coverage
    "map/panels.js",  # controls, status, layer control, search
    "map/legend.js",  # the legend
    "map/nearest.js",  # the nearest-teams panel
    "map/live.js",  # the live battle map: session, stream, teams
    "map/cases.js",  # the live battle map: cases, queue, dispatch
    "battlemap.js",  # GeomapMap.start and the page's API (window.geomap)
)
MODULE_CSS = MODULE_DIR / "battlemap.css"
#: Layers drawn from vector tiles (served pages that have one): see vectortiles.js.
TILES_JS = MODULE_DIR / "vectortiles.js"
#: Leaflet.VectorGrid, under the URL :data:`geomap.maps.assets.CDN_ASSETS` maps locally.
VECTORGRID_JS = (
    "https://cdn.jsdelivr.net/npm/leaflet.vectorgrid@1.3.0/dist/Leaflet.VectorGrid.bundled.min.js"
)

#: Where the app serves ``geomap/static`` (Flask's package static folder).
DEFAULT_STATIC_URL = "/static"

#: The farthest a map zooms out (about 7 degrees across at 1280 pixels: a province).
MIN_ZOOM = 7

#: Nanchang's urban core: the view when nothing better is known (lat, lon).
DEFAULT_CENTER = (28.68, 115.89)

_CDN = "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0"
_SEARCH = "https://cdn.jsdelivr.net/npm/leaflet-search@2.9.7/dist"
# folium's own URLs for the plugins: assets.CDN_ASSETS maps them to the vendored copies.
_PLUGIN_JS = [
    ("leaflet.markercluster", f"{_CDN}/leaflet.markercluster.js"),
    ("leaflet-search", f"{_SEARCH}/leaflet-search.min.js"),
]
_PLUGIN_CSS = [
    ("markercluster_css", f"{_CDN}/MarkerCluster.css"),
    ("markercluster_default_css", f"{_CDN}/MarkerCluster.Default.css"),
    ("leaflet-search_css", f"{_SEARCH}/leaflet-search.min.css"),
]
# What the maps keep of folium.Map's own assets: Leaflet and Font Awesome (the marker
# glyphs). jQuery, Bootstrap, Glyphicons and awesome-markers (~700 kB) serve nothing here.
_KEEP_MAP_ASSETS = {"leaflet", "leaflet_css", "awesome_markers_font_css"}


@functools.cache
def module_version() -> str:
    """The ``?v=`` of our own files: a hash of the module's scripts, its CSS and tiles.

    Browsers keep ``/static`` files, and an upgrade must not run new pages with an old
    module: any change to any of them changes every link.

    Returns
    -------
    str
        Twelve hex digits.
    """
    digest = hashlib.sha256()
    for path in (*(MODULE_DIR / name for name in MODULE_SCRIPTS), MODULE_CSS, TILES_JS):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def module_links(static_url: str) -> list[tuple[str, str]]:
    """The ``(name, URL)`` of each of :data:`MODULE_SCRIPTS`, in order, for folium.

    Parameters
    ----------
    static_url : str
        Where ``geomap/static`` is served.

    Returns
    -------
    list of (str, str)
        ``("geomap:<file>", "<static_url>/geomap/<file>?v=<version>")``: folium keeps one
        link per name.
    """
    base = static_url.rstrip("/") + "/geomap"
    version = module_version()
    return [(f"geomap:{name}", f"{base}/{name}?v={version}") for name in MODULE_SCRIPTS]


def module_script() -> str:
    """The module's scripts joined in order, as one standalone page's ``<script>`` holds them.

    Each file is a classic script wrapped in its own function, so joining them runs them
    as the separate ``<script>`` elements of a served page would. ``</script`` in the
    code is written ``<\\/script``, which JS reads the same, so it cannot end the element.

    Returns
    -------
    str
    """
    code = "\n".join((MODULE_DIR / name).read_text("utf-8") for name in MODULE_SCRIPTS)
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.I)


def _placeholder(name: str) -> str:
    return f"<!--geomap:{name}-->"


_SLOT = re.compile(r"<!--geomap:([\w:-]+)-->")


def script_safe(json_text: str) -> str:
    """JSON text made safe inside a ``<script>`` element.

    ``<`` occurs in JSON only inside strings, where ``\\u003c`` means the same: so no
    ``</script>`` can end the element early and no ``<!--`` can change how the HTML
    parser reads it, whatever a feature's name holds.

    Parameters
    ----------
    json_text : str

    Returns
    -------
    str
    """
    return json_text.replace("<", "\\u003c")


def json_for_script(value: Any) -> str:
    """JSON text of ``value``, safe inside a ``<script>`` element (:func:`script_safe`).

    Parameters
    ----------
    value : any
        JSON-serialisable data.

    Returns
    -------
    str
    """
    return script_safe(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


class MapModule(JSCSSMixin, MacroElement):
    """Our browser module (:data:`MODULE_SCRIPTS`) and its configuration on a folium map.

    One per page.

    Parameters
    ----------
    config : dict
        The page configuration (see ``battlemap.js``: ``GeomapMap.start``).
    inline_data : dict, optional
        JSON text of the layers' data by element id, for a standalone page.
    static_url : str
        Where ``geomap/static`` is served (served pages).
    """

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <title>{{ this.title }}</title>
            {% for href in this.preload -%}
            <link rel="preload" as="fetch" crossorigin="anonymous" href="{{ href }}">
            {% endfor %}
            {% if this.standalone %}<style data-asset="geomap">{{ this.css_slot }}</style>
            <script data-asset="geomap">{{ this.js_slot }}</script>{% endif %}
        {% endmacro %}
        {% macro html(this, kwargs) %}
            <script type="application/json" id="geomap-config">{{ this.config_slot }}</script>
            {% for slot in this.data_slots %}{{ slot }}{% endfor %}
        {% endmacro %}
        {% macro script(this, kwargs) %}
            GeomapMap.start({{ this._parent.get_name() }},
                JSON.parse(document.getElementById("geomap-config").textContent));
        {% endmacro %}
        """
    )

    def __init__(
        self,
        config: dict[str, Any],
        *,
        title: str,
        inline_data: dict[str, str] | None = None,
        static_url: str = DEFAULT_STATIC_URL,
    ) -> None:
        super().__init__()
        self._name = "GeomapModule"
        self.config = config
        self.title = title
        self.inline_data = dict(inline_data or {})
        self.standalone = inline_data is not None
        self.static_url = static_url
        # The data of the layers shown at start: the browser fetches it while it is still
        # loading the scripts (the module's fetch() then takes the preloaded answer).
        # Not the layers the first view does not draw (below their min_zoom): the page
        # loads them when the map is zoomed to them.
        self.preload = [
            html_escape(layer["source"]["href"])
            for layer in (first_view_layers(config) if config.get("preload", True) else [])
            if layer["source"].get("href")
        ] + [html_escape(href) for href in (config.get("live") or {}).get("preloadHrefs", [])]
        self.default_js = list(_PLUGIN_JS)
        self.default_css = list(_PLUGIN_CSS)
        if not self.standalone:
            version = module_version()
            base = static_url.rstrip("/") + "/geomap"
            self.default_js.extend(module_links(static_url))
            self.default_css.append(("geomap_css", f"{base}/battlemap.css?v={version}"))
            if any((layer.get("source") or {}).get("tiles") for layer in config.get("layers", [])):
                self.default_js.append(("leaflet.vectorgrid", VECTORGRID_JS))
                self.default_js.append(("geomap_tiles_js", f"{base}/vectortiles.js?v={version}"))
        self.css_slot = _placeholder("css")
        self.js_slot = _placeholder("js")
        self.config_slot = _placeholder("config")
        self.data_slots = [
            f'<script type="application/json" id="{element_id}">'
            f"{_placeholder('data:' + element_id)}</script>"
            for element_id in self.inline_data
        ]

    def fill(self, html: str) -> str:
        """Put the configuration, the data and (standalone) our files into a rendered page.

        Parameters
        ----------
        html : str
            The page as rendered by folium.

        Returns
        -------
        str
        """
        parts = {"config": json_for_script(self.config)}
        for element_id, payload in self.inline_data.items():
            parts["data:" + element_id] = script_safe(payload)
        if self.standalone:
            parts["js"] = module_script()
            parts["css"] = MODULE_CSS.read_text("utf-8")
        found = [m[1] for m in _SLOT.finditer(html)]
        if sorted(found) != sorted(parts):
            raise RuntimeError(f"page slots {sorted(found)} do not match {sorted(parts)}")
        # One pass: what is put in is never searched for slots again.
        return _SLOT.sub(lambda m: parts[m[1]], html)


@dataclass
class PageSpec:
    """What a map page needs besides its layers: language, basemap, chrome, view.

    Attributes
    ----------
    lang : str
        ``zh`` or ``en``.
    basemap : Basemap
        From :func:`basemap`.
    embed : bool
        No chrome (no legend, panels, layer control, search, fullscreen).
    view : dict
        ``{"bounds": [[south, west], [north, east]]}`` (the map fills the screen with
        them) and/or ``{"center": [lat, lon], "zoom": z}`` (wins when given).
    static_url : str
        Where ``geomap/static`` is served (served pages).
    service_url : str or None
        Prefix of the service's URLs (``""``: the page's own origin). None: no service
        (a standalone file); features that need one say so.
    token : str, optional
        The embed token the page was opened with (``?token=``): its data requests carry
        it too.
    """

    lang: str = "zh"
    basemap: Basemap = field(default_factory=lambda: Basemap("none"))
    embed: bool = False
    view: dict[str, Any] = field(default_factory=dict)
    static_url: str = DEFAULT_STATIC_URL
    service_url: str | None = ""
    token: str | None = None


def shell(
    spec: PageSpec, config: dict[str, Any], *, title: str,
    inline_data: dict[str, str] | None = None,
) -> folium.Map:  # fmt: skip
    """The folium map of a page: basemap, scale bar, fullscreen and :class:`MapModule`.

    Parameters
    ----------
    spec : PageSpec
        Language, basemap, chrome, view.
    config : dict
        The page-specific configuration (``page``, ``layers``...); the common keys
        (``lang``, ``strings``, ``embed``, ``basemap``, ``view``, ``service``) are added.
    title : str
        The page title.
    inline_data : dict, optional
        Layer data by element id (standalone pages); None for served pages.

    Returns
    -------
    folium.Map
        Render it with :func:`page_html`, once.
    """
    view = dict(spec.view)
    center = view.get("center")
    if center is None and view.get("bounds"):
        (south, west), (north, east) = view["bounds"]
        center = [(south + north) / 2, (west + east) / 2]
    standalone = inline_data is not None
    m = assets.make_map(
        location=center or list(DEFAULT_CENTER),
        zoom_start=int(view.get("zoom") or 11),
        mode="inline" if standalone else "served",
        static_url=spec.static_url.rstrip("/") + "/vendor",
        control_scale=True,
        zoom_control=True,
        # A city map needs no world view; fewer zoom levels also means less clustering
        # work (Leaflet.markercluster builds its tree for every level from minZoom up).
        min_zoom=MIN_ZOOM,
    )
    m.default_js = [(n, u) for n, u in m.default_js if n in _KEEP_MAP_ASSETS]
    m.default_css = [(n, u) for n, u in m.default_css if n in _KEEP_MAP_ASSETS]
    for tile in spec.basemap.tiles:
        folium.TileLayer(
            tiles=tile["url"],
            attr=tile["attr"],
            name=spec.basemap.id,
            subdomains=tile.get("subdomains", "abc"),
            max_zoom=assets.DEFAULT_MAX_ZOOM,
            max_native_zoom=tile.get("max_native_zoom", 18),
            control=False,
        ).add_to(m)
    m.options["max_zoom"] = assets.DEFAULT_MAX_ZOOM  # tiles must not lower it
    if not spec.embed:
        plugins.Fullscreen(
            position="topleft",
            title=text.ui("fullscreen", spec.lang),
            title_cancel=text.ui("fullscreen_exit", spec.lang),
        ).add_to(m)
    for layer in config.get("layers", []):
        source = layer.get("source") or {}
        if "url" in source and spec.service_url is not None:
            source["href"] = spec.service_url + with_token(source["url"], spec.token)
        if "tiles" in source and spec.service_url is not None:
            source["tilesHref"] = spec.service_url + with_token(source["tiles"], spec.token)
    live = config.get("live") or {}
    if live.get("preload") and spec.service_url is not None:
        live["preloadHrefs"] = [spec.service_url + with_token(path, spec.token)
                                for path in live["preload"]]  # fmt: skip
    full_config = {
        **config,
        "lang": spec.lang,
        "strings": text.strings(spec.lang),
        "embed": spec.embed,
        "basemap": spec.basemap.to_dict(),
        "view": view,
        "service": spec.service_url,
        "token": spec.token,
        "title": title,
    }
    MapModule(
        full_config, title=title, inline_data=inline_data, static_url=spec.static_url
    ).add_to(m)
    return m


def first_view_layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The layers a page loads for its first view: shown at start, with a data source, and
    not below their ``min_zoom`` at the page's zoom (the others load when zoomed to).

    Parameters
    ----------
    config : dict
        A page's configuration (:func:`shell`).

    Returns
    -------
    list of dict
        Their entries in ``config["layers"]``.
    """
    zoom = detail_zoom(config.get("view") or {})
    return [
        layer for layer in config.get("layers", [])
        if layer.get("visible") and (layer.get("source") or {}).get("url")
        and (zoom is None or layer.get("minZoom", 0) <= zoom)
    ]  # fmt: skip


def with_token(url: str, token: str | None) -> str:
    """``url`` with the page's embed token added to its query (unchanged without one)."""
    if not token:
        return url
    return url + ("&" if "?" in url else "?") + urlencode({"token": token})


#: The viewport a served page's first view is planned for (the layers' detail is chosen
#: for it before the browser says its size; a larger window loads finer detail after).
NOMINAL_VIEWPORT = (1280, 720)


def detail_zoom(view: dict[str, Any]) -> int | None:
    """The zoom a page opens at, as near as the server can tell: the layers' detail.

    Parameters
    ----------
    view : dict
        :attr:`PageSpec.view`: ``zoom`` (with ``center``) or ``bounds``.

    Returns
    -------
    int or None
        ``zoom`` when given; else the zoom at which ``bounds`` fill
        :data:`NOMINAL_VIEWPORT`, rounded as ``battlemap.js`` rounds it; None when the
        view says neither.
    """
    if view.get("zoom") is not None:
        return int(view["zoom"])
    bounds = view.get("bounds")
    if not bounds:
        return None
    (south, west), (north, east) = bounds

    def mercator_y(lat: float) -> float:
        lat = max(min(lat, 85.0), -85.0)
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    width = max(abs(east - west) / 360.0, 1e-9)
    height = max(abs(mercator_y(north) - mercator_y(south)) / (2 * math.pi), 1e-9)
    fit = math.log2(min(NOMINAL_VIEWPORT[0] / 256 / width, NOMINAL_VIEWPORT[1] / 256 / height))
    return max(MIN_ZOOM, min(assets.DEFAULT_MAX_ZOOM, round(fit)))


def _module_of(m: folium.Map) -> MapModule:
    for child in m._children.values():
        if isinstance(child, MapModule):
            return child
    raise ValueError("this map has no MapModule: build it with geomap.maps.page.shell")


def config_of(m: folium.Map) -> dict[str, Any]:
    """The page configuration of a map built by :func:`shell` (what ``battlemap.js`` reads).

    Parameters
    ----------
    m : folium.Map

    Returns
    -------
    dict
    """
    return _module_of(m).config


def page_html(m: folium.Map, rendering: Rendering = "served") -> str:
    """The page of a map built by :func:`shell`, rendered once.

    Parameters
    ----------
    m : folium.Map
        A fresh map (folium repeats scripts when one map is rendered twice).
    rendering : {"served", "standalone"}
        ``served``: assets linked from the app. ``standalone``: one self-contained file
        (the map must have been built with ``inline_data``).

    Returns
    -------
    str
        The HTML page.
    """
    module = _module_of(m)
    if rendering == "standalone":
        if not module.standalone:
            raise ValueError("a standalone page needs its data inlined (inline_data)")
        html = assets.to_standalone_html(m)
    else:
        html = assets.render_html(m, static_url=module.static_url.rstrip("/") + "/vendor")
    # The folium page's <html> carries no language: say which, for screen readers and
    # for the browser's font choice (Chinese glyphs).
    lang = "zh-CN" if module.config.get("lang") == "zh" else "en"
    html = html.replace("<html>", f'<html lang="{lang}">', 1)
    return module.fill(html)

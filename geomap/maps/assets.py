"""Browser assets of the maps, from local copies: no page may need the network.

Folium, branca and folium's plugins link Leaflet, jQuery, Bootstrap, Font Awesome and the
plugins from CDNs; at a command post with no network such a page stays blank. This module
is the one place that knows the local copy of each of those URLs (:data:`CDN_ASSETS`, files
in ``geomap/static/vendor/``, written by ``tools/vendor_assets.sh``), in two modes:

``served``
    The page links ``/static/vendor/...`` (Flask serves ``geomap/static`` at ``/static``):
    for the pages the web service answers. ``render_html(m)`` renders such a page.
``inline``
    One self-contained HTML file: every script and stylesheet inlined, every font and image
    a stylesheet references embedded as a ``data:`` URI. For ``geomap map battle --out
    battle.html``, carried to a command post: ``to_standalone_html(m)``.

A URL that has no local copy is refused (:class:`UnvendoredAssetError`) rather than left to
fail in the field: adding a plugin means vendoring its files and adding its URLs here.

Examples
--------
>>> m = make_map(location=[28.68, 115.89], zoom_start=12)
>>> html = render_html(m)                      # served by the app
>>> standalone = to_standalone_html(m)         # one file, no network
"""

from __future__ import annotations

import base64
import functools
import mimetypes
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import folium
from branca.element import CssLink, Element, Figure, JavascriptLink

from geomap.errors import GeomapError

# What a page loads has its own module; callers checking pages find it here too.
from geomap.maps.references import (
    CSS_IMPORT,
    CSS_URL,
    asset_references,
    is_remote,
    remote_assets,
)

Mode = Literal["served", "inline"]

#: The vendored files (``tools/vendor_assets.sh`` writes them; VERSIONS.md lists them).
VENDOR_DIR = Path(__file__).resolve().parent.parent / "static" / "vendor"

#: Where the app serves VENDOR_DIR: Flask's package static folder is ``geomap/static`` at
#: ``/static``. Behind a path prefix, pass ``url_for("static", filename="vendor")`` instead.
DEFAULT_STATIC_URL = "/static/vendor"

#: Map option maxZoom when the caller gives none. Leaflet takes a map's max zoom from its
#: tile layers; the battle map has none by default (no network for tiles), and then
#: MarkerCluster throws "Map has no maxZoom specified".
DEFAULT_MAX_ZOOM = 18

_JSDELIVR = "https://cdn.jsdelivr.net/npm"
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"

#: Every CDN URL that folium 0.20 (Map), branca and the plugins the maps use link, mapped to
#: the local copy (a path relative to VENDOR_DIR). Keys are exact URLs on purpose: when a
#: folium upgrade changes a URL, :func:`localize` refuses it and the unit tests say which,
#: instead of a page silently running a library version nobody tested.
CDN_ASSETS: dict[str, str] = {
    # folium.Map (folium/folium.py _default_js / _default_css)
    f"{_JSDELIVR}/leaflet@1.9.3/dist/leaflet.js": "leaflet/leaflet.js",
    f"{_JSDELIVR}/leaflet@1.9.3/dist/leaflet.css": "leaflet/leaflet.css",
    # the version vendored, under the URL a newer folium links
    f"{_JSDELIVR}/leaflet@1.9.4/dist/leaflet.js": "leaflet/leaflet.js",
    f"{_JSDELIVR}/leaflet@1.9.4/dist/leaflet.css": "leaflet/leaflet.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/jquery.min.js",
    f"{_JSDELIVR}/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js": (
        "bootstrap/bootstrap.bundle.min.js"
    ),
    f"{_JSDELIVR}/bootstrap@5.2.2/dist/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": (
        "glyphicons/glyphicons.css"
    ),
    f"{_JSDELIVR}/@fortawesome/fontawesome-free@6.2.0/css/all.min.css": (
        "fontawesome/css/all.min.css"
    ),
    f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js": (
        "leaflet.awesome-markers/leaflet.awesome-markers.js"
    ),
    f"{_CDNJS}/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css": (
        "leaflet.awesome-markers/leaflet.awesome-markers.css"
    ),
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/"
    "leaflet.awesome.rotate.min.css": "folium/leaflet.awesome.rotate.css",
    # folium.plugins.MarkerCluster
    f"{_CDNJS}/leaflet.markercluster/1.1.0/leaflet.markercluster.js": (
        "leaflet.markercluster/leaflet.markercluster.js"
    ),
    f"{_CDNJS}/leaflet.markercluster/1.1.0/MarkerCluster.css": (
        "leaflet.markercluster/MarkerCluster.css"
    ),
    f"{_CDNJS}/leaflet.markercluster/1.1.0/MarkerCluster.Default.css": (
        "leaflet.markercluster/MarkerCluster.Default.css"
    ),
    # folium.plugins.Fullscreen
    f"{_JSDELIVR}/leaflet.fullscreen@3.0.0/Control.FullScreen.min.js": (
        "leaflet.fullscreen/Control.FullScreen.js"
    ),
    f"{_JSDELIVR}/leaflet.fullscreen@3.0.0/Control.FullScreen.css": (
        "leaflet.fullscreen/Control.FullScreen.css"
    ),
    # folium.plugins.Search
    f"{_JSDELIVR}/leaflet-search@2.9.7/dist/leaflet-search.min.js": (
        "leaflet-search/dist/leaflet-search.min.js"
    ),
    f"{_JSDELIVR}/leaflet-search@2.9.7/dist/leaflet-search.min.css": (
        "leaflet-search/dist/leaflet-search.min.css"
    ),
    # Leaflet.VectorGrid (layers drawn from vector tiles; pbf and vector-tile bundled in)
    f"{_JSDELIVR}/leaflet.vectorgrid@1.3.0/dist/Leaflet.VectorGrid.bundled.min.js": (
        "leaflet.vectorgrid/Leaflet.VectorGrid.bundled.min.js"
    ),
}

_LEAFLET_JS = "leaflet/leaflet.js"
_LEAFLET_DEFAULT_ICONS = {
    "iconUrl": "leaflet/images/marker-icon.png",
    "iconRetinaUrl": "leaflet/images/marker-icon-2x.png",
    "shadowUrl": "leaflet/images/marker-shadow.png",
}

# Marks a link that localize(mode="inline") rewrote: to_standalone_html embeds its file.
# A file: URI, so that a page rendered in this mode but not inlined still opens here.
_INLINE_PREFIX = VENDOR_DIR.as_uri() + "/"


class UnvendoredAssetError(GeomapError):
    """A page links a script, stylesheet, font or image that has no local copy."""

    code = "unvendored_asset"


# ---------------------------------------------------------------------------------------
# Which local file a URL stands for


def vendor_path(url: str, *, static_url: str = DEFAULT_STATIC_URL) -> str | None:
    """The vendored file (relative to :data:`VENDOR_DIR`) that ``url`` stands for.

    Parameters
    ----------
    url : str
        A CDN URL from :data:`CDN_ASSETS`, a served URL under ``static_url`` or
        ``/static/vendor``, or a ``file:`` URI into :data:`VENDOR_DIR`.
    static_url : str
        The URL prefix VENDOR_DIR is served at.

    Returns
    -------
    str or None
        The relative path (e.g. ``"leaflet/leaflet.js"``), or None when ``url`` is none of
        those (its file is not checked for existence here).
    """
    if url in CDN_ASSETS:
        return CDN_ASSETS[url]
    for prefix in (_INLINE_PREFIX, static_url.rstrip("/") + "/", DEFAULT_STATIC_URL + "/"):
        if url.startswith(prefix):
            relative = unquote(urlsplit(url[len(prefix) :]).path)
            return _safe_relative(relative)
    return None


def _safe_relative(relative: str) -> str | None:
    # "css/../webfonts/x" is fine; a path that climbs out of the vendor folder is not.
    if not relative or relative.startswith("/"):
        return None
    normal = posixpath.normpath(relative)
    if normal == ".." or normal.startswith("../") or normal == ".":
        return None
    return normal


def _local_url(url: str, mode: Mode, static_url: str, owner: str) -> str:
    relative = vendor_path(url, static_url=static_url)
    if relative is None:
        if not is_remote(url):
            return url  # the app's own relative asset (e.g. /static/js/battle.js)
        raise UnvendoredAssetError(
            f"{owner} links {url}, which has no local copy: vendor it "
            "(tools/vendor_assets.sh) and map its URL in geomap/maps/assets.py CDN_ASSETS"
        )
    if not (VENDOR_DIR / relative).is_file():
        raise UnvendoredAssetError(
            f"{owner} needs {relative}, missing from {VENDOR_DIR}: run tools/vendor_assets.sh"
        )
    if mode == "inline":
        return _INLINE_PREFIX + relative
    return static_url.rstrip("/") + "/" + relative


# ---------------------------------------------------------------------------------------
# Making maps use the local copies


def make_map(
    location: tuple[float, float] | list[float] | None = None,
    *,
    zoom_start: int = 12,
    tiles: str | None = None,
    max_zoom: int = DEFAULT_MAX_ZOOM,
    mode: Mode = "served",
    static_url: str = DEFAULT_STATIC_URL,
    **kwargs: Any,
) -> folium.Map:
    """A :class:`folium.Map` that needs no network: no tiles by default, local assets.

    Parameters
    ----------
    location : (lat, lon), optional
        Map centre.
    zoom_start : int
        Initial zoom.
    tiles : str, optional
        A basemap (folium name or URL template). None by default: tiles come from the
        network, which a command post does not have.
    max_zoom : int
        The map's maxZoom (set on the map itself, not only on a tile layer, so that
        MarkerCluster works without tiles).
    mode, static_url
        As :func:`localize`; call :func:`localize` again after adding plugins (the render
        helpers :func:`render_html` and :func:`to_standalone_html` do).
    **kwargs
        Passed on to :class:`folium.Map`.

    Returns
    -------
    folium.Map
    """
    m = folium.Map(
        location=location, zoom_start=zoom_start, tiles=tiles, max_zoom=max_zoom, **kwargs
    )
    # folium hands max_zoom only to the tile layer it creates: set the map's own option.
    m.options["max_zoom"] = max_zoom
    return localize(m, mode=mode, static_url=static_url)


def localize(
    m: folium.Map | Figure, mode: Mode = "served", *, static_url: str = DEFAULT_STATIC_URL
) -> folium.Map | Figure:
    """Point every script and stylesheet of the map's page at the local copies.

    Walks the whole page (the map's root figure and all its children): every element's
    ``default_js``/``default_css`` (folium's Map, MarkerCluster, Fullscreen, Search...) and
    every :class:`~branca.element.JavascriptLink`/:class:`~branca.element.CssLink` already
    placed. Call it after the last plugin is added (the render helpers call it). A map
    without tile layers and without ``max_zoom`` gets :data:`DEFAULT_MAX_ZOOM`.

    Parameters
    ----------
    m : folium.Map or branca.element.Figure
        The map (or its figure); changed in place.
    mode : {"served", "inline"}
        ``served``: links under ``static_url``. ``inline``: links to the vendored files
        as ``file:`` URIs, which :func:`inline_assets` embeds.
    static_url : str
        URL prefix at which the app serves ``geomap/static/vendor``.

    Returns
    -------
    folium.Map or Figure
        ``m`` itself.

    Raises
    ------
    UnvendoredAssetError
        When an element links a remote URL that has no local copy (e.g. a plugin not
        vendored yet); the message names the element and the URL.
    """
    if mode not in ("served", "inline"):
        raise ValueError(f"mode must be 'served' or 'inline', not {mode!r}")
    root = m.get_root()
    for element in _walk(root):
        owner = type(element).__name__
        for attribute in ("default_js", "default_css"):
            links = getattr(element, attribute, None)
            if links:
                # A new list on the instance: folium's class-level lists are shared by
                # every map of the process and must keep their CDN URLs.
                setattr(
                    element,
                    attribute,
                    [(name, _local_url(url, mode, static_url, owner)) for name, url in links],
                )
        if isinstance(element, JavascriptLink | CssLink):
            element.url = _local_url(element.url, mode, static_url, owner)
        if isinstance(element, folium.Map):
            _ensure_max_zoom(element)
    return m


def _walk(element: Element) -> Iterator[Element]:
    yield element
    # A Figure keeps header/html/script as attributes besides its children.
    if isinstance(element, Figure):
        for part in (element.header, element.html, element.script):
            yield from _walk(part)
    for child in list(element._children.values()):
        yield from _walk(child)


def _ensure_max_zoom(m: folium.Map) -> None:
    has_tiles = any(isinstance(c, folium.TileLayer) for c in m._children.values())
    if not has_tiles and "max_zoom" not in m.options:
        m.options["max_zoom"] = DEFAULT_MAX_ZOOM


def render_html(
    m: folium.Map, mode: Mode = "served", *, static_url: str = DEFAULT_STATIC_URL
) -> str:
    """The map's page as HTML with local assets (served mode: what a Flask view returns).

    Parameters
    ----------
    m : folium.Map
        The map; localized in place first.
    mode, static_url
        As :func:`localize`. For one self-contained file use :func:`to_standalone_html`.

    Returns
    -------
    str
        The page.

    Raises
    ------
    UnvendoredAssetError
        When a remote script, stylesheet or CSS ``url()`` is left in the page, e.g. one an
        element adds only while rendering (branca's colormap links d3 that way).
    """
    localize(m, mode, static_url=static_url)
    html = m.get_root().render()
    _refuse_remote(html)
    return html


def to_standalone_html(m: folium.Map) -> str:
    """The map's page as one file that opens with no network and no server.

    Every script and stylesheet is inlined and every font and image a stylesheet
    references is a ``data:`` URI; Leaflet's default marker images are embedded too.

    Parameters
    ----------
    m : folium.Map
        The map; localized in place first (``mode="inline"``).

    Returns
    -------
    str
        The page (about 1.5 MB plus the map's own data).

    Raises
    ------
    UnvendoredAssetError
        When any asset has no local copy, or a reference is left that is not embedded.
    """
    localize(m, "inline")
    html = inline_assets(m.get_root().render())
    left = asset_references(html)
    if left:
        raise UnvendoredAssetError(f"the standalone page still references: {', '.join(left)}")
    return html


# ---------------------------------------------------------------------------------------
# Inlining


_SCRIPT_TAG = re.compile(
    r"<script\b(?P<attrs>[^>]*?)\bsrc\s*=\s*(?P<q>[\"']?)(?P<url>[^\"'\s>]+)(?P=q)[^>]*>"
    r"\s*</script\s*>",
    re.IGNORECASE,
)
_LINK_TAG = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"\bhref\s*=\s*(?P<q>[\"']?)(?P<url>[^\"'\s>]+)(?P=q)", re.IGNORECASE)
_STYLESHEET = re.compile(r"\brel\s*=\s*[\"']?stylesheet\b", re.IGNORECASE)

_MIME_TYPES = {
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".gif": "image/gif",
    ".css": "text/css",
}


def inline_assets(html: str, *, static_url: str = DEFAULT_STATIC_URL) -> str:
    """Turn a rendered page into a self-contained one.

    Each ``<script src>`` and stylesheet ``<link>`` that stands for a vendored file (a CDN
    URL of :data:`CDN_ASSETS`, a served ``/static/vendor`` URL or an inline-mode ``file:``
    URI) is replaced by the file's content; inside stylesheets, each ``url()`` becomes a
    ``data:`` URI. Right after Leaflet, a small script embeds Leaflet's default marker
    images (Leaflet finds them through the path of leaflet.css, which an inlined page has
    not got).

    Parameters
    ----------
    html : str
        A rendered folium page (any mode, even with folium's CDN links).
    static_url : str
        The prefix served URLs use.

    Returns
    -------
    str
        The page.

    Raises
    ------
    UnvendoredAssetError
        When a script or stylesheet link is not a vendored file.
    """

    def script(match: re.Match[str]) -> str:
        relative = _vendored(match["url"], static_url)
        code = (VENDOR_DIR / relative).read_text(encoding="utf-8")
        # "</script" inside the code would end the element early; "<\/" means the same in
        # JS strings and regular expressions.
        code = re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)
        tag = f'<script data-asset="{relative}">\n{code}\n</script>'
        if relative == _LEAFLET_JS:
            tag += "\n" + _default_icon_script()
        return tag

    def link(match: re.Match[str]) -> str:
        tag = match[0]
        href = _HREF.search(tag)
        if href is None or not _STYLESHEET.search(tag):
            return tag
        relative = _vendored(href["url"], static_url)
        css = _inline_css(relative)
        return f'<style data-asset="{relative}">\n{css}\n</style>'

    html = _SCRIPT_TAG.sub(script, html)
    return _LINK_TAG.sub(link, html)


def _vendored(url: str, static_url: str) -> str:
    relative = vendor_path(url, static_url=static_url)
    if relative is None or not (VENDOR_DIR / relative).is_file():
        raise UnvendoredAssetError(f"cannot inline {url}: it is not a vendored file")
    return relative


@functools.lru_cache(maxsize=64)
def _inline_css(relative: str) -> str:
    """A vendored stylesheet with every url() embedded (cached: the files do not change)."""
    path = VENDOR_DIR / relative
    base = PurePosixPath(relative).parent

    def embed(reference: str) -> str:
        if not reference or reference.startswith(("data:", "#")):
            return reference  # already embedded, or an SVG/VML fragment reference
        if is_remote(reference):
            raise UnvendoredAssetError(f"{relative} references {reference}")
        # "font.eot?#iefix", "font.svg#id": the file is the part before ? and #.
        target = _safe_relative(str(base / urlsplit(reference).path))
        if target is None or not (VENDOR_DIR / target).is_file():
            raise UnvendoredAssetError(f"{relative} references {reference}, not vendored")
        return _data_uri(target)

    def url(match: re.Match[str]) -> str:
        reference = next(v for v in (match["dq"], match["sq"], match["bare"]) if v is not None)
        embedded = embed(reference)
        return match[0] if embedded == reference else f'url("{embedded}")'

    css = path.read_text(encoding="utf-8")
    if CSS_IMPORT.search(css):
        raise UnvendoredAssetError(f"{relative} uses @import, which inlining does not follow")
    css = CSS_URL.sub(url, css)
    return re.sub(r"</(style)", r"<\\/\1", css, flags=re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _data_uri(relative: str) -> str:
    path = VENDOR_DIR / relative
    mime = _MIME_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{mime or 'application/octet-stream'};base64,{payload}"


def _default_icon_script() -> str:
    # Leaflet's Icon.Default finds its images from leaflet.css's own URL; inlined, that
    # URL is gone and markers would request "marker-icon.png" beside the HTML file.
    # imagePath "" + full data: URIs bypasses the detection.
    options = ", ".join(
        f'{key}: "{_data_uri(path)}"' for key, path in _LEAFLET_DEFAULT_ICONS.items()
    )
    return (
        '<script data-asset="leaflet-default-icons">\n'
        "L.Icon.Default.imagePath = '';\n"
        f"L.Icon.Default.mergeOptions({{{options}}});\n"
        "</script>"
    )


# ---------------------------------------------------------------------------------------
# Checking a page


def _refuse_remote(html: str) -> None:
    remote = remote_assets(html)
    if remote:
        raise UnvendoredAssetError(
            "the page links remote assets with no local copy: "
            + ", ".join(sorted(set(remote)))
            + " (vendor them and map them in geomap/maps/assets.py CDN_ASSETS)"
        )

"""The maps need no network: local assets (geomap.maps.assets), proven in headless Chromium.

The demo map is built here from SYNTHETIC data (12 rectangular grid cells, 500 random
points around Nanchang, fixed seed): it is not the Nanchang dataset and needs no database.
It uses everything the battle map uses: GeoJSON polygons, clustered awesome-marker icons
(Font Awesome and Glyphicons), a default Leaflet marker, search, fullscreen and the layer
control, on a map without tiles.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import folium
import pytest
from folium import plugins

from geomap.maps import assets, references
from tests.browser import (
    ARTIFACTS_DIR,
    launch_browser,
    open_page,
    requires_chromium,
    serve_app,
)

CENTER = (28.68, 115.89)  # Nanchang
GRID_ROWS, GRID_COLS = 3, 4
N_POLYGONS = GRID_ROWS * GRID_COLS
N_POINTS = 500
CELL_DEG = 0.02

# Anything that would load from the network: src=/href= attributes and CSS url()/@import
# with an http(s) or scheme-relative URL. Deliberately cruder than references.remote_assets.
_REMOTE_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
_REMOTE_CSS = re.compile(r"""(?:url\(\s*["']?\s*|@import\s+["'])(?:https?:)?//""", re.IGNORECASE)


# ---------------------------------------------------------------------------------------
# The synthetic demo map


def synthetic_grid() -> dict[str, Any]:
    """GRID_ROWS x GRID_COLS rectangles around CENTER (synthetic test data)."""
    south = CENTER[0] - GRID_ROWS * CELL_DEG / 2
    west = CENTER[1] - GRID_COLS * CELL_DEG / 2
    features = []
    for row in range(GRID_ROWS):
        for col in range(GRID_COLS):
            s, w = south + row * CELL_DEG, west + col * CELL_DEG
            n, e = s + CELL_DEG * 0.95, w + CELL_DEG * 0.95
            number = row * GRID_COLS + col + 1
            features.append(
                {
                    "type": "Feature",
                    "properties": {"name": f"grid-{number:02d}", "source": "synthetic"},
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}


def synthetic_points(n: int = N_POINTS, seed: int = 20240501) -> list[tuple[float, float]]:
    """``n`` random points inside the grid's extent (synthetic test data)."""
    rng = random.Random(seed)
    half_lat, half_lon = GRID_ROWS * CELL_DEG / 2, GRID_COLS * CELL_DEG / 2
    return [
        (
            CENTER[0] + rng.uniform(-half_lat, half_lat) * 0.95,
            CENTER[1] + rng.uniform(-half_lon, half_lon) * 0.95,
        )
        for _ in range(n)
    ]


def build_demo_map(*, local: bool = True) -> folium.Map:
    """A fresh demo map (folium appends duplicate calls when one map is rendered twice).

    ``local=False`` builds it with plain folium: every asset from a CDN.
    """
    if local:
        m = assets.make_map(location=CENTER, zoom_start=13)
    else:
        m = folium.Map(location=CENTER, zoom_start=13, tiles=None)
    grid = folium.GeoJson(
        synthetic_grid(),
        name="grid cells (synthetic)",
        style_function=lambda _: {"color": "#b22222", "weight": 2, "fillOpacity": 0.15},
        tooltip=folium.GeoJsonTooltip(fields=["name"]),
    ).add_to(m)
    cluster = plugins.MarkerCluster(name="teams (synthetic)").add_to(m)
    for i, (lat, lon) in enumerate(synthetic_points()):
        if i % 2:
            icon = folium.Icon(color="red", icon="fire-extinguisher", prefix="fa", angle=i % 360)
        else:
            icon = folium.Icon(color="blue", icon="flag")  # glyphicon, folium's default prefix
        folium.Marker((lat, lon), tooltip=f"team {i:03d} (synthetic)", icon=icon).add_to(cluster)
    # Default Leaflet icon: its images are found through leaflet.css's URL (or embedded).
    folium.Marker(CENTER, tooltip="command post (synthetic)").add_to(m)
    plugins.Search(grid, search_label="name", placeholder="grid").add_to(m)
    plugins.Fullscreen().add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    south = CENTER[0] - GRID_ROWS * CELL_DEG / 2
    west = CENTER[1] - GRID_COLS * CELL_DEG / 2
    m.fit_bounds([[south, west], [south + GRID_ROWS * CELL_DEG, west + GRID_COLS * CELL_DEG]])
    return m


# ---------------------------------------------------------------------------------------
# Unit tests: no browser


@pytest.mark.parametrize(
    "cls", [folium.Map, plugins.MarkerCluster, plugins.Fullscreen, plugins.Search]
)
def test_every_default_asset_of_the_map_and_its_plugins_is_vendored(cls: type) -> None:
    for _name, url in [*cls.default_js, *cls.default_css]:
        assert url in assets.CDN_ASSETS, f"{cls.__name__} links {url}: map it in CDN_ASSETS"
        assert (assets.VENDOR_DIR / assets.CDN_ASSETS[url]).is_file()


def test_every_mapped_file_is_in_the_vendor_folder() -> None:
    missing = [p for p in set(assets.CDN_ASSETS.values()) if not (assets.VENDOR_DIR / p).is_file()]
    assert not missing, f"run tools/vendor_assets.sh: missing {missing}"


def test_served_page_has_no_remote_script_stylesheet_or_css_url() -> None:
    raw = build_demo_map(local=False).get_root().render()
    # The check can fail: folium's own page is full of CDN links.
    assert len(references.remote_assets(raw)) == 17
    assert _REMOTE_ATTR.search(raw)

    html = assets.render_html(build_demo_map())

    assert references.remote_assets(html) == []
    assert not _REMOTE_ATTR.search(html), _REMOTE_ATTR.search(html)
    assert not _REMOTE_CSS.search(html), _REMOTE_CSS.search(html)
    refs = references.asset_references(html)
    assert len(refs) == 17  # Map 10, MarkerCluster 3, Search 2, Fullscreen 2
    for url in refs:
        assert url.startswith("/static/vendor/"), url
        assert (assets.VENDOR_DIR / url.removeprefix("/static/vendor/")).is_file(), url


def test_vendored_stylesheets_reference_only_vendored_files() -> None:
    for css_path in assets.VENDOR_DIR.rglob("*.css"):
        for url in references.css_references(css_path.read_text(encoding="utf-8")):
            target = (css_path.parent / url.split("?")[0].split("#")[0]).resolve()
            assert target.is_file(), f"{css_path.name} references missing {url}"
            assert assets.VENDOR_DIR in target.parents


def test_scanner_finds_every_kind_of_remote_reference() -> None:
    page = """<html><head>
      <script src="https://cdn.example/a.js"></script>
      <link rel="stylesheet" href="//cdn.example/b.css"/>
      <link rel="icon" href="http://cdn.example/favicon.ico">
      <style>@font-face{src:url('https://cdn.example/f.woff2')} @import "http://x.example/c.css";
             .x{background:url("data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'/>")}
      </style></head>
      <body><img src="http://cdn.example/i.png"><div style="background:url(https://x.example/d.png)">
      <a href="https://leafletjs.com">a link is not an asset</a>
      <script>var s = '<a href="https://leafletjs.com">code is not scanned</a>';</script>
      </div></body></html>"""
    assert references.remote_assets(page) == [
        "https://cdn.example/a.js",
        "//cdn.example/b.css",
        "http://cdn.example/favicon.ico",
        "https://cdn.example/f.woff2",
        "http://x.example/c.css",
        "http://cdn.example/i.png",
        "https://x.example/d.png",
    ]


def test_standalone_page_embeds_everything() -> None:
    html = assets.to_standalone_html(build_demo_map())

    assert references.asset_references(html) == []  # no link of any kind is left, local or not
    assert not _REMOTE_CSS.search(html)
    assert "data:font/woff2;base64," in html  # Font Awesome and Glyphicons
    assert 'data-asset="leaflet-default-icons"' in html
    # leaflet, jquery, bootstrap, awesome-markers, markercluster, search, fullscreen + icons
    assert html.count("<script data-asset=") == 8
    assert html.count("<style data-asset=") == 10
    assert len(html) < 4_000_000


def test_unvendored_plugin_is_refused_with_its_url() -> None:
    m = assets.make_map(location=CENTER)
    plugins.MiniMap().add_to(m)
    with pytest.raises(assets.UnvendoredAssetError, match=r"MiniMap links https://"):
        assets.localize(m)


def test_asset_added_while_rendering_is_refused() -> None:
    # branca's colormap adds its d3 link only while rendering: the render helper catches it.
    from branca.colormap import LinearColormap

    m = assets.make_map(location=CENTER)
    LinearColormap(["green", "red"], vmin=0, vmax=15, caption="minutes").add_to(m)
    with pytest.raises(assets.UnvendoredAssetError, match="d3"):
        assets.render_html(m)


def test_map_without_tiles_gets_a_max_zoom() -> None:
    m = folium.Map(location=CENTER, tiles=None)
    assets.localize(m)
    assert m.options["max_zoom"] == assets.DEFAULT_MAX_ZOOM
    assert '"maxZoom": 18' in assets.render_html(assets.make_map(location=CENTER))


def test_localize_changes_only_the_map_not_folium_defaults() -> None:
    assets.localize(assets.make_map(location=CENTER), "served", static_url="/prefix/static/vendor")
    assert folium.Map.default_js[0][1].startswith("https://")
    m = assets.make_map(location=CENTER, static_url="/prefix/static/vendor")
    assert "/prefix/static/vendor/leaflet/leaflet.js" in m.get_root().render()


def test_vendor_path_stays_inside_the_vendor_folder() -> None:
    assert assets.vendor_path("/static/vendor/leaflet/leaflet.js") == "leaflet/leaflet.js"
    assert assets.vendor_path("/static/vendor/fontawesome/css/../webfonts/x.woff2") == (
        "fontawesome/webfonts/x.woff2"
    )
    assert assets.vendor_path("/static/vendor/../../geomap/config.py") is None
    assert assets.vendor_path("https://unpkg.com/leaflet") is None


# ---------------------------------------------------------------------------------------
# In headless Chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    """The real app (create_app: the engine is lazy, no database is reached) plus a demo
    page, served on a free port of 127.0.0.1."""
    from geomap import create_app

    app = create_app({"database_url": "postgresql+psycopg://nobody@127.0.0.1:9/unused"})
    from geomap.web.spec import endpoint

    html = assets.render_html(build_demo_map())
    # Every view declares who may use it (undeclared views are refused): this one is public.
    # Like every page of the app, its inline code carries the response's CSP nonce.
    from geomap.web import security

    page = lambda: security.with_nonce(html, security.nonce())  # noqa: E731
    demo = endpoint("demo map (tests only)", permission="public")(page)
    app.add_url_rule("/test/demo-map", "demo_map", demo)
    with serve_app(app) as base_url:
        yield base_url


def _check_demo_map(report: Any) -> dict[str, Any]:
    summary = report.leaflet_summary()
    assert summary["maps"] == summary["loaded_maps"] == 1
    assert summary["geojson_features"] == N_POLYGONS
    assert summary["svg_paths"] == N_POLYGONS, "every polygon drawn"
    assert summary["clustered_markers"] == N_POINTS
    assert summary["cluster_icons"] > 0, "points are clustered"
    # Clusters and single markers together show every point (the view fits them all).
    singles = summary["awesome_markers"]
    assert summary["cluster_icon_total"] + singles == N_POINTS, summary
    assert summary["marker_icons"] == summary["cluster_icons"] + singles + 1  # + command post
    assert summary["broken_images"] == 0
    assert summary["controls"] == {"layers": 1, "search": 1, "fullscreen": 1, "zoom": 1}
    # Icon(angle=N) turns the glyph (the vendored leaflet.awesome.rotate.css).
    rotations = report.evaluate(
        """() => Array.from(document.querySelectorAll('.awesome-marker i'), (i) => [
              i.className.split(' ').find((c) => c.startsWith('fa-rotate-')).slice(10),
              getComputedStyle(i).transform])"""
    )
    assert rotations, "some markers are shown singly"
    for angle, transform in rotations:
        assert (transform == "none") == (angle == "0"), (angle, transform)
    # The icon fonts load (from the server or data: URIs), not only their CSS.
    fonts = report.evaluate(
        """async () => {
          const fa = await document.fonts.load('900 16px "Font Awesome 6 Free"', '\\uf134');
          const glyph = await document.fonts.load('16px "Glyphicons Halflings"', '\\ue034');
          return [fa.length, glyph.length];
        }"""
    )
    assert fonts == [1, 1]
    return summary


def _save_metrics(name: str, report: Any, summary: dict[str, Any]) -> None:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    metrics = {
        "url": report.url,
        "requests": len(report.requests),
        "bytes_loaded": report.bytes_loaded,
        "timings_ms": report.timings,
        "summary": summary,
    }
    (ARTIFACTS_DIR / f"{name}.json").write_text(json.dumps(metrics, indent=2))


@requires_chromium
def test_served_map_loads_everything_from_the_app(browser: Any, live_url: str) -> None:
    with open_page(f"{live_url}/test/demo-map", offline=True, browser=browser) as report:
        report.assert_clean()
        urls = [r.url for r in report.requests]
        assert all(u.startswith(live_url) for u in urls), urls
        assert any(u.endswith("fa-solid-900.woff2") for u in urls)
        assert any(u.endswith("markers-soft.png") for u in urls)

        summary = _check_demo_map(report)

        # Search works: typing a grid name offers it.
        report.page.locator(".leaflet-control-search input.search-input").press_sequentially(
            "grid-07"
        )
        report.page.wait_for_selector(".search-tip", timeout=3000)
        assert report.page.locator(".search-tip").all_inner_texts() == ["grid-07"]
        report.page.keyboard.press("Escape")

        shot = report.screenshot("maps_offline_served.png")
        assert shot.stat().st_size > 10_000

    assert report.time_to_interactive_ms is not None
    assert report.time_to_interactive_ms < 10_000  # generous: ~0.5 s measured on 2 cores
    # As transferred: the 1.3 MB of scripts, styles and fonts, text gzip-compressed.
    assert report.bytes_loaded > 400_000
    _save_metrics("maps_offline_served", report, summary)


@requires_chromium
def test_standalone_file_renders_with_no_network(browser: Any, tmp_path: Path) -> None:
    page = tmp_path / "battle.html"
    started = time.perf_counter()
    page.write_text(assets.to_standalone_html(build_demo_map()), encoding="utf-8")
    build_s = time.perf_counter() - started

    with open_page(page.as_uri(), offline=True, browser=browser) as report:
        report.assert_clean()
        assert [r.url for r in report.requests] == [page.as_uri()]  # the file, nothing else
        summary = _check_demo_map(report)
        report.screenshot("maps_offline_standalone.png")

    assert report.time_to_interactive_ms is not None
    assert build_s < 10
    _save_metrics("maps_offline_standalone", report, summary)


@requires_chromium
def test_harness_sees_a_page_that_needs_the_network(browser: Any, tmp_path: Path) -> None:
    # Plain folium, as a file: every asset is on a CDN, so offline the map stays blank.
    page = tmp_path / "cdn.html"
    page.write_text(build_demo_map(local=False).get_root().render(), encoding="utf-8")

    with open_page(page.as_uri(), offline=True, browser=browser, wait_for_map=False) as report:
        assert report.evaluate("() => typeof window.L") == "undefined"

    assert len(report.external_requests) == 17
    assert all(r.failed for r in report.external_requests)
    assert any("L is not defined" in error for error in report.page_errors)
    with pytest.raises(AssertionError, match="request left the machine"):
        report.assert_clean()

"""The map pages in headless Chromium: time to interactive and bytes transferred.

Each figure against a baseline built and measured in the same run:

* the battle map ``/map`` on the default data (Nanchang: 4,418 grids, ~6,900 stations,
  ~5,650 teams, 374 circles, every layer at the first view). Baseline: plain folium, its
  default way: every team a ``folium.Marker`` in a ``MarkerCluster`` (the teams only);
* the planners' circles map ``/map/circles``. Baseline: plain folium, the answer of
  ``/api/circles`` as one ``folium.GeoJson`` with tooltips;
* the coverage map ``/map/coverage``. Baseline: plain folium, the GeoJSON of
  ``/api/coverage`` as one ``folium.GeoJson`` coloured by share;
* a city ten times Nanchang, SYNTHETIC: its grids and teams copied nine times around it
  (44,180 grids, 56,500 teams; :func:`tenfold_database`), the battle map at a commander's
  view (zoom 12 on the centre), grids and teams from vector tiles. Baseline: the same page
  with every layer as one document (tiles off).

Warm: the median of :data:`WARM_LOADS` loads after the first; cold: the first load after
the server started (documents and analyses are built then). Each load is a new browser
context (no browser cache), every request offline-checked; bytes are as transferred
(gzip). Baseline pages are built with the same local assets (``geomap.maps.assets``), so
that they render offline too. The app runs as ``make run`` serves it: gunicorn with
``geomap serve``'s configuration (2 threaded workers, keep-alive), in processes of their
own, baselines included.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import folium
import sqlalchemy as sa
from folium import plugins

from bench._env import line, settings_for
from bench._server import gunicorn
from geomap import create_app, db
from geomap.analysis import circles, coverage, features
from geomap.layers import load_catalog
from geomap.maps import assets
from geomap.web.spec import endpoint
from tests.browser import launch_browser, open_page

WARM_LOADS = 5
#: Copies of the grids and teams that make the ten-times city (with the originals: 10x).
COPIES = 9
#: Where the copies go, in multiples of the grids' extent (the original is at (0, 0)).
_OFFSETS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1), (2, 0))
#: The commander's view of the ten-times city: its centre at a district's scale.
TENFOLD_VIEW = "center=28.68,115.89&zoom=12"
#: Colour names folium.Icon knows, for the team kinds (awesome-markers has no hex colours).
_ICON_COLOURS = {
    "medical": "red", "organ_party": "darkred", "youth": "green", "veteran": "darkgreen",
    "steward": "orange", "rider": "blue", "red_flag_car": "lightred", "service": "cadetblue",
}  # fmt: skip
_CIRCLES_QUERY = "of=red&minutes=15"
_COVERAGE_QUERY = "of=stations&within_m=1000"


def ensure_circles(url: str) -> None:
    """Build the default 15-minute circles when none are (the battle map shows them)."""
    engine = db.get_engine(settings_for(url))
    with engine.connect() as conn:
        built = conn.execute(sa.text("SELECT count(*) FROM circles")).scalar()
    if built:
        return
    started = time.perf_counter()
    with engine.begin() as conn:
        circles.build(conn, circles.make_query(minutes=15))
    print(f"  (15-minute circles built first, in {time.perf_counter() - started:.0f} s)")


# ---------------------------------------------------------------------------------------
# Baselines: plain folium, its default way, with local assets


def folium_teams(url: str) -> tuple[str, int]:
    """Every team a folium Marker in a MarkerCluster; and the count."""
    catalog = load_catalog()
    teams = catalog["teams"]
    with db.session_scope(settings_for(url)) as session:
        rows = list(features.iter_features(session, teams, features.Selection()))
    m = assets.make_map(location=[28.68, 115.89], zoom_start=11)
    cluster = plugins.MarkerCluster(name="teams").add_to(m)
    for feature in rows:
        lon, lat = feature["geometry"]["coordinates"]
        p = feature["properties"]
        style = teams.style["kinds"].get(p["kind"], {})
        folium.Marker(
            [lat, lon],
            popup=f"{p['name']} ({p['status']})",
            icon=folium.Icon(color=_ICON_COLOURS.get(p["kind"], "gray"),
                             icon=style.get("icon", "users"), prefix="fa"),
        ).add_to(cluster)  # fmt: skip
    return assets.render_html(m), len(rows)


def folium_circles(url: str) -> tuple[str, int]:
    """The circles of ``/api/circles`` (the same analysis) as one folium.GeoJson."""
    with db.session_scope(settings_for(url)) as session:
        records = circles.circles(session, circles.make_query(of="red", minutes=15))
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": r.pop("geometry"), "properties": r}
            for r in records
            if r["geometry"]
        ],
    }
    m = assets.make_map(location=[28.68, 115.89], zoom_start=11)
    folium.GeoJson(
        collection,
        style_function=lambda _: {"color": "#e11d48", "weight": 1, "fillOpacity": 0.18},
        tooltip=folium.GeoJsonTooltip(fields=["name", "population"]),
    ).add_to(m)
    return assets.render_html(m), len(collection["features"])


def folium_coverage(url: str) -> tuple[str, int]:
    """The GeoJSON of ``/api/coverage`` (the same analysis) as one folium.GeoJson."""
    query = coverage.make_query(of="stations", within_m=1000)
    with db.session_scope(settings_for(url)) as session:
        answer = coverage.coverage(session, query, with_geometry=True)
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": u.pop("geometry"), "properties": u}
            for u in answer["units"]
        ],
    }

    def style(feature: dict) -> dict:
        covered = feature["properties"]["covered"]
        return {"color": "#64748b", "weight": 0.4,
                "fillColor": "#4ade80" if covered else "#dc2626", "fillOpacity": 0.5}  # fmt: skip

    m = assets.make_map(location=[28.68, 115.89], zoom_start=11)
    folium.GeoJson(
        collection,
        style_function=style,
        tooltip=folium.GeoJsonTooltip(fields=["name", "covered_share_population"]),
    ).add_to(m)
    return assets.render_html(m), len(collection["features"])


# ---------------------------------------------------------------------------------------
# The ten-times city (synthetic)


def tenfold_database(url: str) -> str:
    """A copy of the database at ``url`` with its grids and teams copied nine times around
    the city (SYNTHETIC, labelled so in ``source``); returns the copy's URL.

    Each copy is shifted by a multiple of the grids' extent, so copies never overlap; a
    copied team keeps its copied home grid. The circles are kept as they are (the copies
    are elsewhere, so their residents do not change): the trigger that forgets circles
    when grids change is switched off while copying.
    """
    source = sa.engine.make_url(url)
    name = f"{source.database}_10x"
    db.dispose_engines()
    admin = sa.create_engine(
        source.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": source.database})  # fmt: skip
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"'))
    admin.dispose()
    target = source.set(database=name).render_as_string(hide_password=False)
    engine = db.get_engine(settings_for(target))
    with engine.begin() as conn:  # this copy of the database only
        conn.execute(sa.text("ALTER TABLE grids DISABLE TRIGGER grids_forget_circles"))
    with engine.begin() as conn:
        box = conn.execute(sa.text(
            "SELECT ST_XMax(e) - ST_XMin(e), ST_YMax(e) - ST_YMin(e) "
            "FROM (SELECT ST_Extent(geom) AS e FROM grids) s")).one()  # fmt: skip
        width, height = float(box[0]) * 1.02, float(box[1]) * 1.02
        for copy, (i, j) in enumerate(_OFFSETS[:COPIES], start=1):
            params = {"dx": i * width, "dy": j * height, "suffix": f"-x{copy}",
                      "label": f"synthetic: bench ten-times city, copy {copy} of "}  # fmt: skip
            conn.execute(sa.text("""
                INSERT INTO grids (code, name, community_code, population, households, geom,
                                   source)
                SELECT code || :suffix, name || :suffix, community_code, population,
                       households, ST_Translate(geom, :dx, :dy), :label || code
                FROM grids WHERE source NOT LIKE 'synthetic: bench%'
            """), params)  # fmt: skip
            conn.execute(sa.text("""
                INSERT INTO teams (code, name, kind, unit, headcount, status, capabilities,
                                   home_grid_code, position_at, leader_name, leader_phone,
                                   geom, source)
                SELECT code || :suffix, name || :suffix, kind, unit, headcount, status,
                       capabilities, home_grid_code || :suffix, position_at, leader_name,
                       leader_phone, ST_Translate(geom, :dx, :dy), :label || code
                FROM teams WHERE source NOT LIKE 'synthetic: bench%'
            """), params)  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE grids ENABLE TRIGGER grids_forget_circles"))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
    return target


def _counts(url: str) -> dict[str, int]:
    with db.get_engine(settings_for(url)).connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("grids", "teams", "stations", "circles")
        }


# ---------------------------------------------------------------------------------------
# Serving and loading


BASELINE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'"
)


def bench_app():
    """The server's app (gunicorn loads ``bench.maps:bench_app()``): geomap's app, settings
    from the environment as ``geomap serve`` reads them, plus the baseline pages of the
    folder ``BENCH_BASELINES`` at ``/bench/<name>``."""
    from flask import Response, abort

    app = create_app()
    pages = {p.stem: p.read_text(encoding="utf-8")
             for p in Path(os.environ["BENCH_BASELINES"]).glob("*.html")}  # fmt: skip

    @endpoint("The benchmark's baseline pages", permission="public")
    def baseline_page(name: str) -> Response:
        if name not in pages:
            abort(404)
        # A plain folium page, served as folium users serve it: its inline scripts and
        # styles allowed (the service's own nonce policy would block them), still nothing
        # from elsewhere.
        return Response(pages[name], mimetype="text/html", headers={
            "Content-Security-Policy": BASELINE_CSP})  # fmt: skip

    app.add_url_rule("/bench/<name>", "bench_baseline", baseline_page)
    return app


@contextmanager
def server(url: str, folder: str, **settings: object) -> Iterator[str]:
    """The production server (gunicorn with ``geomap serve``'s configuration: 2 threaded
    workers, keep-alive) for database ``url``, with the baselines of ``folder``; settings
    as ``GEOMAP_*`` variables."""
    with gunicorn(url, app="bench.maps:bench_app()", env={"BENCH_BASELINES": folder},
                  **settings) as port:  # fmt: skip
        yield f"http://127.0.0.1:{port}"


def _load(browser, page_url: str) -> tuple[float, int]:
    with open_page(page_url, offline=True, browser=browser, timeout_s=180) as report:
        report.assert_clean()
        interactive = report.time_to_interactive_ms
    return float(interactive), report.bytes_loaded


def measure(browser, page_url: str) -> dict[str, float]:
    """Cold (the first load) and warm (median of the next ones): ms and bytes."""
    cold_ms, cold_bytes = _load(browser, page_url)
    warm = [_load(browser, page_url) for _ in range(WARM_LOADS)]
    return {
        "cold_ms": cold_ms,
        "cold_bytes": cold_bytes,
        "warm_ms": statistics.median(ms for ms, _ in warm),
        "warm_bytes": statistics.median(b for _, b in warm),
    }


def _report(title: str, ours: dict, theirs: dict, label: str, goal_ms: str, goal_mb: str) -> None:
    line(f"{title}, time to interactive (warm server, median)", ours["warm_ms"], "ms",
         theirs["warm_ms"], label, goal_ms)  # fmt: skip
    line("  same, cold server (first load after start)", ours["cold_ms"], "ms",
         theirs["warm_ms"], label)  # fmt: skip
    print(
        f"  {title}, bytes transferred: {ours['warm_bytes'] / 1e6:,.2f} MB"
        f" (cold {ours['cold_bytes'] / 1e6:,.2f} MB)  | baseline {label}:"
        f" {theirs['warm_bytes'] / 1e6:,.2f} MB"
        f" → {theirs['warm_bytes'] / max(ours['warm_bytes'], 1):,.1f}× less  [goal {goal_mb}]",
        flush=True,
    )


def _load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def run(url: str) -> None:
    print(f"  (machine: {_load_average()}: other work on it slows both sides alike)")
    ensure_circles(url)
    started = time.perf_counter()
    teams_html, n_teams = folium_teams(url)
    circles_html, n_circles = folium_circles(url)
    coverage_html, n_units = folium_coverage(url)
    print(f"  (baseline pages built in {time.perf_counter() - started:.1f} s)", flush=True)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder, launch_browser() as browser:
        for name, html in (("teams", teams_html), ("circles", circles_html),
                           ("coverage", coverage_html)):  # fmt: skip
            (Path(folder) / f"{name}.html").write_text(html, encoding="utf-8")
        with server(url, folder) as base:
            results["battle"] = measure(browser, base + "/map")
            results["circles"] = measure(browser, f"{base}/map/circles?{_CIRCLES_QUERY}")
            results["coverage"] = measure(browser, f"{base}/map/coverage?{_COVERAGE_QUERY}")
            for name in ("teams", "circles", "coverage"):
                results[f"folium_{name}"] = measure(browser, f"{base}/bench/{name}")
        _report("battle map", results["battle"], results["folium_teams"],
                f"folium Markers in a MarkerCluster ({n_teams:,} teams only)", "≤ 1,000 ms",
                "≤ 2 MB")  # fmt: skip
        _report("circles map", results["circles"], results["folium_circles"],
                f"folium.GeoJson of /api/circles ({n_circles:,} circles)", "≤ 1,500 ms",
                "≤ 2 MB")  # fmt: skip
        _report("coverage map", results["coverage"], results["folium_coverage"],
                f"folium.GeoJson of /api/coverage ({n_units:,} grids)", "≤ 1,500 ms",
                "≤ 2 MB")  # fmt: skip

        started = time.perf_counter()
        big = tenfold_database(url)
        counts = _counts(big)
        print(f"  (ten-times city, SYNTHETIC copies: {counts['grids']:,} grids, "
              f"{counts['teams']:,} teams, {counts['stations']:,} stations, "
              f"{counts['circles']:,} circles; made in {time.perf_counter() - started:.0f} s)",
              flush=True)  # fmt: skip
        try:
            page = f"/map?{TENFOLD_VIEW}"
            with server(big, folder) as base:
                tiled = measure(browser, base + page)
                city_view = measure(browser, base + "/map")
                stats = _tile_stats(browser, base + page)
            # Tiles off: every layer one document (and no feature limit, or it would cut).
            with server(big, folder, map_tiles_above=10**9, max_features=10**6) as base:
                documents = measure(browser, base + page)
        finally:
            db.dispose_engines()
        _report("ten-times city, battle map at zoom 12 (tiles)", tiled, documents,
                "the same page, one document per layer", "≤ 2,000 ms", "(figure)")  # fmt: skip
        line("  same, the whole city at the first view (warm)", city_view["warm_ms"], "ms",
             goal="≤ 2,000 ms")  # fmt: skip
        print(f"  (tiles drawn at zoom 12: {json.dumps(stats)})", flush=True)
    print(f"  (machine at the end: {_load_average()})")


def _tile_stats(browser, page_url: str) -> dict:
    with open_page(page_url, offline=True, browser=browser, timeout_s=180) as report:
        stats = report.evaluate("() => window.geomap.stats()")
        tiles = [r for r in report.requests if "/tiles/" in r.url]
    return {
        "tile_requests": len(tiles),
        "tile_bytes": sum(r.body_bytes for r in tiles),
        **{k: {"tiled": v["tiled"], "drawn": v["drawn"]} for k, v in stats.items()
           if k in ("grids", "teams")},
    }


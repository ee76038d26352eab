"""The live battle map (issue 10), in real headless Chromium against the real service.

``geomap serve`` (gunicorn, two workers) runs on a database holding the command loop's
small world (``tests/casesworld.py``, synthetic), with open reads off: every page signs in
with a key. Dispatch rules are the project's with one-minute accept deadlines, so that an
escalation happens during a test with nobody writing anything.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests import casesworld
from tests.browser import launch_browser, open_page, requires_chromium
from tests.conftest import _clone
from tests.test_call import WEST as CALL_STATION
from tests.test_call import _add_stations as call_stations

ROOT = Path(__file__).resolve().parent.parent
#: Signs the embed tokens of the service under test.
SECRET = "live-map-test"
#: A point on the small world's streets, inside its west grid.
CASE_POINT = casesworld.point(4, 4)


# ---------------------------------------------------------------------------------------
# The page's configuration: no browser, no database
def _config(**kwargs: Any) -> dict:
    from geomap.layers import load_catalog
    from geomap.maps import basemaps, battle, page

    spec_args = {k: kwargs.pop(k) for k in ("embed", "basemap") if k in kwargs}
    spec = page.PageSpec(
        basemap=basemaps.basemap(spec_args.get("basemap", "none"), lang="zh"),
        embed=spec_args.get("embed", False),
    )
    m = battle.battle_map(load_catalog(), spec, **kwargs)
    return page.config_of(m)


def test_served_battle_map_is_live_and_a_file_is_not() -> None:
    from geomap.maps import compact

    config = _config(stale_minutes=45)
    preload = ["/api/session", "/api/cases?open=true&limit=1000"]
    assert config["live"] == {
        "session": "/api/session",
        "events": "/api/events",
        "cases": "/api/cases",
        "openCases": "/api/cases?open=true&limit=1000",
        "teamsGeojson": "/api/layers/teams",
        # Who is signed in and the open cases come with the page, like the layers...
        "preload": preload,
        "preloadHrefs": preload,
    }
    # ...unless the caller must sign in first (a preloaded refusal would be used after).
    assert "preload" not in _config(preload=False)["live"]
    assert config["staleMinutes"] == 45
    # The page calls only what the service has.
    assert _config(routes={"/api/cases"})["live"]["session"] is None
    # Streets are drawn by default under a blank basemap, not under a tiled one.
    streets = {c: next(x for x in _config(basemap=c)["layers"] if x["id"] == "streets")
               for c in ("none", "osm")}  # fmt: skip
    assert streets["none"]["visible"] and not streets["osm"]["visible"]
    # The cases are never a /map/data layer: the page draws them from the live API.
    assert all(layer["id"] != "cases" for layer in config["layers"])
    empty = {"format": compact.FORMAT, "geometry": "point", "precision": 6, "fields": [],
             "features": [], "sources": []}  # fmt: skip
    standalone = _config(data={"teams": empty})
    assert "live" not in standalone


def test_an_embed_shows_cases_only_when_asked() -> None:
    assert _config(embed=True)["live"]["cases"] is None
    assert _config(embed=True, layers=["teams"])["live"]["cases"] is None
    assert _config(embed=True, layers=["teams", "cases"])["live"]["cases"] == "/api/cases"


def test_the_live_screen_speaks_both_languages() -> None:
    from geomap.maps import text

    zh, en = text.strings("zh"), text.strings("en")
    for key in ("sign_in", "skip_map", "skip_panels", "queue", "dispatch", "stale", "live_on"):
        assert zh["ui"][key] and en["ui"][key] and zh["ui"][key] != en["ui"][key]
    assert (
        zh["case_statuses"]["reported"] == "已上报" and en["case_levels"]["district"] == "district"
    )
    assert zh["ui"]["skip_map"] == "跳到地图" and zh["ui"]["skip_panels"] == "跳到面板"


# ---------------------------------------------------------------------------------------
# The real service, in Chromium
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``geomap serve`` in its own process group; stopped and started on the same port."""

    def __init__(self, url: str, rules: Path, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {**os.environ, "GEOMAP_DATABASE_URL": url, "GEOMAP_PORT": str(self.port),
                    "GEOMAP_OPEN_READ": "false", "GEOMAP_DISPATCH_RULES": str(rules),
                    "GEOMAP_LOG_LEVEL": "INFO", "GEOMAP_SECRET_KEY": SECRET}  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "geomap.cli", "serve", "--workers", "2"],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                probe = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server never answered /healthz"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)

    def call(self, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers=headers)  # fmt: skip
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def world(cluster, template_url) -> Iterator[tuple[str, casesworld.World]]:
    url = _clone(cluster, "geomap_template", "geomap_live_map")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        built = casesworld.build(conn)
        call_stations(conn)  # coded stations, for one-click calls (synthetic)
    engine.dispose()
    yield url, built
    cluster.drop_database("geomap_live_map")


@pytest.fixture(scope="module")
def service(world, tmp_path_factory) -> Iterator[Service]:
    # The project's rules, every accept deadline one minute (the shortest the rules take).
    tmp = tmp_path_factory.mktemp("live")
    rules = tmp / "dispatch.toml"
    text = (ROOT / "data" / "dispatch.toml").read_text("utf-8")
    rules.write_text(re.sub(r"^(grid|community|township) = \d+", r"\1 = 1", text, flags=re.M))
    server = Service(world[0], rules, tmp / "server.log")
    server.start()
    yield server
    server.stop()
    # No key, and no session cookie, ever reaches the server's log.
    log = server.log.read_text("utf-8", errors="replace")
    for key in world[1].keys.values():
        assert key not in log
    for cookie in _COOKIES:
        assert cookie not in log


_COOKIES: list[str] = []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as chromium:
        yield chromium


def _signed_in(report: Any, key: str) -> None:
    """Sign in through the page's form, then wait for the map and the live stream."""
    page = report.page
    page.wait_for_selector(".gm-signin .gm-key", timeout=30_000)
    page.fill(".gm-signin .gm-key", key)
    page.click(".gm-signin button[type=submit]")
    page.wait_for_function("() => document.documentElement.dataset.geomapReady === 'true'",
                           timeout=60_000)  # fmt: skip
    page.wait_for_function("() => window.geomap.live().state === 'live'", timeout=30_000)
    _COOKIES.extend(c["value"] for c in page.context.cookies() if c["name"] == "geomap_session")
    assert key not in page.url


def _open(browser: Any, service: Service, key: str, **kwargs: Any):
    return open_page(service.base + "/map", browser=browser, wait_for_map=True, timeout_s=60,
                     **kwargs)  # fmt: skip


def _new_case(service: Service, key: str, **extra: Any) -> dict:
    body = {"kind": "incident", "severity": "high", "title": "测试事件（合成）",
            "lon": CASE_POINT[0], "lat": CASE_POINT[1], **extra}  # fmt: skip
    status, answer = service.call("POST", "/api/cases?k=0", key, body)
    assert status == 201, answer
    return answer["case"]


def _wait_case(report: Any, case_id: int, condition: str = "true", timeout_ms: int = 30_000):
    # The condition is part of the predicate's text: the page's CSP allows no eval.
    report.page.wait_for_function(
        f"() => window.geomap.cases().some((c) => c.id === {int(case_id)} && c.onMap && "
        f"({condition}))",
        timeout=timeout_ms,
        polling=50,
    )


@pytest.mark.slow
@requires_chromium
def test_commander_sees_cases_live_and_dispatches_from_the_map(browser, service, world):
    keys = world[1].keys
    with _open(browser, service, keys["commander"]) as commander, \
            _open(browser, service, keys["viewer"]) as viewer:  # fmt: skip
        assert commander.page.locator(".gm-signin").count() == 1  # open reads are off
        _signed_in(commander, keys["commander"])
        _signed_in(viewer, keys["viewer"])
        assert commander.evaluate("() => window.geomap.session().role") == "commander"

        # A case made by another process appears on both maps and queues, no reload.
        started = time.monotonic()
        case = _new_case(service, keys["checker"])
        _wait_case(commander, case["id"], timeout_ms=10_000)
        seen_s = time.monotonic() - started
        _wait_case(viewer, case["id"], timeout_ms=10_000)
        print(f"case on the commander's map {seen_s * 1000:.0f} ms after the POST was sent")
        assert seen_s <= 2.0, f"the case reached the commander's map after {seen_s:.2f} s"
        item = commander.page.locator(f".gm-case-open[data-case='{case['id']}']")
        assert item.count() == 1

        # The commander opens it from the queue: its best teams by road, one click sends one.
        item.click()
        commander.page.wait_for_selector(".gm-recommend .gm-dispatch", timeout=60_000)
        routes = commander.evaluate(
            "() => document.querySelectorAll('.leaflet-gm-routes-pane path').length"
        )
        assert routes >= 1
        button = commander.page.locator(".gm-recommend .gm-dispatch").first
        team_id = int(button.get_attribute("data-team"))
        assert commander.evaluate(f"() => window.geomap.team({team_id}).status") == "available"
        button.click()
        commander.page.wait_for_function(
            f"() => window.geomap.team({team_id}).status === 'deployed'", timeout=30_000
        )
        _wait_case(commander, case["id"], "c.status === 'dispatched'")
        assert "gm-st-deployed" in commander.evaluate(f"() => window.geomap.team({team_id}).icon")

        # The commander sees a team leader's name and a tel: link; a viewer never does.
        other = world[1].teams["med2"]
        commander.evaluate(f"() => window.geomap.openTeam({other})")
        commander.page.wait_for_selector(".leaflet-popup a[href^='tel:']", timeout=15_000)
        viewer.evaluate(f"() => window.geomap.openTeam({other})")
        viewer.page.wait_for_selector(".leaflet-popup .gm-popup", timeout=15_000)
        assert viewer.page.locator(".leaflet-popup a[href^='tel:']").count() == 0

        # The viewer's map follows from the events alone, read-only.
        viewer.page.wait_for_function(
            f"() => window.geomap.team({team_id}).status === 'deployed'", timeout=30_000
        )
        _wait_case(viewer, case["id"], "c.status === 'dispatched'")
        viewer.page.locator(f".gm-case-open[data-case='{case['id']}']").click()
        viewer.page.wait_for_selector(".gm-case-detail .gm-readonly", timeout=10_000)
        assert viewer.page.locator(".gm-dispatch, .gm-act").count() == 0
        assert viewer.evaluate("() => window.geomap.live().received") >= 3
        for report in (commander, viewer):
            assert not report.csp_violations and not report.read_csp_violations()
            assert not report.page_errors


@pytest.mark.slow
@requires_chromium
def test_a_signed_in_reload_takes_its_session_and_cases_from_the_preloads(
    browser, service, world
):
    keys = world[1].keys
    case = _new_case(service, keys["checker"])
    with _open(browser, service, keys["viewer"]) as viewer:
        _signed_in(viewer, keys["viewer"])
        warnings: list[str] = []
        viewer.page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
        before = len(viewer.requests)
        viewer.page.reload(wait_until="load")  # with the session cookie now
        viewer.page.wait_for_function(
            "() => document.documentElement.dataset.geomapReady === 'true'", timeout=60_000
        )
        _wait_case(viewer, case["id"])
        html = viewer.page.content()
        assert 'rel="preload" as="fetch" crossorigin="anonymous" href="/api/cases?open' in html
        asked = [urlsplit(r.url) for r in viewer.requests[before:]]
        # Each once, by the <link rel=preload> (the page's fetch() took the preloaded answer).
        for path, query in (("/api/session", ""), ("/api/cases", "open=true&limit=1000")):
            hits = [r for r in viewer.requests[before:] if urlsplit(r.url).path == path]
            assert len(hits) == 1 and urlsplit(hits[0].url).query == query, asked
            assert hits[0].status == 200
        viewer.page.wait_for_timeout(3500)  # Chromium warns about an unused preload by then
        assert not [w for w in warnings if "preload" in w], warnings
        assert not viewer.page_errors


@pytest.mark.slow
@requires_chromium
def test_an_escalation_arrives_with_no_write(browser, service, world):
    keys = world[1].keys
    with _open(browser, service, keys["viewer"]) as viewer:
        _signed_in(viewer, keys["viewer"])
        # Reported 50 s ago with a one-minute accept deadline: it climbs by itself.
        reported = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=50)
        case = _new_case(service, keys["commander"], severity="low",
                         reported_at=reported.isoformat())  # fmt: skip
        _wait_case(viewer, case["id"], "c.level === 'grid'", timeout_ms=10_000)
        viewer.page.wait_for_function(
            "(id) => window.geomap.live().log.some((e) => e.kind === 'case.escalated' && "
            "e.case_id === id)", arg=case["id"], timeout=40_000)  # fmt: skip
        _wait_case(viewer, case["id"], "c.level !== 'grid'", timeout_ms=10_000)


@pytest.mark.slow
@requires_chromium
def test_the_page_reconnects_after_a_restart_and_catches_up(browser, service, world):
    keys = world[1].keys
    with _open(browser, service, keys["commander"]) as report:
        _signed_in(report, keys["commander"])
        # One event seen: the browser knows where the stream stopped.
        seen = _new_case(service, keys["commander"], title="重启前的事件（合成）")
        _wait_case(report, seen["id"], timeout_ms=10_000)
        assert report.evaluate("() => window.geomap.live().lastId")
        service.stop()
        report.page.wait_for_function("() => window.geomap.live().state === 'reconnecting'",
                                      timeout=30_000)  # fmt: skip
        # Written while no server runs: only the events table knows.
        from geomap.ops import audit, cases, rules

        engine = sa.create_engine(world[0], poolclass=sa.NullPool)
        now = dt.datetime.now(dt.UTC)
        body = {"kind": "hazard", "severity": "medium", "title": "停机期间的事件（合成）",
                "lon": CASE_POINT[0], "lat": CASE_POINT[1]}  # fmt: skip
        with engine.begin() as conn:
            made = cases.create(conn, cases.parse_new(body, now),
                                actor=audit.Actor("test", "commander"), now=now,
                                rules=rules.rules(ROOT / "data" / "dispatch.toml"))  # fmt: skip
        engine.dispose()
        service.start()
        report.page.wait_for_function("() => window.geomap.live().state === 'live'",
                                      timeout=60_000)  # fmt: skip
        _wait_case(report, made, timeout_ms=30_000)
        # Caught up by the replay after its last event (Last-Event-ID), not a reload.
        assert report.evaluate("() => window.geomap.live().kinds['case.created']") >= 2
        loads = [r for r in report.requests if "/api/cases?open=true" in r.url]
        assert len(loads) == 1


@pytest.mark.slow
@requires_chromium
def test_a_phone_shows_the_map_first_and_draws_teams(browser, service, world):
    keys = world[1].keys
    with _open(browser, service, keys["viewer"], viewport=(390, 844)) as phone:
        _signed_in(phone, keys["viewer"])
        stats = phone.evaluate("() => window.geomap.stats()")
        assert stats["teams"]["onMap"] and stats["teams"]["drawn"] == len(casesworld.TEAMS)
        summary = phone.leaflet_summary()
        assert (
            summary["cluster_groups"] >= 1
            and summary["marker_icons"] + summary["cluster_icons"] > 0
        )
        # The share of the map left visible: its area minus the controls over it.
        covered = phone.evaluate(
            """() => { const map = window.geomap.map.getContainer().getBoundingClientRect();
                 let covered = 0;
                 document.querySelectorAll('.leaflet-control').forEach((el) => {
                   const r = el.getBoundingClientRect();
                   const w = Math.max(0, Math.min(r.right, map.right) - Math.max(r.left, map.left));
                   const h = Math.max(0, Math.min(r.bottom, map.bottom) - Math.max(r.top, map.top));
                   covered += w * h; });
                 return covered / (map.width * map.height); }"""
        )
        assert covered <= 0.30, f"controls cover {covered:.0%} of the map on a phone"
        assert phone.page.locator(".gm-panel.gm-folded").count() >= 3
        phone.screenshot("live_phone.png")


@pytest.mark.slow
@requires_chromium
def test_keyboard_reaches_the_panels_and_controls_never_query_the_map(browser, service, world):
    keys = world[1].keys
    with _open(browser, service, keys["planner"]) as report:
        _signed_in(report, keys["planner"])
        page = report.page
        # As a keyboard user arrives: a fresh load (signed in by the cookie), focus at the top.
        page.reload()
        page.wait_for_function(
            "() => document.documentElement.dataset.geomapReady === 'true'", timeout=60_000
        )
        assert page.locator(".gm-signin").count() == 0
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "gm-skip-map"
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineWidth")
        assert float(outline.replace("px", "")) >= 2
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.className") == "gm-skip-panels"
        page.keyboard.press("Enter")
        assert page.evaluate("() => !!document.activeElement.closest('.gm-panel')")
        # From the top, the nearest panel's place field is a few presses away.
        page.reload()
        page.wait_for_function(
            "() => document.documentElement.dataset.geomapReady === 'true'", timeout=60_000
        )
        presses = 0
        while not page.evaluate("() => document.activeElement.classList.contains('gm-where')"):
            page.keyboard.press("Tab")
            presses += 1
            assert presses <= 30, "the place field is not reached by Tab"
        # A click on the legend, a panel or the queue never asks the map for teams nor moves it.
        before = page.evaluate("() => window.geomap.map.getCenter()")
        asked = len([r for r in report.requests if "/api/teams/nearest" in r.url])
        for selector in (
            ".gm-legend .gm-toggle",
            ".gm-nearest h3",
            ".gm-queue h3",
            ".gm-legend h3",
        ):
            page.locator(selector).first.click()
        page.locator(".gm-legend .gm-toggle").first.click()  # and back on
        page.wait_for_timeout(500)
        assert len([r for r in report.requests if "/api/teams/nearest" in r.url]) == asked
        assert page.evaluate("() => window.geomap.map.getCenter()") == before


@pytest.mark.slow
@requires_chromium
def test_a_one_click_call_from_a_phone_reaches_the_commanders_queue(browser, service, world):
    keys = world[1].keys
    with _open(browser, service, keys["commander"]) as commander:
        _signed_in(commander, keys["commander"])
        before = commander.evaluate("() => window.geomap.cases().map((c) => c.id)")
        with open_page(f"{service.base}/call/{CALL_STATION}", browser=browser,
                       viewport=(390, 844), wait_for_map=False, timeout_s=60) as phone:  # fmt: skip
            phone.page.fill("#call-text", "老人摔倒（合成测试）")
            phone.page.click("#call-button")
            phone.page.locator("#call-number").wait_for(timeout=30_000)
        commander.page.wait_for_function(
            "(before) => window.geomap.cases().some((c) => before.indexOf(c.id) < 0 && c.onMap)",
            arg=before,
            timeout=30_000,
        )
        new = commander.evaluate(
            "(before) => window.geomap.cases().filter((c) => before.indexOf(c.id) < 0)", before
        )
        assert len(new) == 1
        item = commander.page.locator(f".gm-case-open[data-case='{new[0]['id']}']")
        assert "群众诉求" in item.inner_text()


@pytest.mark.slow
@requires_chromium
def test_an_embed_with_the_case_layer_shows_cases_read_only(browser, service, world):
    from geomap import auth
    from tests.browser import _PROBE_JS, serve_app
    from tests.test_embed_portal import _frame_page, _portal_app

    keys = world[1].keys
    _new_case(service, keys["commander"], title="门户可见的事件（合成）",
              reporter_name="张三", reporter_phone="13800000009")  # fmt: skip
    pages: dict[str, str] = {}
    with serve_app(_portal_app(pages)) as portal:
        engine = sa.create_engine(world[0], poolclass=sa.NullPool)
        with engine.begin() as conn:
            token, _ = auth.create_embed_token(
                conn, SECRET, ["teams", "cases"], portal, days=1, name="门户（测试）"
            )
        engine.dispose()
        _COOKIES.append(token)  # a credential too: never in the log
        # The service named localhost: another site than the portal's 127.0.0.1.
        service_url = service.base.replace("127.0.0.1", "localhost")
        pages["/"] = _frame_page(f"{service_url}/embed/battle?token={token}")
        context = browser.new_context(viewport={"width": 1100, "height": 700})
        context.set_default_timeout(90_000)
        context.add_init_script(_PROBE_JS)
        try:
            page = context.new_page()
            page.goto(portal + "/", wait_until="load")
            frame = next(f for f in page.frames if "/embed/" in f.url)
            frame.wait_for_function(
                "() => document.documentElement.getAttribute('data-geomap-ready') === 'true'"
            )
            frame.wait_for_function("() => window.geomap.cases().some((c) => c.onMap)")
            frame.wait_for_function("() => window.geomap.live().state === 'live'")
            assert frame.evaluate("() => window.geomap.session().role") == "embed"
            # Read-only, no panels: no queue, no dispatch or step buttons, no sign-in.
            assert frame.locator(".gm-queue, .gm-dispatch, .gm-act, .gm-signin").count() == 0
            # No personal field reaches the embed.
            personal = frame.evaluate(
                """async (token) => { const r = await fetch('/api/cases?open=true&token=' + token);
                     const body = await r.json();
                     return body.cases.filter((c) => 'reporter' in c).length; }""",
                token,
            )
            assert personal == 0
            assert frame.evaluate("() => window.__geomapProbe.csp") == []
        finally:
            context.close()

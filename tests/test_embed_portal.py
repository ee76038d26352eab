"""Embed tokens as portals use them: in real Chromium, across origins, revoked one by one.

The service runs on ``http://localhost:<port>`` and the portals on ``http://127.0.0.1:<port>``
(another site to the browser, as a government portal is to the map service). Every request
the service receives is recorded with its status, so the tests see what the browser sent
and what it got, including requests whose answers a page could not read (CORS).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from geomap import auth, config, create_app, db
from geomap.cli import main
from tests.browser import _PROBE_JS as PROBE_JS
from tests.browser import launch_browser, requires_chromium, serve_app
from tests.test_maps import OneAtATime

LAYERS = ["grids", "teams"]


@dataclass
class Recorder:
    """WSGI wrapper: (path with query, status, request headers) of every request."""

    app: Any
    seen: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "") + (
            "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""
        )
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}  # fmt: skip

        def recording_start(status: str, response_headers: list, exc_info: Any = None) -> Any:
            with self.lock:
                self.seen.append((path, int(status.split()[0]), headers))
            return start_response(status, response_headers, exc_info)

        return self.app(environ, recording_start)

    def since(self, mark: int) -> list[tuple[str, int, dict[str, str]]]:
        with self.lock:
            return list(self.seen[mark:])


def _portal_app(html_by_path: dict[str, str]) -> Any:
    """A portal: static HTML pages by path (what a government portal page would hold)."""

    def app(environ: dict, start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/favicon.ico":
            start_response("204 No Content", [])
            return []
        body = html_by_path.get(path)
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body.encode("utf-8")]

    return app


def _frame_page(src: str, *, referrer_policy: str | None = None, fetch: str | None = None) -> str:
    policy = f' referrerpolicy="{referrer_policy}"' if referrer_policy else ""
    script = ""
    if fetch:
        # A page reading the data straight from the service, with the token it copied.
        script = (
            "<script>window.fetched = fetch(" + json.dumps(fetch) + ")"
            ".then((r) => 'read ' + r.status, (e) => 'refused: ' + e.message);</script>"
        )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>门户</title></head><body>'
        f'<h1>南昌市门户</h1><iframe id="map" src="{src}" width="900" height="600"'
        f'{policy}></iframe>{script}</body></html>'
    )


@dataclass
class World:
    service: str
    recorder: Recorder
    conn: sa.Connection
    secret: str


@pytest.fixture(scope="module")
def world(nanchang_url: str) -> Iterator[World]:
    settings = config.load({"database_url": nanchang_url}, environ={})
    with db.get_engine(settings).connect() as conn:
        transaction = conn.begin()
        try:
            app = create_app({"database_url": nanchang_url, "secret_key": "portal-test",
                              "log_level": "WARNING"})  # fmt: skip
            app.extensions["geomap_sessionmaker"] = sessionmaker(
                bind=conn, join_transaction_mode="create_savepoint"
            )
            recorder = Recorder(OneAtATime(app))
            with serve_app(recorder) as url:
                # The same server, named localhost: another site than 127.0.0.1.
                service = url.replace("127.0.0.1", "localhost")
                yield World(service, recorder, conn, "portal-test")
        finally:
            transaction.rollback()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as chromium:
        yield chromium


def _open(browser: Any, url: str, *, wait_embed: bool) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    # Generous: the framed map loads thousands of features, and on a loaded 2-core CI
    # machine its "load" event has taken more than 30 s.
    context.set_default_timeout(90_000)
    context.add_init_script(PROBE_JS)  # in every frame: CSP violations are recorded
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(url, wait_until="load")
    frame = None
    if wait_embed:
        frame = next(f for f in page.frames if "/embed/" in f.url)
        frame.wait_for_function("() => window.geomap && window.geomap.ready")
        frame.wait_for_function(
            "() => document.documentElement.getAttribute('data-geomap-ready') === 'true'"
        )
    else:
        page.wait_for_load_state("networkidle")
    return context, frame, console


def _embed_src(world: World, token: str) -> str:
    return f"{world.service}/embed/battle?layers={','.join(LAYERS)}&lang=zh&token={token}"


@pytest.mark.slow
@requires_chromium
def test_portal_frames_the_map_other_origins_get_nothing_and_revocation_stops_it(
    browser: Any, world: World
) -> None:
    portal_pages: dict[str, str] = {}
    other_pages: dict[str, str] = {}
    with serve_app(_portal_app(portal_pages)) as portal, \
            serve_app(_portal_app(other_pages)) as other:  # fmt: skip
        if True:  # (one block per origin pair keeps the steps below readable)
            token, token_id = auth.create_embed_token(
                world.conn, world.secret, LAYERS, portal, days=1, name="门户首页"
            )
            src = _embed_src(world, token)
            portal_pages["/"] = _frame_page(src)
            other_pages.update({
                "/": _frame_page(src),
                "/quiet": _frame_page(src, referrer_policy="no-referrer"),
                "/thief": _frame_page("about:blank",
                                      fetch=f"{world.service}/map/data/teams?token={token}"),
            })  # fmt: skip

            # 1. The portal frames the map: it draws its data, under its strict CSP.
            mark = len(world.recorder.seen)
            context, frame, console = _open(browser, portal + "/", wait_embed=True)
            try:
                stats = frame.evaluate("() => window.geomap.ready")
                assert set(stats) == set(LAYERS)
                teams = world.conn.execute(
                    sa.text("SELECT count(*) FROM teams WHERE geom IS NOT NULL")
                ).scalar()
                assert stats["teams"]["drawn"] == teams > 1000
                assert stats["grids"]["drawn"] > 4000
                title = frame.evaluate("() => document.querySelector('.gm-embed-title').innerText")
                assert title == "南昌市应急队伍作战图"
                assert "网格" in frame.evaluate(
                    "() => document.querySelector('.gm-legend-compact').innerText"
                )
                assert frame.evaluate("() => window.__geomapProbe.csp") == []
                assert not console, console
            finally:
                context.close()
            requests = world.recorder.since(mark)
            data = [(p, s, h) for p, s, h in requests if p.startswith("/map/data/")]
            assert sorted(p.split("?")[0] for p, _, _ in data) == ["/map/data/grids",
                                                                  "/map/data/teams"]
            assert all(status == 200 for _, status, _ in requests), requests
            # What made this fail before: Chromium sends the service's own origin.
            assert all(h.get("Origin") == world.service and h.get("Sec-Fetch-Site") ==
                       "same-origin" for _, _, h in data), [h for _, _, h in data]  # fmt: skip
            page_request = next(h for p, _, h in requests if p.startswith("/embed/"))
            assert page_request["Sec-Fetch-Dest"] == "iframe"
            assert page_request["Referer"] == portal + "/"

            # 2. Another origin framing the same URL: refused, and no data is read.
            mark = len(world.recorder.seen)
            context, _, console = _open(browser, other + "/", wait_embed=False)
            context.close()
            requests = world.recorder.since(mark)
            assert [(p.split("?")[0], s) for p, s, _ in requests] == [("/embed/battle", 403)]

            # ... even when it hides its address (no Referer): the browser then refuses to
            # show the page, whose frame-ancestors name the portal only.
            mark = len(world.recorder.seen)
            context, _, console = _open(browser, other + "/quiet", wait_embed=False)
            try:
                inner = context.pages[0].frames[1]
                assert inner.evaluate("() => !!window.geomap") is False
            finally:
                context.close()
            requests = world.recorder.since(mark)
            assert [p.split("?")[0] for p, _, _ in requests] == ["/embed/battle"]
            assert any("frame-ancestors" in line for line in console), console

            # ... and fetching the data with the copied token: 403 (CORS hides it anyway).
            mark = len(world.recorder.seen)
            context = browser.new_context()
            page = context.new_page()
            page.goto(other + "/thief")
            outcome = page.evaluate("() => window.fetched")
            context.close()
            assert outcome.startswith("refused"), outcome
            assert [(p.split("?")[0], s) for p, s, _ in world.recorder.since(mark)] == [
                ("/map/data/teams", 403)
            ]

            # 3. Revoked, the token stops working for the portal too.
            assert auth.revoke(world.conn, token_id) == "embed token"
            mark = len(world.recorder.seen)
            context, _, _ = _open(browser, portal + "/", wait_embed=False)
            context.close()
            requests = world.recorder.since(mark)
            assert [(p.split("?")[0], s) for p, s, _ in requests] == [("/embed/battle", 401)]


def test_embed_page_headers_name_the_tokens_portal(app, client, connection) -> None:
    secret = auth.secret_key(app.config["GEOMAP"])
    token, _ = auth.create_embed_token(connection, secret, ["grids"], "https://portal.example",
                                       days=1)  # fmt: skip
    page = client.get(f"/embed/map?token={token}")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors https://portal.example;" in csp
    assert "'unsafe-inline'" not in csp and "script-src 'self' 'nonce-" in csp


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),  # no browser headers: a server-side client
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}, 200),  # its own page
        ({"Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"}, 200),  # typed in
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://portal.example"}, 200),  # CORS
        ({"Sec-Fetch-Site": "cross-site", "Referer": "https://portal.example/a/b"}, 200),
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site", "Referer": "https://evil.example/"}, 403),
        ({"Sec-Fetch-Site": "same-site", "Origin": "https://maps.portal.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403),  # names nobody
        ({"Origin": "https://evil.example"}, 403),  # an older browser
    ],
)
def test_embed_token_requests_are_judged_by_who_makes_them(
    app, client, connection, headers, status
) -> None:
    secret = auth.secret_key(app.config["GEOMAP"])
    token, _ = auth.create_embed_token(connection, secret, ["grids"], "https://portal.example",
                                       days=1)  # fmt: skip
    response = client.get(f"/api/layers/grids?token={token}&limit=1", headers=headers,
                          environ_base={"REMOTE_ADDR": "10.1.2.3"})  # fmt: skip
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 403:
        assert "https://portal.example" in response.get_json()["error"]["message"]


def test_embed_tokens_are_listed_and_revoked_one_by_one(runner) -> None:
    made = []
    for origin in ("https://a.example", "https://b.example"):
        result = runner.invoke(main, ["keys", "embed", "--layers", "grids,teams", "--origin",
                                      origin, "--name", f"门户 {origin[-9:]}"])  # fmt: skip
        assert result.exit_code == 0, result.output
        token = result.stdout.strip().splitlines()[0]
        assert token.startswith("em_")
        made.append((token, result.stderr.split("embed token ")[1].split()[0]))
    listed = runner.invoke(main, ["keys", "list"]).output
    for token, token_id in made:
        assert token_id in listed and token not in listed
    assert listed.count("active") == 2 and "https://a.example" in listed
    assert runner.invoke(main, ["keys", "revoke", made[0][1]]).exit_code == 0
    listed = runner.invoke(main, ["keys", "list"]).output
    line_a = next(x for x in listed.splitlines() if made[0][1] in x)
    line_b = next(x for x in listed.splitlines() if made[1][1] in x)
    assert "revoked" in line_a and "active" in line_b
    assert runner.invoke(main, ["keys", "revoke", made[0][1]]).exit_code == 1


def test_a_revoked_or_unknown_token_is_refused(app, client, connection) -> None:
    secret = auth.secret_key(app.config["GEOMAP"])
    token, token_id = auth.create_embed_token(connection, secret, ["grids"],
                                              "https://portal.example", days=1)  # fmt: skip
    assert client.get(f"/map/data/grids?token={token}").status_code == 200
    auth.revoke(connection, token_id)
    refused = client.get(f"/map/data/grids?token={token}")
    assert refused.status_code == 401 and "revoked" in refused.get_json()["error"]["message"]
    connection.execute(sa.text("DELETE FROM embed_tokens WHERE id = :id"), {"id": token_id})
    refused = client.get(f"/map/data/grids?token={token}")
    assert refused.status_code == 401 and "not known" in refused.get_json()["error"]["message"]


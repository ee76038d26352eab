"""Response headers: merged Vary, one charset, a real CSP on the map pages, a minimal public
/healthz, and the Host header checked (DNS rebinding against the local demo)."""

from __future__ import annotations

import re

from sqlalchemy.orm import sessionmaker

from geomap import auth, create_app
from geomap.web import security
from tests.browser import launch_browser, open_page, requires_chromium, serve_app

PORTAL = "https://portal.example.gov.cn"
REMOTE = {"REMOTE_ADDR": "10.20.30.40"}


def _app(shared_url, connection, **settings):
    app = create_app({"database_url": shared_url, **settings})
    app.extensions["geomap_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint"
    )
    return app


def test_cors_adds_origin_to_vary_instead_of_replacing_it(shared_url, connection):
    client = _app(shared_url, connection, cors_origins=(PORTAL,), open_read=True).test_client()
    response = client.get("/ogc/collections?f=json", headers={"Origin": PORTAL})
    assert response.headers["Access-Control-Allow-Origin"] == PORTAL
    vary = {v.strip() for v in response.headers["Vary"].split(",")}
    assert {"Accept", "Accept-Language", "Origin"} <= vary
    # An origin not allowed gets no CORS header, but caches still learn the answer varies.
    other = client.get("/ogc/collections?f=json", headers={"Origin": "https://other.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers["Vary"]


def test_csv_has_one_charset(client):
    response = client.get("/api/coverage?within_m=500&format=csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"


def test_map_pages_have_a_nonce_csp_and_every_inline_element_carries_it(client):
    for path in ("/map", "/map/circles", "/map/coverage", "/embed/map?layers=grids"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        nonce = re.search(r"'nonce-([\w-]+)'", directives["script-src"])[1]
        assert directives["script-src"] == f"'self' 'nonce-{nonce}'"
        assert directives["style-src"] == f"'self' 'nonce-{nonce}'"
        assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'"
        assert "unsafe" not in csp
        html = response.get_data(as_text=True)
        tags = re.findall(r"<(?:script|style)\b[^>]*>", html)
        assert tags and all(f'nonce="{nonce}"' in tag for tag in tags), tags[:3]
        assert " style=" not in html  # no inline style attribute either
        # A new nonce per response.
        again = client.get(path).headers["Content-Security-Policy"]
        assert again != csp
    assert security.with_nonce("<script>a</script><style>b</style><scripts>", "N") == (
        '<script nonce="N">a</script><style nonce="N">b</style><scripts>'
    )


def test_public_healthz_shows_only_the_status(app, client, connection):
    assert client.get("/healthz", environ_base=REMOTE).get_json() == {"status": "ok"}
    relayed = client.get("/healthz", headers={"X-Forwarded-For": "1.2.3.4"})
    assert relayed.get_json() == {"status": "ok"}  # a proxy on this machine
    local = client.get("/healthz").get_json()
    assert local["status"] == "ok" and "counts" in local and "versions" in local
    key, _ = auth.create_key(connection, "monitor", "viewer")
    with_key = client.get("/healthz", environ_base=REMOTE, headers={"X-API-Key": key})
    assert "counts" in with_key.get_json()
    bad_key = client.get("/healthz", environ_base=REMOTE, headers={"X-API-Key": "gm_nope"})
    assert bad_key.get_json() == {"status": "ok"}


def test_unknown_hosts_are_refused(shared_url, connection, client):
    # DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1.
    refused = client.get("/api/layers", headers={"Host": "evil.example:5000"})
    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "Host"
    assert "GEOMAP_ALLOWED_HOSTS" in refused.get_json()["error"]["message"]
    for host in ("localhost:5000", "127.0.0.1:5013", "[::1]:5000"):
        assert client.get("/api/layers", headers={"Host": host}).status_code == 200, host
    named = _app(shared_url, connection, allowed_hosts=(".example.gov.cn",)).test_client()
    assert named.get("/healthz", headers={"Host": "geomap.example.gov.cn"}).status_code == 200
    assert named.get("/healthz", headers={"Host": "localhost"}).status_code == 400
    anything = _app(shared_url, connection, allowed_hosts=("*",)).test_client()
    assert anything.get("/healthz", headers={"Host": "whatever.example"}).status_code == 200


@requires_chromium
def test_docs_and_ogc_pages_run_under_the_strict_csp(app) -> None:
    from tests.test_maps import OneAtATime

    with serve_app(OneAtATime(app)) as url, launch_browser() as browser:
        for path, text in (("/docs", "geomap"), ("/ogc?f=html", "OGC API"),
                           ("/ogc/collections?f=html", "grids")):  # fmt: skip
            with open_page(url + path, offline=True, wait_for_map=False,
                           browser=browser) as report:  # fmt: skip
                report.page.wait_for_function(
                    "(t) => document.body.innerText.includes(t)", arg=text
                )
                assert report.page.evaluate(
                    "() => !!document.querySelector('script[nonce], style[nonce]')"
                )  # its inline code runs by the nonce, not by 'unsafe-inline'
                report.assert_clean()  # no CSP violation, console error or failed request


def test_other_html_pages_have_the_strict_csp_too(client) -> None:
    for path in ("/docs", "/ogc?f=html", "/ogc/collections?f=html"):
        csp = client.get(path).headers["Content-Security-Policy"]
        assert "script-src 'self' 'nonce-" in csp and "unsafe" not in csp, (path, csp)
    assert client.get("/api/layers").headers["Content-Security-Policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )

"""Behind a reverse proxy on the same host: a real nginx, the README's block and a bare one.

nginx connects to the service from 127.0.0.1, on behalf of anyone: its requests must never
get the local demo's open reads. Two blocks are under test: the README's ``nginx`` block
(its ``listen``, ``server_name`` and upstream port set to the test's own), and the block a
careless deployer writes, ``proxy_pass`` alone (no forwarding header at all).
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from geomap import auth, create_app
from tests.browser import serve_app
from tests.test_maps import OneAtATime

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
requires_nginx = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx not installed: apt-get install nginx"
)
README = Path(__file__).resolve().parent.parent / "README.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_server_block() -> str:
    """The ``server { ... }`` block of the README's nginx example."""
    found = re.search(r"```nginx\n(server \{.*?\n\})\n```", README.read_text("utf-8"), re.S)
    assert found, "README.md has no ```nginx server { ... } block"
    return found[1]


#: What a careless deployer writes: nginx's defaults (HTTP/1.0 to the upstream,
#: ``Connection: close``, ``Host: 127.0.0.1:<port>``) and no forwarding header.
NAIVE_BLOCK = """server {
    listen 80;
    location / {
        proxy_pass http://127.0.0.1:5000;
    }
}"""


@pytest.fixture
def nginx_in_front() -> Iterator:
    """Start nginx on a free port in front of a backend port; yields (start, url)."""
    folder = Path(tempfile.mkdtemp(prefix="geomap-nginx-"))
    started: list[subprocess.Popen] = []

    def start(backend_port: int, block: str = "readme") -> str:
        port = _free_port()
        server = readme_server_block() if block == "readme" else NAIVE_BLOCK
        server = server.replace("listen 80;", f"listen 127.0.0.1:{port};")
        server = server.replace("http://127.0.0.1:5000", f"http://127.0.0.1:{backend_port}")
        temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        conf = f"""
daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp['body']};
    proxy_temp_path {temp['proxy']};
    fastcgi_temp_path {temp['fastcgi']};
    uwsgi_temp_path {temp['uwsgi']};
    scgi_temp_path {temp['scgi']};
{server}
}}
"""
        (folder / "nginx.conf").write_text(conf, encoding="utf-8")
        process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c",
             str(folder / "nginx.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        started.append(process)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(process.stderr.read().decode()) from None
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def _call(url: str, method: str = "GET", headers: dict[str, str] | None = None,
          body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request as a browser or curl makes it: HTTP/1.1, no ``Connection: close``.

    (Python's urllib sends ``Connection: close``, which no browser does.)
    """
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        data = b"" if method == "HEAD" else response.read()
        return response.status, dict(response.getheaders()), data
    finally:
        connection.close()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    status, _, data = _call(url, headers=headers)
    return status, json.loads(data)


@requires_nginx
@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_through_nginx_anonymous_callers_get_401(
    shared_url, connection, nginx_in_front, trusted_proxies
) -> None:
    # Open reads on (the demo behind a proxy: the worst case); off is the matrix below.
    app = create_app({"database_url": shared_url, "trusted_proxies": trusted_proxies,
                      "open_read": True, "log_level": "WARNING"})  # fmt: skip
    app.extensions["geomap_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint"
    )
    key, _ = auth.create_key(connection, "behind nginx", "viewer")
    with serve_app(OneAtATime(app)) as direct:
        proxied = nginx_in_front(int(direct.rsplit(":", 1)[1]))
        # Directly from this machine, as a browser: the local demo reads (open reads on).
        assert _get(direct + "/api/layers/teams")[0] == 200
        assert "counts" in _get(direct + "/healthz")[1]
        # Through the proxy, from this very machine too: nobody without a key.
        for path in ("/api/layers/teams", "/ogc/collections/teams/items", "/map/data/teams",
                     "/api/teams/nearest?lon=115.9&lat=28.66"):  # fmt: skip
            status, body = _get(proxied + path)
            assert status == 401, (path, body)
            assert body["error"]["code"] == "unauthorized"
        # Headers a client adds itself do not help either.
        spoofed = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
                   "Forwarded": "for=127.0.0.1"}  # fmt: skip
        assert _get(proxied + "/api/layers/teams", spoofed)[0] == 401
        assert _get(direct + "/api/layers/teams", spoofed)[0] == 401
        # The public status says nothing more than "ok" to a relayed caller.
        assert _get(proxied + "/healthz") == (200, {"status": "ok"})
        # With a key, through the proxy: served.
        status, body = _get(proxied + "/api/layers/teams", {"Authorization": f"Bearer {key}"})
        assert status == 200 and body["type"] == "FeatureCollection"
        # Trusting the proxy, the service writes links for the address clients use.
        status, landing = _get(proxied + "/ogc?f=json", {"Authorization": f"Bearer {key}"})
        assert status == 200
        self_link = next(link["href"] for link in landing["links"] if link["rel"] == "self")
        # (Untrusted, the service sees only nginx's Host header, without the port.)
        assert self_link.startswith(proxied + "/ogc") == bool(trusted_proxies), self_link


def test_trusted_proxies_give_the_client_address(shared_url) -> None:
    from flask import request

    from geomap.web import guard
    from geomap.web.spec import endpoint

    trusting = create_app({"database_url": shared_url, "trusted_proxies": 1})
    seen = {}

    @trusting.get("/__whoami")
    @endpoint("who is calling (test only)", permission="public")
    def whoami():
        seen.update(client=guard.client_address(request), peer=guard.peer_address(request),
                    local=guard.direct_local(request))  # fmt: skip
        return "ok"

    client = trusting.test_client()
    client.get("/__whoami", headers={"X-Forwarded-For": "203.0.113.9"},
               environ_base={"REMOTE_ADDR": "127.0.0.1"})  # fmt: skip
    assert seen == {"client": "203.0.113.9", "peer": "127.0.0.1", "local": False}
    client.get("/__whoami", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert seen == {"client": "127.0.0.1", "peer": "127.0.0.1", "local": True}


def test_a_client_forwarded_for_counts_only_from_a_trusted_proxy(shared_url) -> None:
    from flask import request

    from geomap.web import guard
    from geomap.web.spec import endpoint

    trusting = create_app({"database_url": shared_url, "trusted_proxies": 1,
                           "trusted_proxy_addresses": ("127.0.0.1", "10.9.0.0/16")})  # fmt: skip
    seen = {}

    @trusting.get("/__whoami")
    @endpoint("who is calling (test only)", permission="public")
    def whoami():
        seen.update(client=guard.client_address(request), root=request.url_root)
        return "ok"

    client = trusting.test_client()
    spoof = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Host": "evil.example"}
    # A client that reaches the service's port itself: its own headers are ignored.
    client.get("/__whoami", headers=spoof, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert seen == {"client": "203.0.113.5", "root": "http://localhost/"}
    # A proxy of the trusted network: believed (the last value is the one it appended).
    client.get("/__whoami", headers={"X-Forwarded-For": "1.1.1.1, 198.51.100.1"},
               environ_base={"REMOTE_ADDR": "10.9.3.4"})  # fmt: skip
    assert seen["client"] == "198.51.100.1"


def test_forwarded_prefix_only_when_set(make_app, connection) -> None:
    key, _ = auth.create_key(connection, "behind a proxy", "viewer")
    evil = {"X-Forwarded-Prefix": "//evil.example/x", "X-Forwarded-For": "198.51.100.1",
            "Authorization": f"Bearer {key}"}  # fmt: skip
    for forwarded_prefix, sent, expected in ((False, "/geomap", "http://localhost/ogc"),
                                             (True, "/geomap", "http://localhost/geomap/ogc"),
                                             (True, evil["X-Forwarded-Prefix"],
                                              "http://localhost/ogc")):  # fmt: skip
        app = make_app(trusted_proxies=1, forwarded_prefix=forwarded_prefix)
        answer = app.test_client().get("/ogc?f=json", headers={**evil,
                                                                "X-Forwarded-Prefix": sent})
        links = [link["href"] for link in answer.get_json()["links"]]
        assert all("evil" not in link for link in links), links
        self_link = next(link["href"] for link in answer.get_json()["links"]
                         if link["rel"] == "self")  # fmt: skip
        assert self_link.startswith(expected), (forwarded_prefix, sent, self_link)


def _operations(document: dict) -> list[tuple[str, str, bool]]:
    """(method, path, public) of every operation in an OpenAPI document.

    An operation is public when it declares no ``security`` (the call page, ``/healthz``'s
    status, the docs, sign-in): ``geomap.openapi`` writes one for every other.
    """
    return [(method, path, not operation.get("security"))
            for path, operations in document["paths"].items()
            for method, operation in operations.items()]  # fmt: skip


def _fill(path: str, ids: dict[str, object]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m[1], 1)), path)


@requires_nginx
@pytest.mark.parametrize("open_read", [False, True], ids=["default", "open-read"])
@pytest.mark.parametrize("block", ["naive", "readme"])
def test_through_nginx_a_keyless_caller_gets_nothing(
    nanchang_url, nanchang_connection, nginx_in_front, block, open_read
) -> None:
    """Every non-public operation of /openapi.json, without a credential, through nginx."""
    settings = {"database_url": nanchang_url, "open_read": open_read, "log_level": "WARNING",
                "trusted_proxies": 1 if block == "readme" else 0}  # fmt: skip
    app = create_app(settings)
    app.extensions["geomap_sessionmaker"] = sessionmaker(
        bind=nanchang_connection, join_transaction_mode="create_savepoint"
    )
    app.extensions["geomap_jobs_inline"] = True
    one = "SELECT min(id) FROM {}"
    ids = {name: nanchang_connection.exec_driver_sql(one.format(table)).scalar() or 1
           for name, table in (("team_id", "teams"), ("case_id", "cases"),
                               ("dispatch_id", "dispatches"), ("scenario_id", "scenarios"))}
    ids.update(layer_id="teams", collection_id="teams", featureId=ids["team_id"],
               job_id="00000000-0000-0000-0000-000000000000")  # fmt: skip
    document = app.test_client().get("/openapi.json").get_json()
    operations = _operations(document)
    assert len([op for op in operations if not op[2]]) > 60, "the matrix lost operations"
    leaks, answered = [], {}
    with serve_app(OneAtATime(app)) as direct:
        proxied = nginx_in_front(int(direct.rsplit(":", 1)[1]), block)
        for method, path, public in operations:
            if public:
                continue
            target = _fill(path, ids)
            body = None if method in ("get", "head", "delete") else b"{}"
            headers = {"Content-Type": "application/json"} if body else {}
            status, _, data = _call(proxied + target, method.upper(), headers, body)
            answered[(method, path)] = status
            if status < 400:  # 2xx or 3xx: served (a 404 would be a finding too, below)
                leaks.append((method.upper(), target, status, data[:120]))
        assert leaks == []
        # Nothing but 401/403: denied before the view, so not even "no such id" leaks.
        assert set(answered.values()) <= {401, 403}, {
            op: status for op, status in answered.items() if status not in (401, 403)
        }
        # The public status says "ok" and nothing more through the proxy.
        assert _get(proxied + "/healthz") == (200, {"status": "ok"})
        # Directly, as a browser on this machine: served only while open reads are on.
        assert _get(direct + "/api/layers/teams")[0] == (200 if open_read else 401)

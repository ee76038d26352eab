"""Behind a reverse proxy on the same host: a real nginx, running the README's own block.

nginx connects to the service from 127.0.0.1, on behalf of anyone: its requests must never
get the local demo's open reads. The README's ``nginx`` block is the configuration under
test (its ``listen``, ``server_name`` and upstream port are set to the test's own).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
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


@pytest.fixture
def nginx_in_front() -> Iterator:
    """Start nginx on a free port in front of a backend port; yields (start, url)."""
    folder = Path(tempfile.mkdtemp(prefix="geomap-nginx-"))
    started: list[subprocess.Popen] = []

    def start(backend_port: int) -> str:
        port = _free_port()
        server = readme_server_block()
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


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@requires_nginx
@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_through_nginx_anonymous_callers_get_401(
    shared_url, connection, nginx_in_front, trusted_proxies
) -> None:
    app = create_app({"database_url": shared_url, "trusted_proxies": trusted_proxies,
                      "log_level": "WARNING"})  # fmt: skip
    app.extensions["geomap_sessionmaker"] = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint"
    )
    key, _ = auth.create_key(connection, "behind nginx", "viewer")
    with serve_app(OneAtATime(app)) as direct:
        proxied = nginx_in_front(int(direct.rsplit(":", 1)[1]))
        # Directly from this machine: the local demo reads (open reads are on).
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

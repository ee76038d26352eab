"""A real HTTP server for the benchmarks: the app on werkzeug in a thread, on loopback."""

from __future__ import annotations

import http.client
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

from geomap import create_app


@contextmanager
def serve(url: str) -> Iterator[int]:
    """Serve the app for database ``url`` on 127.0.0.1; yields the port."""
    app = create_app({"database_url": url, "log_level": "WARNING"})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=5)


def get_json(port: int, path: str) -> dict:
    """GET a path on 127.0.0.1:port and decode the JSON answer (raises on non-200)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} → {response.status}: {body[:300]!r}")
        return json.loads(body)
    finally:
        conn.close()

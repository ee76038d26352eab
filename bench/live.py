"""Live updates: write → event in a browser, and 200 open event streams on 2 cores.

Figures and the baselines measured in the same run (``geomap serve``: gunicorn, 2
workers, on the default data):

* **write → event in the browser**, p50 and p95: a signed-in Chromium page holds an
  ``EventSource`` on ``/api/events``; the bench reports a case over HTTP and notes when
  the page's ``case.created`` handler runs (both clocks are this machine's). Baseline:
  the same page polling ``GET /api/cases?open=true`` every second (the cheapest way a
  page could notice without a stream), same writes.
* **200 concurrent streams** (loopback, one client thread reading all of them with
  ``selectors``): event latency from the write to each stream, p50/p99 over every
  delivery, and the database connections the server holds with 200 streams open against
  the ones it holds with none. Baseline: the same writes with one stream open.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import socket
import statistics
import time

import sqlalchemy as sa

from bench._env import line, settings_for
from bench._server import gunicorn
from geomap import auth, db

WRITES = 40
STREAMS = 200
GAP_S = 0.15


def _key(url: str) -> str:
    with db.get_engine(settings_for(url)).begin() as conn:
        return auth.create_key(conn, "bench live", "commander")[0]


def _report_case(port: int, key: str, title: str) -> float:
    """Report a case; returns the wall-clock time the request was sent."""
    body = json.dumps({"kind": "request", "severity": "low", "title": title,
                       "lon": 115.89, "lat": 28.68})  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = time.time()
    conn.request("POST", "/api/cases?k=0", body=body,
                 headers={"Authorization": f"Bearer {key}",
                          "Content-Type": "application/json"})  # fmt: skip
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 201:
        raise RuntimeError(f"case not reported: {response.status}")
    return sent


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- in the browser ------------------------------------------------------------------------
_PAGE_JS = """
async ([key, mode]) => {
  const signIn = await fetch('/api/session', {method: 'POST', credentials: 'same-origin',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({key})});
  if (!signIn.ok) throw new Error('sign-in ' + signIn.status);
  window.__seen = {};
  if (mode === 'stream') {
    const source = new EventSource('/api/events');
    source.addEventListener('case.created', (e) => {
      const event = JSON.parse(e.data);
      window.__seen[event.data.title] = performance.timeOrigin + performance.now();
    });
    await new Promise((resolve) => { source.onopen = resolve; });
  } else {
    const known = new Set();
    const poll = async () => {
      const r = await fetch('/api/cases?open=true&kind=request&limit=1000',
                            {credentials: 'same-origin'});
      const answer = await r.json();
      const now = performance.timeOrigin + performance.now();
      for (const c of answer.cases) {
        if (!known.has(c.id)) { known.add(c.id); window.__seen[c.title] ??= now; }
      }
    };
    await poll();
    window.__poller = setInterval(poll, 1000);
  }
}
"""


def _browser_latencies(port: int, key: str, mode: str) -> list[float]:
    from tests.browser import launch_browser

    latencies = []
    with launch_browser() as browser:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/map?layers=districts")  # its CSP allows fetch
        page.evaluate(_PAGE_JS, [key, mode])
        time.sleep(0.5)
        sent = {}
        for i in range(WRITES):
            title = f"bench {mode} {i} {time.time()}"
            sent[title] = _report_case(port, key, title)
            time.sleep(GAP_S + (0.37 * i) % 0.5)  # spread over the polling phase
        deadline = time.monotonic() + 10
        while True:
            seen = page.evaluate("window.__seen")
            if all(t in seen for t in sent) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        latencies = [(seen[t] / 1000.0 - s) * 1000.0 for t, s in sent.items() if t in seen]
        if len(latencies) < len(sent):
            raise RuntimeError(f"{len(sent) - len(latencies)} writes never reached the page")
        page.close()
    return latencies


def bench_browser(url: str, port: int, key: str) -> None:
    streamed = _browser_latencies(port, key, "stream")
    polled = _browser_latencies(port, key, "poll")
    line("write → event in Chromium (EventSource), p50", statistics.median(streamed), "ms",
         statistics.median(polled), "polling /api/cases every 1 s", goal="≤ 300 ms")  # fmt: skip
    line("same, p95", _percentile(streamed, 0.95), "ms", _percentile(polled, 0.95),
         "polling every 1 s")  # fmt: skip


# -- many streams --------------------------------------------------------------------------
def _open_streams(port: int, key: str, n: int) -> list[socket.socket]:
    request = (
        f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    sockets = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(request)
        head = s.recv(4096)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream refused: {head[:80]!r}")
        s.setblocking(False)
        sockets.append(s)
    return sockets


def _stream_latencies(port: int, key: str, n: int) -> list[float]:
    """Latency of every delivery of WRITES case events to n open streams (ms)."""
    sockets = _open_streams(port, key, n)
    selector = selectors.DefaultSelector()
    buffers = {}
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
        buffers[s] = b""
    time.sleep(1.0)
    sent: dict[str, float] = {}
    arrivals: list[tuple[str, float]] = []

    def drain(until: float) -> None:
        while time.monotonic() < until:
            for selected, _ in selector.select(timeout=0.01):
                sock = selected.fileobj
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                now = time.time()
                buffers[sock] += chunk
                while b"\n\n" in buffers[sock]:
                    message, buffers[sock] = buffers[sock].split(b"\n\n", 1)
                    for field in message.split(b"\n"):
                        if field.startswith(b"data: "):
                            data = json.loads(field[6:])
                            if data.get("kind") == "case.created":
                                arrivals.append((data["data"]["title"], now))

    try:
        for i in range(WRITES):
            title = f"bench streams {n} {i} {time.time()}"
            sent[title] = _report_case(port, key, title)
            drain(time.monotonic() + GAP_S)
        drain(time.monotonic() + 3.0)
    finally:
        for s in sockets:
            s.close()
    latencies = [(at - sent[title]) * 1000.0 for title, at in arrivals if title in sent]
    expected = WRITES * n
    if len(latencies) < expected:
        raise RuntimeError(f"{expected - len(latencies)} of {expected} deliveries missing")
    return latencies


def _connections(url: str) -> int:
    engine = sa.create_engine(db.database_url(settings_for(url)), poolclass=sa.NullPool)
    with engine.connect() as conn:
        count = conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )).scalar_one()  # fmt: skip
    engine.dispose()
    return int(count)


def bench_streams(url: str, port: int, key: str) -> None:
    one = _stream_latencies(port, key, 1)
    idle = _connections(url)
    sockets = _open_streams(port, key, STREAMS)
    time.sleep(1.0)
    with_streams = _connections(url)
    for s in sockets:
        s.close()
    time.sleep(1.0)
    many = _stream_latencies(port, key, STREAMS)
    line(f"{STREAMS} streams, event latency p99 over {len(many):,} deliveries",
         _percentile(many, 0.99), "ms", _percentile(one, 0.99), "one stream",
         goal="≤ 1,000 ms")  # fmt: skip
    line(f"{STREAMS} streams, event latency p50", statistics.median(many), "ms",
         statistics.median(one), "one stream")  # fmt: skip
    print(f"  database connections of the server: {idle} with no stream, {with_streams} "
          f"with {STREAMS} streams open (goal: no connection per stream)", flush=True)


def run(url: str) -> None:
    key = _key(url)
    # Room per worker for every stream on one worker, twice: the first 200 are closed
    # just before the second 200 open, and a worker notices a closed stream only at its
    # next heartbeat (one worker may also take most of the connections).
    os.environ["GEOMAP_EVENT_STREAMS"] = str(2 * STREAMS + 50)
    os.environ["GEOMAP_RATE_LIMIT_RPS"] = "0"  # the bench's own writes are not the load
    try:
        with gunicorn(url, workers=2) as port:
            bench_browser(url, port, key)
            bench_streams(url, port, key)
    finally:
        os.environ.pop("GEOMAP_EVENT_STREAMS", None)
        os.environ.pop("GEOMAP_RATE_LIMIT_RPS", None)

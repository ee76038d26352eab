"""Browser test harness: load a page in headless Chromium and report what happened.

A helper module for tests, not a test file. It drives Debian's ``/usr/bin/chromium``
through Playwright (the PyPI package; ``playwright install`` is never needed or run)::

    from tests.browser import open_page, requires_chromium

    @requires_chromium
    def test_map(live_url):
        with open_page(live_url + "/map", offline=True) as report:
            report.assert_clean()                 # no failed/external request, no JS error
            assert report.leaflet_summary()["svg_paths"] == 12
            report.screenshot("map.png")          # -> test-artifacts/map.png

:func:`open_page` records every request (and whether it failed), every request that left
the machine (127.0.0.1/localhost, ``file:`` and ``data:`` count as local), console and page
errors, the bytes loaded and the time to interactive, i.e. milliseconds from navigation start
to the last Leaflet event of page start-up (map ready, a layer added to or removed from a
map, GeoJSON data added, a tile of a tile layer drawn, the initial view's zoom/move and
marker-cluster animations ending).
``offline=True`` aborts every non-local request (and for a ``file:`` page switches the
network off entirely), proving that a page needs no network. :func:`serve_app` runs a WSGI
app on a free port of 127.0.0.1 in a real server thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Why the browser tests skip: the only reason they may.
CHROMIUM_MISSING = "chromium not installed: apt-get install chromium"
#: Skip marker for tests that need the browser.
requires_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING)

#: Screenshots and other outputs of browser tests (git-ignored).
ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "test-artifacts"

# Playwright adds --headless and a fresh temporary --user-data-dir (deleted on close) itself.
# The network flags matter on a closed network: without them Chromium keeps trying to reach
# Google's update, sync and field-trial services.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})

# Runs before any script of the page. It hooks Leaflet's maps and GeoJSON layers as soon as
# Leaflet is loaded, so that start-up can be timed without changing the page.
_PROBE_JS = """
(() => {
  if (window.__geomapProbe) return;
  const probe = { maps: [], last: null, mapReady: null, geojsonData: null, layerAdds: 0 };
  const mark = (key) => { const t = performance.now(); probe[key] = t; probe.last = t; };
  const hook = (L) => {
    if (!L || !L.Map || L.__geomapProbe) return;
    L.__geomapProbe = true;
    L.Map.addInitHook(function () {
      probe.maps.push(this);
      this.on('layeradd', (e) => {
        probe.layerAdds += 1;
        mark('lastLayerAdd');
        if (L.MarkerClusterGroup && e.layer instanceof L.MarkerClusterGroup) {
          e.layer.on('animationend', () => mark('lastViewChange'));
        }
        // Tiles (vector or raster) drawn count as start-up until the last one in view.
        if (L.GridLayer && e.layer instanceof L.GridLayer) {
          e.layer.on('tileload', () => mark('lastTile'));
        }
      });
      // The initial view may animate (fitBounds); clusters are redrawn when it ends.
      this.on('layerremove zoomend moveend', () => mark('lastViewChange'));
      this.whenReady(() => mark('mapReady'));
    });
    if (L.GeoJSON) {
      const addData = L.GeoJSON.prototype.addData;
      L.GeoJSON.prototype.addData = function (data) {
        const result = addData.call(this, data);
        mark('geojsonData');
        return result;
      };
    }
  };
  // Hook Leaflet as soon as it exists, without touching window.L (a page whose Leaflet
  // failed must still report "L is not defined"). The parser runs a microtask checkpoint
  // before every inline script, and an external script fires "load" right after running:
  // either way the hook is in place before the page's own code creates a map.
  const observer = new MutationObserver(() => tryHook());
  const tryHook = () => {
    if (!window.L) return;
    try { hook(window.L); } catch (e) { /* never break a page */ }
    observer.disconnect();
    document.removeEventListener('load', tryHook, true);
  };
  observer.observe(document, { childList: true, subtree: true });
  document.addEventListener('load', tryHook, true);
  window.__geomapProbe = probe;
  // Content-Security-Policy violations: the pages must run under their strict policy.
  probe.csp = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    probe.csp.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
      (e.sourceFile ? ' (' + e.sourceFile + ':' + e.lineNumber + ')' : '') +
      (e.sample ? ': ' + e.sample : ''));
  });
})();
"""

# What a Leaflet page shows: counted both from Leaflet's objects and from the DOM.
_SUMMARY_JS = """
() => {
  const probe = window.__geomapProbe || { maps: [] };
  const L = window.L;
  const out = {
    maps: probe.maps.length, loaded_maps: probe.maps.filter((m) => m._loaded).length,
    layers: 0, geojson_layers: 0, geojson_features: 0, cluster_groups: 0,
    clustered_markers: 0,
  };
  for (const map of probe.maps) {
    map.eachLayer((layer) => {
      out.layers += 1;
      if (L && L.GeoJSON && layer instanceof L.GeoJSON) {
        out.geojson_layers += 1;
        out.geojson_features += layer.getLayers().length;
      }
      if (L && L.MarkerClusterGroup && layer instanceof L.MarkerClusterGroup) {
        out.cluster_groups += 1;
        out.clustered_markers += layer.getLayers().length;
      }
    });
  }
  const all = (selector) => Array.from(document.querySelectorAll(selector));
  out.svg_paths = all('.leaflet-overlay-pane svg path').length;
  // Every marker element: awesome-markers replace Leaflet's 'leaflet-marker-icon' class.
  out.marker_icons = all('.leaflet-marker-pane > *').length;
  out.cluster_icons = all('.leaflet-marker-pane .marker-cluster').length;
  out.cluster_icon_total = all('.leaflet-marker-pane .marker-cluster span')
    .reduce((sum, el) => sum + (parseInt(el.textContent, 10) || 0), 0);
  out.awesome_markers = all('.leaflet-marker-pane .awesome-marker').length;
  out.broken_images = all('img').filter((img) => img.complete && img.naturalWidth === 0).length;
  out.controls = {
    layers: all('.leaflet-control-layers').length,
    search: all('.leaflet-control-search').length,
    fullscreen: all('.leaflet-control-zoom-fullscreen').length,
    zoom: all('.leaflet-control-zoom').length,
  };
  return out;
}
"""

_TIMINGS_JS = """
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const probe = window.__geomapProbe || {};
  return {
    dom_content_loaded: nav ? nav.domContentLoadedEventEnd : null,
    load: nav ? nav.loadEventEnd : null,
    map_ready: probe.mapReady ?? null,
    last_layer_add: probe.lastLayerAdd ?? null,
    last_view_change: probe.lastViewChange ?? null,
    geojson_data: probe.geojsonData ?? null,
    last_tile: probe.lastTile ?? null,
    interactive: probe.last ?? null,
  };
}
"""

_MAPS_READY_JS = (
    "() => { const p = window.__geomapProbe;"
    " return !!p && p.maps.length > 0 && p.maps.every((m) => m._loaded); }"
)


def is_local(url: str) -> bool:
    """Whether loading ``url`` stays on this machine (loopback, ``file:``, ``data:``...).

    Parameters
    ----------
    url : str
        A request URL.

    Returns
    -------
    bool
    """
    parts = urlsplit(url)
    if parts.scheme in _LOCAL_SCHEMES:
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in _LOCAL_HOSTS


@dataclass
class RequestRecord:
    """One request the page made."""

    url: str
    method: str
    resource_type: str
    status: int | None = None
    failure: str | None = None
    body_bytes: int = 0
    finished: bool = False
    _request: Any = field(default=None, repr=False, compare=False)

    @property
    def local(self) -> bool:
        """Whether the request stayed on this machine."""
        return is_local(self.url)

    @property
    def failed(self) -> bool:
        """A network failure (aborted, refused...) or an HTTP status of 400 or more."""
        return self.failure is not None or (self.status is not None and self.status >= 400)


@dataclass
class PageReport:
    """What happened while a page loaded; live (``page``, :meth:`evaluate`) inside
    :func:`open_page`'s ``with`` block, a record after it."""

    url: str
    offline: bool
    page: Any  # playwright.sync_api.Page
    requests: list[RequestRecord] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    #: Content-Security-Policy violations the page reported (directive, what, where).
    csp_violations: list[str] = field(default_factory=list)
    #: Milliseconds since navigation start: dom_content_loaded, load, map_ready,
    #: last_layer_add, last_view_change, geojson_data, last_tile and interactive (the
    #: latest Leaflet event of the lot), read once the page has settled.
    timings: dict[str, float | None] = field(default_factory=dict)

    @property
    def failed_requests(self) -> list[RequestRecord]:
        """Requests that failed or answered 4xx/5xx."""
        return [r for r in self.requests if r.failed]

    @property
    def external_requests(self) -> list[RequestRecord]:
        """Requests the page tried to send off the machine (even if ``offline`` blocked them)."""
        return [r for r in self.requests if not r.local]

    @property
    def bytes_loaded(self) -> int:
        """Response body bytes of every finished request (the page itself included)."""
        return sum(r.body_bytes for r in self.requests)

    @property
    def time_to_interactive_ms(self) -> float | None:
        """Navigation start to the last Leaflet start-up event (None: no Leaflet map)."""
        return self.timings.get("interactive")

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        """Evaluate JavaScript in the page (a promise is awaited), as Playwright does.

        Parameters
        ----------
        expression : str
            A JS expression or function, e.g. ``"() => document.title"``.
        arg : any, optional
            JSON-serialisable argument passed to the function.

        Returns
        -------
        Any
            The JSON-serialisable result.
        """
        return self.page.evaluate(expression, arg)

    def page_point(self, lon: float, lat: float) -> tuple[float, float]:
        """Where a lon/lat of the page's map (``window.geomap.map``) is, in page pixels:
        what a pointer moves to or clicks."""
        x, y = self.page.evaluate(
            """([lon, lat]) => { const m = window.geomap.map;
                 const p = m.latLngToContainerPoint([lat, lon]);
                 const box = m.getContainer().getBoundingClientRect();
                 return [box.left + p.x, box.top + p.y]; }""",
            [lon, lat],
        )
        return x, y

    def leaflet_summary(self) -> dict[str, Any]:
        """Counts of what the Leaflet page shows.

        Returns
        -------
        dict
            ``maps``, ``loaded_maps``, ``layers`` (on the maps), ``geojson_layers``,
            ``geojson_features``, ``cluster_groups``, ``clustered_markers`` (markers held
            by cluster groups), ``svg_paths`` (vector shapes drawn), ``marker_icons``,
            ``cluster_icons``, ``cluster_icon_total`` (sum of the numbers on cluster icons),
            ``awesome_markers``, ``broken_images`` and ``controls`` (counts by kind).
        """
        return self.page.evaluate(_SUMMARY_JS)

    def screenshot(self, path: str | Path) -> Path:
        """Save a PNG of the viewport; a bare or relative name goes to ``test-artifacts/``.

        Parameters
        ----------
        path : str or Path
            File name or path.

        Returns
        -------
        Path
            Where the image was written.
        """
        target = Path(path)
        if not target.is_absolute():
            target = ARTIFACTS_DIR / target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(target))
        return target

    def problems(self) -> list[str]:
        """Everything wrong with the load, one line each (empty: clean)."""
        lines = [f"request left the machine: {r.method} {r.url}" for r in self.external_requests]
        lines += [
            f"request failed: {r.url} ({r.failure or r.status})" for r in self.failed_requests
        ]
        lines += [f"console error: {text}" for text in self.console_errors]
        lines += [f"page error: {text}" for text in self.page_errors]
        lines += [f"CSP violation: {text}" for text in self.csp_violations]
        return lines

    def assert_clean(self) -> None:
        """Fail (AssertionError listing them all) on any of :meth:`problems`."""
        self.read_csp_violations()
        problems = self.problems()
        assert not problems, f"{self.url}:\n  " + "\n  ".join(problems)

    def read_csp_violations(self) -> list[str]:
        """The page's CSP violations so far (also kept in :attr:`csp_violations`)."""
        try:
            found = self.page.evaluate("() => (window.__geomapProbe || {}).csp || []")
        except Exception:  # the page is gone
            return self.csp_violations
        self.csp_violations = list(found)
        return self.csp_violations

    def _finish(self) -> None:
        # Sizes come from the browser after a request finished; asked here, in the main
        # flow, because blocking calls are not allowed inside Playwright's event handlers.
        for record in self.requests:
            if record.finished and record._request is not None and not record.body_bytes:
                try:
                    record.body_bytes = int(record._request.sizes()["responseBodySize"])
                except Exception:  # the page navigated away and the request is gone
                    record.body_bytes = 0


@contextmanager
def launch_browser() -> Iterator[Any]:
    """Start headless Chromium (``/usr/bin/chromium``) for several :func:`open_page` calls.

    Each page gets its own browser context (no shared cache or storage); the browser runs
    with a fresh temporary profile that Playwright deletes on close.

    Yields
    ------
    playwright.sync_api.Browser
    """
    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_MISSING)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(
    url: str,
    *,
    offline: bool = False,
    browser: Any = None,
    viewport: tuple[int, int] = (1280, 800),
    wait_for_map: bool = True,
    timeout_s: float = 15.0,
) -> Iterator[PageReport]:
    """Load ``url`` in headless Chromium and record what happens.

    Returns once the page has settled: the ``load`` event, no network activity for 500 ms
    (Playwright's ``networkidle``) and, with ``wait_for_map``, every Leaflet map loaded.

    Parameters
    ----------
    url : str
        ``http://127.0.0.1:PORT/...`` or ``file:///...``.
    offline : bool
        Abort every request that would leave the machine; for a ``file:`` page, also switch
        the network off entirely. Attempts are still recorded (``external_requests``).
    browser : playwright Browser, optional
        From :func:`launch_browser`, to share one browser between pages (faster); by
        default one is started for this page.
    viewport : (width, height)
        Window size in CSS pixels.
    wait_for_map : bool
        Wait for a Leaflet map to be loaded (fails with a timeout if none appears).
    timeout_s : float
        Upper bound on loading and on each wait.

    Yields
    ------
    PageReport
        Live inside the ``with`` block.
    """
    if browser is None:
        with (
            launch_browser() as own_browser,
            open_page(
                url,
                offline=offline,
                browser=own_browser,
                viewport=viewport,
                wait_for_map=wait_for_map,
                timeout_s=timeout_s,
            ) as report,
        ):
            yield report
        return

    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        context.set_default_timeout(timeout_s * 1000)
        context.add_init_script(_PROBE_JS)
        if offline:
            _block_network(context, file_page=urlsplit(url).scheme == "file")
        page = context.new_page()
        report = PageReport(url=url, offline=offline, page=page)
        _record(page, report)
        page.goto(url, wait_until="load")
        _wait_network_idle(page, report, idle_ms=500, timeout_s=timeout_s)
        if wait_for_map:
            page.wait_for_function(_MAPS_READY_JS)
            # Marker clusters and GeoJSON data may arrive in a later task: wait for a quiet
            # spell without Leaflet start-up events before timing.
            _wait_until_quiet(page, quiet_ms=300, timeout_s=timeout_s)
        report.timings = page.evaluate(_TIMINGS_JS)
        report._finish()
        report.read_csp_violations()
        yield report
        report._finish()
    finally:
        context.close()


def _block_network(context: Any, *, file_page: bool) -> None:
    def route(route: Any) -> None:
        if is_local(route.request.url):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    context.route("**/*", route)
    if file_page:
        # A file: page needs no network at all, loopback included.
        context.set_offline(True)


def _record(page: Any, report: PageReport) -> None:
    by_request: dict[int, RequestRecord] = {}

    def on_request(request: Any) -> None:
        record = RequestRecord(
            url=request.url,
            method=request.method,
            resource_type=request.resource_type,
            _request=request,
        )
        by_request[id(request)] = record
        report.requests.append(record)

    def on_response(response: Any) -> None:
        record = by_request.get(id(response.request))
        if record is not None:
            record.status = response.status

    def on_finished(request: Any) -> None:
        record = by_request.get(id(request))
        if record is not None:
            record.finished = True

    def on_failed(request: Any) -> None:
        record = by_request.get(id(request))
        if record is not None:
            record.failure = request.failure or "failed"

    def on_console(message: Any) -> None:
        if message.type == "error":
            report.console_errors.append(message.text)

    page.on("request", on_request)
    page.on("response", on_response)
    page.on("requestfinished", on_finished)
    page.on("requestfailed", on_failed)
    page.on("console", on_console)
    page.on("pageerror", lambda error: report.page_errors.append(str(error)))


#: Requests that stay open by design (Server-Sent Events): never "in flight" for idleness.
_STREAMING = frozenset({"eventsource"})


def _wait_network_idle(page: Any, report: PageReport, *, idle_ms: int, timeout_s: float) -> None:
    # Playwright's "networkidle" (no request for 500 ms) never comes to a page that keeps
    # an event stream open: the same wait, the streams left out.
    deadline = time.monotonic() + timeout_s
    idle_since = None
    while True:
        busy = any(
            not r.finished and r.failure is None and r.resource_type not in _STREAMING
            for r in report.requests
        )
        now = time.monotonic()
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif (now - idle_since) * 1000 >= idle_ms:
            return
        if now > deadline:
            raise TimeoutError(f"the page kept loading for {timeout_s} s")
        page.wait_for_timeout(50)


def _wait_until_quiet(page: Any, *, quiet_ms: int, timeout_s: float) -> None:
    # Quiet: no zoom or marker-cluster animation running (MarkerCluster swaps its cluster
    # icons 200 ms after a zoom ends) and no Leaflet start-up event for quiet_ms.
    page.wait_for_function(
        "(quiet) => { const p = window.__geomapProbe;"
        " if (!p || p.last === null) return false;"
        " if (document.querySelector('.leaflet-cluster-anim, .leaflet-zoom-anim')) return false;"
        " return performance.now() - p.last >= quiet; }",
        arg=quiet_ms,
        timeout=timeout_s * 1000,
        polling=50,
    )


@contextmanager
def serve_app(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a WSGI app (e.g. Flask) on a free port in a real server thread.

    Parameters
    ----------
    app : WSGI application
    host : str
        Loopback address to bind.

    Yields
    ------
    str
        The base URL, e.g. ``http://127.0.0.1:41234``.
    """
    from werkzeug.serving import make_server

    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        if hasattr(app, "extensions"):  # a Flask app: its job runners stop with its server
            from geomap.api import plans

            plans.stop_runners(app)


def at_once(port: int, requests: list[tuple[str, str, dict, dict | None]]) -> list[tuple]:
    """Send requests to a served app together, each on its own connection, released at once.

    Parameters
    ----------
    port : int
        The loopback port :func:`serve_app` serves on.
    requests : list of tuple
        ``(method, path, headers, JSON body or None)``.

    Returns
    -------
    list of tuple
        ``(status, headers, body bytes)`` per request, in their order.
    """
    import http.client
    import json

    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in requests]
    for c in connections:
        c.connect()  # connected before the barrier: the requests leave together
    barrier = threading.Barrier(len(requests))
    answers: list = [None] * len(requests)

    def fire(i: int) -> None:
        method, path, headers, body = requests[i]
        barrier.wait()
        connections[i].request(method, path, body=json.dumps(body) if body is not None else None,
                               headers={"Content-Type": "application/json", **headers})  # fmt: skip
        response = connections[i].getresponse()
        answers[i] = (response.status, dict(response.getheaders()), response.read())

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in connections:
        c.close()
    return answers


def http_get(url: str, headers: dict[str, str] | None = None,
             timeout: float = 60) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """A GET as a browser sends it: HTTP/1.1 without ``Connection: close`` (urllib adds one,
    and a local open read refuses a caller that sends it, as nginx does by default).

    Parameters
    ----------
    url : str
        An ``http://`` URL.
    headers : dict, optional
        Request headers.
    timeout : float, default 60
        Seconds.

    Returns
    -------
    tuple
        ``(status, headers, body)``.
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                     headers=headers or {})  # fmt: skip
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()

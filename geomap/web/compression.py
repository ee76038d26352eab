"""Compressed, revalidated answers: gzip and a strong ETag on every GET, in one place.

The map pages load megabytes of layers, analyses and scripts; sent as they are, the
circles page alone is 25 MB. Every non-streamed ``200`` answer to a GET (or HEAD) gets,
after its view has run (:func:`init_app`):

* a strong ``ETag`` from a hash of its body, and ``304 Not Modified`` (no body) when the
  request's ``If-None-Match`` names it: a reload of unchanged data costs a round trip;
* ``Content-Encoding: gzip`` when the client accepts it, the type compresses (text, JSON,
  JavaScript, SVG, vector tiles) and the body is at least :data:`GZIP_MIN_BYTES`. The
  gzip form has its own ETag (``"<hash>-gz"``): two encodings are two representations;
* ``Vary: Accept-Encoding`` *added* to whatever ``Vary`` the answer already has.

Streamed answers (the GeoJSON of ``/api/layers/<id>``, OGC items) are left as they are:
their body is not in memory. Views that keep a payload between requests (the maps'
layer documents, analysis answers: :mod:`geomap.web.keep`) return a :class:`Payload`
through :func:`payload_response`, which carries its hash and compresses once.

Static files (``/static/...``: vendored Leaflet, plugins, fonts, our module) are served by
:func:`_static_file` instead of Flask's: read and compressed once per file and
modification time, revalidated by ETag, and cached for a year when the URL carries a
version (``?v=``, which our own module's links do).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import threading
from collections import OrderedDict
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

#: Bodies smaller than this are sent as they are: gzip saves little and costs a header.
GZIP_MIN_BYTES = 1024
#: Level for answers compressed per request (about 4x smaller, a few ms per megabyte).
GZIP_LEVEL = 5
#: Level for static files and kept payloads, compressed once.
GZIP_LEVEL_ONCE = 9
#: Media types worth compressing besides ``text/*`` and ``*+json``/``*+xml``.
COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/x-protobuf",
        "application/vnd.mapbox-vector-tile",
        "image/svg+xml",
    }
)
#: Gzip forms of answers built per request, by ETag: the same answer asked again (a
#: reload, another planner) is compressed once. Bounded in bytes.
GZIP_CACHE_BYTES = 32 * 1024 * 1024
#: ``Cache-Control`` of a static file asked for with a version (``?v=...``).
IMMUTABLE = "public, max-age=31536000, immutable"


def compressible(mimetype: str | None) -> bool:
    """Whether answers of this media type are worth gzip-compressing."""
    if not mimetype:
        return False
    return (
        mimetype.startswith("text/")
        or mimetype in COMPRESSIBLE
        or mimetype.endswith(("+json", "+xml"))
    )


class Payload:
    """A response body with its strong ETag and (made once, on first need) its gzip form.

    Parameters
    ----------
    body : bytes
    level : int
        Gzip level used when the compressed form is first asked for.
    """

    def __init__(self, body: bytes, *, level: int = GZIP_LEVEL_ONCE) -> None:
        self.body = body
        self.etag = hashlib.blake2b(body, digest_size=16).hexdigest()
        self.level = level
        self._gzipped: bytes | None = None
        #: The media type it is sent as (kept answers remember it).
        self.mimetype: str | None = None

    def __len__(self) -> int:
        return len(self.body)

    @property
    def gzipped(self) -> bytes:
        """The body gzip-compressed (mtime 0: the same body always gives the same bytes)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=self.level, mtime=0)
        return self._gzipped

    @property
    def size(self) -> int:
        """Bytes held (body and, once made, its gzip form)."""
        return len(self.body) + len(self._gzipped or b"")


def payload_response(
    payload: Payload, mimetype: str, *, cache_control: str | None = "no-cache"
) -> Response:
    """A response for ``payload``: the app's hook adds ETag, 304 and gzip from it.

    Parameters
    ----------
    payload : Payload
    mimetype : str
    cache_control : str, optional
        ``no-cache`` by default: browsers keep the body but ask (cheaply) each time.

    Returns
    -------
    flask.Response
    """
    response = Response(payload.body, mimetype=mimetype)
    response.geomap_payload = payload  # type: ignore[attr-defined]
    if cache_control:
        response.headers["Cache-Control"] = cache_control
    return response


class _GzipCache:
    """Gzip forms by ETag, least recently used dropped first, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        with self._lock:
            found = self._items.get(etag)
            if found is not None:
                self._items.move_to_end(etag)
            return found

    def put(self, etag: str, gzipped: bytes) -> None:
        if len(gzipped) > self.max_bytes // 4:
            return
        with self._lock:
            if etag in self._items:
                return
            self._items[etag] = gzipped
            self._bytes += len(gzipped)
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


def _accepts_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def finish(response: Response) -> Response:
    """ETag, ``304`` and gzip for a finished GET answer (see the module docstring).

    Parameters
    ----------
    response : flask.Response
        Changed in place.

    Returns
    -------
    flask.Response
    """
    if request.method not in ("GET", "HEAD") or response.status_code != 200:
        return response
    if response.direct_passthrough or response.is_streamed:
        return response
    if "Content-Encoding" in response.headers:
        return response  # encoded by its view: not ours to change
    payload: Payload | None = getattr(response, "geomap_payload", None)
    if payload is None:
        if response.get_etag()[0]:
            return response  # the view chose its own validator
        payload = Payload(response.get_data(), level=GZIP_LEVEL)
        cached = _gzip_cache().get(payload.etag)
        if cached is not None:
            payload._gzipped = cached
    use_gzip = False
    if compressible(response.mimetype):
        response.vary.add("Accept-Encoding")
        use_gzip = len(payload) >= GZIP_MIN_BYTES and _accepts_gzip()
    etag = payload.etag + ("-gz" if use_gzip else "")
    response.set_etag(etag)
    if request.if_none_match and request.if_none_match.contains_weak(etag):
        response.status_code = 304
        response.set_data(b"")
        return response
    if use_gzip:
        fresh = payload._gzipped is None
        body = payload.gzipped
        if fresh and getattr(response, "geomap_payload", None) is None:
            _gzip_cache().put(payload.etag, body)
        response.set_data(body)
        response.headers["Content-Encoding"] = "gzip"
    return response


def _gzip_cache() -> _GzipCache:
    return current_app.extensions["geomap_gzip_cache"]


class _StaticFiles:
    """Static files read and compressed once per file and modification time."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._kept: dict[str, tuple[tuple[int, int], Payload]] = {}
        self._lock = threading.Lock()

    def payload(self, filename: str) -> tuple[Payload, str]:
        path = safe_join(self.folder, filename)
        if path is None or not os.path.isfile(path):
            raise NotFound(f"no static file {filename!r}")
        stat = os.stat(path)
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            kept = self._kept.get(path)
        if kept is None or kept[0] != key:
            with open(path, "rb") as handle:
                payload = Payload(handle.read(), level=GZIP_LEVEL_ONCE)
            kept = (key, payload)
            with self._lock:
                self._kept[path] = kept
        mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return kept[1], mimetype


def _static_file(filename: str) -> Response:
    files: _StaticFiles = current_app.extensions["geomap_static_files"]
    payload, mimetype = files.payload(filename)
    cache_control = IMMUTABLE if request.args.get("v") else "no-cache"
    return payload_response(payload, mimetype, cache_control=cache_control)


def init_app(app: Any) -> None:
    """Install the hook on every answer of ``app``, and serve its static files.

    Register it before any hook that sets headers: Flask runs ``after_request`` hooks in
    reverse order, so this one runs last and sees (and adds to) their ``Vary``.
    """
    app.extensions["geomap_gzip_cache"] = _GzipCache(GZIP_CACHE_BYTES)
    if app.static_folder and "static" in app.view_functions:
        app.extensions["geomap_static_files"] = _StaticFiles(app.static_folder)
        app.view_functions["static"] = _static_file
    app.after_request(finish)

"""What every request must be before a view sees it, and what it may cost.

* **Proxies.** With ``trusted_proxies`` = N > 0 the app is wrapped in werkzeug's
  ``ProxyFix`` (N hops of ``X-Forwarded-For/-Proto/-Host/-Port/-Prefix``): the client
  address, scheme and host are the ones the proxy saw. :func:`direct_local` tells a caller
  on this machine talking to us *directly* (a loopback peer whose request carries no proxy
  header) from one relayed by a proxy on this machine: only the former gets the local
  demo's open reads (``geomap.web.access``), whatever ``trusted_proxies`` says.
* **Host.** The Host header (or the trusted proxy's ``X-Forwarded-Host``) must be one of
  ``allowed_hosts``: a page of another site whose name resolves to 127.0.0.1 (DNS
  rebinding) cannot use the local demo through the browser.
* **Input.** Every query parameter and path segment is text PostgreSQL can carry
  (:func:`geomap.params.check_text`: no NUL, no lone surrogate, bounded length); bodies are
  limited to ``max_body_bytes`` (413 unread) and parsed by :func:`json_body`.
* **Cost.** A token bucket per caller (:class:`TokenBuckets`, 429 with ``Retry-After``), and
  at most ``heavy_requests`` analyses at once per process (:func:`heavy`, else 503 with
  ``Retry-After``), so that cheap requests keep their threads and connections.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from geomap.auth.permissions import is_loopback
from geomap.errors import Busy, ConfigError, InvalidInput, NotFound, RateLimited
from geomap.params import check_schema, check_text, parse_json_body

#: Headers a reverse proxy adds; a request carrying any of them was relayed. (Every
#: ``X-Forwarded-*`` counts too: see :func:`relayed`.)
PROXY_HEADERS = ("Forwarded", "Via", "X-Real-IP", "X-Client-IP", "True-Client-IP",
                 "X-Varnish", "X-Original-Forwarded-For")  # fmt: skip
#: Host names that mean "this machine" (the Host header of a local browser or curl).
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
#: Callers tracked by the rate limiter at most (the least recently seen are forgotten).
MAX_TRACKED_CALLERS = 10_000


def peer_address(req: Any) -> str | None:
    """The address of the TCP peer itself (before ProxyFix replaced it by the client's)."""
    original = req.environ.get("werkzeug.proxy_fix.orig") or {}
    return original.get("REMOTE_ADDR") or req.environ.get("REMOTE_ADDR")


def relayed(req: Any) -> bool:
    """Whether the request carries a header that a proxy adds (it was relayed).

    ProxyFix reads these headers but leaves them in place, so this holds behind it too.
    """
    return any(name in req.headers for name in PROXY_HEADERS) or any(
        name.lower().startswith("x-forwarded-") for name, _ in req.headers
    )


def loopback_host(host: str) -> bool:
    """Whether a Host header (name or address, maybe a port) names this machine."""
    name = host[1: host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    name = name.lower().rstrip(".")
    return name in LOOPBACK_NAMES or name.endswith(".localhost") or is_loopback(name)


def direct_local(req: Any) -> bool:
    """A caller on this machine talking to us directly (a browser or curl), not a proxy.

    A reverse proxy on the same host connects from 127.0.0.1 too, on behalf of anyone, and
    with a minimal configuration it may add no forwarding header at all. Each test below
    is one that a proxy's *default* behaviour fails and that its client cannot undo:

    * the TCP peer is a loopback address;
    * no forwarding header (:func:`relayed`): Apache's ``ProxyPass`` (``X-Forwarded-For``,
      ``-Host``, ``-Server``), Caddy's ``reverse_proxy`` and Traefik (``X-Forwarded-*``),
      Varnish and Squid (``Via``, ``X-Varnish``), and any block written after the README's;
    * HTTP/1.1 or later: nginx's ``proxy_pass`` speaks HTTP/1.0 to its upstream unless
      told otherwise (``proxy_http_version``), while browsers and curl speak 1.1 or 2;
    * no ``Connection: close``: nginx sends it by default whatever the version (unless
      ``proxy_set_header Connection ""``), browsers and curl never do (Python's urllib
      does: a script on this machine uses a key, or requests/httpx);
    * a Host header naming this machine (``localhost``, ``127.0.0.1``, ``[::1]``): a
      proxy that passes its client's Host through (HAProxy, nginx ``proxy_set_header Host
      $host``) passes the public name that client asked for.

    What no HTTP-level rule can tell from a local browser: a TCP relay on this machine
    (``socat``, ``ssh -L``, HAProxy in ``mode tcp``), HAProxy in ``mode http`` without
    ``option forwardfor`` when its client sends ``Host: 127.0.0.1``, and nginx told to
    speak HTTP/1.1 with ``Connection ""`` while keeping its default upstream Host. We
    considered asking the kernel which user owns the peer's socket (Linux
    ``/proc/net/tcp``): Linux-only, and a proxy running as the same user passes it. So
    ``GEOMAP_OPEN_READ`` stays off on any machine that relays connections to the service.
    """
    return (
        is_loopback(peer_address(req))
        and not relayed(req)
        and _http_version(req.environ.get("SERVER_PROTOCOL", "")) >= (1, 1)
        and "close" not in req.headers.get("Connection", "").lower()
        and loopback_host(req.host)
    )


def _http_version(protocol: str) -> tuple[int, int]:
    """``HTTP/1.1`` → (1, 1); anything unreadable → (0, 0)."""
    major, _, minor = protocol.upper().removeprefix("HTTP/").partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 0, 0


def client_address(req: Any) -> str:
    """The client's address: what every limit and record keyed by the client uses.

    The TCP peer, or behind trusted proxies (``trusted_proxies`` hops, and a peer among
    ``trusted_proxy_addresses``: :class:`TrustedProxies`) the address they name in
    ``X-Forwarded-For``. A client's own ``X-Forwarded-For`` is never believed otherwise.

    Parameters
    ----------
    req : flask.Request

    Returns
    -------
    str
        An IP address as text (``unknown`` when the server gives none).
    """
    return req.remote_addr or "unknown"


class TrustedProxies:
    """WSGI middleware: believe ``X-Forwarded-*`` only from a trusted proxy's connection.

    Parameters
    ----------
    app : WSGI application
    hops : int
        How many proxies stand in front (werkzeug's ``ProxyFix`` reads that many values of
        each header from the right, so a client's own prepended values are skipped).
    networks : iterable of str
        Addresses or CIDR networks of those proxies; a request from any other peer is
        served as is, its forwarding headers ignored.
    prefix : bool
        Whether to believe ``X-Forwarded-Prefix`` (a path such as ``/geomap``); a value
        that is not a plain absolute path (``//evil.example``) is ignored even then.
    """

    def __init__(self, app: Any, hops: int, networks: Any, prefix: bool) -> None:
        self.app = app
        self.networks = tuple(_network(text) for text in networks)
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops,
                              x_prefix=hops if prefix else 0)  # fmt: skip

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not self.trusted(environ.get("REMOTE_ADDR")):
            return self.app(environ, start_response)
        prefix = environ.get("HTTP_X_FORWARDED_PREFIX")
        if prefix is not None and not _PREFIX.fullmatch(prefix.split(",")[-1].strip()):
            del environ["HTTP_X_FORWARDED_PREFIX"]
        return self.fixed(environ, start_response)

    def trusted(self, address: str | None) -> bool:
        """Whether ``address`` (the TCP peer) is one of the trusted proxies."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


#: A path prefix worth believing: absolute, plain segments, no ``//`` (a network path).
_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(
            f"GEOMAP_TRUSTED_PROXY_ADDRESSES: {text!r} is not an address or network"
        ) from None


class CloseUnread:
    """WSGI middleware: an answer sent before the request's body was read closes.

    After such an answer (a 413, a 401 decided from the headers) the unread body is
    still on the connection; a server that keeps the connection open would read it as
    the next request, or drain it first. So the answer says ``Connection: close`` and
    gunicorn is told to close (it ignores the header from an application and writes its
    own); werkzeug's development server closes every connection anyway.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        declared_length = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        length = int(declared_length) if declared_length.isdigit() else 0
        if length <= 0 and not chunked:
            return self.app(environ, start_response)
        body = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = body

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not (body.eof or (length > 0 and body.read_bytes >= length)):
                server = getattr(start_response, "__self__", None)
                if hasattr(server, "force_close"):
                    server.force_close()  # gunicorn's response
                if not environ.get("SERVER_SOFTWARE", "").startswith("Werkzeug/"):
                    headers = [h for h in headers if h[0].lower() != "connection"]
                    headers.append(("Connection", "close"))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class _CountingInput:
    """A request body stream that counts what was read from it."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.read_bytes = 0
        self.eof = False

    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        data = self.stream.read() if whole else self.stream.read(size)
        self.read_bytes += len(data)
        self.eof = self.eof or whole or not data
        return data

    def readinto(self, buffer: Any) -> int:
        # werkzeug reads through readinto; gunicorn's body stream has only read.
        native = getattr(self.stream, "readinto", None)
        if native is not None:
            count = native(buffer) or 0
        else:
            data = self.stream.read(len(buffer))
            count = len(data)
            memoryview(buffer).cast("B")[:count] = data
        self.read_bytes += count
        self.eof = self.eof or count == 0
        return count

    def readline(self, size: int | None = -1) -> bytes:
        data = self.stream.readline() if size is None else self.stream.readline(size)
        self.read_bytes += len(data)
        self.eof = self.eof or not data
        return data

    def __iter__(self) -> Iterator[bytes]:
        for line in self.stream:
            self.read_bytes += len(line)
            yield line
        self.eof = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


# -- rate limit ----------------------------------------------------------------------------
class TokenBuckets:
    """A token bucket per caller: ``rate`` tokens a second, holding at most ``burst``.

    Parameters
    ----------
    rate : float
        Tokens added per second (the sustained request rate allowed).
    burst : int
        The bucket's size (requests allowed at once after a quiet spell).
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(max(1, burst))
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, caller: str, cost: float = 1.0, now: float | None = None) -> float:
        """Take ``cost`` tokens from ``caller``'s bucket.

        Returns
        -------
        float
            0 when the request may go ahead; otherwise the seconds until it could.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate
            self._buckets[caller] = (tokens, now)  # most recently seen last
            while len(self._buckets) > MAX_TRACKED_CALLERS:
                self._buckets.popitem(last=False)
            return wait


def caller_id(who: Any, req: Any) -> str:
    """Whose bucket a request draws from: its key; its embed token and client; its client.

    An embed token is shared by every visitor of its portal, so each visitor (client
    address) has a bucket of their own under it.
    """
    if who is not None and who.kind in ("key", "session"):
        return f"key:{who.key_id}"
    if who is not None and who.kind == "embed":
        return f"embed:{who.token_id}:{client_address(req)}"
    return f"client:{client_address(req)}"


def check_rate(app: Any, who: Any, req: Any) -> None:
    """Raise :class:`RateLimited` when the caller's bucket is empty."""
    buckets: TokenBuckets | None = app.extensions.get("geomap_rate")
    if buckets is None:
        return
    wait = buckets.take(caller_id(who, req))
    if wait > 0:
        raise RateLimited(
            f"too many requests: at most {buckets.rate:g} a second on average "
            f"(bursts of {buckets.burst:g}); retry in {wait:.1f} s",
            retry_after_s=wait,
        )


# -- heavy requests ------------------------------------------------------------------------
@contextmanager
def heavy(what: str = "analysis") -> Iterator[None]:
    """Run an expensive analysis in one of the process's ``heavy_requests`` slots.

    No waiting: when every slot is taken the request gets 503 with ``Retry-After`` at
    once, so a burst of analyses never holds the threads and connections that cheap
    requests (layers, nearest by distance) need.
    """
    slots: threading.BoundedSemaphore = current_app.extensions["geomap_heavy"]
    if not slots.acquire(blocking=False):
        limit = current_app.config["GEOMAP"].heavy_requests
        raise Busy(
            f"the service is busy: {limit} analyses are already running in this process "
            f"({what} refused); retry shortly",
            retry_after_s=2,
        )
    try:
        yield
    finally:
        slots.release()


# -- bodies --------------------------------------------------------------------------------
def json_body(schema: dict[str, Any] | None = None) -> Any:
    """This request's JSON body, parsed strictly and checked against ``schema``.

    Raises
    ------
    InvalidInput
        Not JSON (by ``Content-Type`` or content), hostile values (see
        :func:`geomap.params.parse_json_body`), or a value off its schema; the error names
        the field.
    """
    if not request.is_json:
        raise InvalidInput("the request body must be JSON (Content-Type: application/json)",
                           field="body")  # fmt: skip
    value = parse_json_body(request.get_data(cache=True))
    if schema is not None:
        check_schema(value, schema)
    return value


# -- installing ----------------------------------------------------------------------------
def host_allowed(host: str, allowed: Any) -> bool:
    """Whether ``host`` (a Host header: name or address, maybe a port) is allowed.

    Entries are names (``localhost``), addresses (``127.0.0.1``, ``[::1]``), ``.domain``
    (the domain and its subdomains) or ``*`` (anything).
    """
    # An IPv6 address comes in brackets, maybe with a port after them.
    name = host[: host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]
    name = name.lower().rstrip(".")
    for entry in (e.lower() for e in allowed):
        if entry == "*" or name == entry:
            return True
        if entry.startswith(".") and (name == entry[1:] or name.endswith(entry)):
            return True
    return False


def _check_request(settings: Any) -> None:
    host = request.host
    if not host_allowed(host, settings.allowed_hosts):
        raise InvalidInput(
            f"this service does not answer to the host {host!r}; allowed: "
            f"{', '.join(settings.allowed_hosts)} (setting GEOMAP_ALLOWED_HOSTS)",
            field="Host",
        )
    for name, value in request.args.items(multi=True):
        check_text(name, "a parameter name")
        check_text(value, name)
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            check_text(value, name)
        elif isinstance(value, int) and not -(2**31) <= value < 2**31:
            # Ids are PostgreSQL integers: a larger one names nothing (and would overflow).
            raise NotFound(f"no such {name} {value}", field=name)


def init_app(app: Any) -> None:
    """Install the proxy fix, the host and input checks and the cost limits on ``app``."""
    settings = app.config["GEOMAP"]
    hops = int(settings.trusted_proxies)
    if hops > 0:
        app.wsgi_app = TrustedProxies(app.wsgi_app, hops, settings.trusted_proxy_addresses,
                                      bool(settings.forwarded_prefix))  # fmt: skip
    app.wsgi_app = CloseUnread(app.wsgi_app)
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_body_bytes)
    app.extensions["geomap_heavy"] = threading.BoundedSemaphore(max(1, settings.heavy_requests))
    if settings.rate_limit_rps > 0:
        app.extensions["geomap_rate"] = TokenBuckets(
            settings.rate_limit_rps, settings.rate_limit_burst
        )

    @app.before_request
    def _guard() -> None:
        _check_request(settings)


def after_auth(app: Any) -> None:
    """The rate limit: installed after the access check, which says who the caller is."""

    @app.before_request
    def _rate() -> None:
        if request.blueprint == "static" or request.endpoint == "static":
            return  # files of the pages: cheap, cached, and many per page load
        who = g.get("principal")
        if who is not None and who.kind == "open":
            return  # the local demo's own machine: it could as well read the database
        check_rate(app, who, request)

"""Every setting, declared once: name, type, default and help.

Settings are read from ``GEOMAP_*`` environment variables when :func:`load` is called
(never at import time), optionally overlaid by a mapping (``create_app(test_config)``).
``geomap settings`` prints them all; README.md holds its table, and
``tests/test_settings_doc.py`` fails when the two differ.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geomap.errors import ConfigError

#: The project's root folder (where setup.cfg lives) when running from a checkout.
PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """A declared setting: read from ``GEOMAP_<NAME>``."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return f"GEOMAP_{self.name.upper()}"


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        str,
        None,
        "SQLAlchemy URL of an external PostGIS database (e.g. "
        "postgresql+psycopg://geomap_app@host/db), as the service's own role: no superuser, "
        "no owner (`geomap db check` says what it lacks or has too much). Unset: the embedded "
        "cluster in `GEOMAP_STATE_DIR`, as its `geomap_app` role.",
    ),
    Setting(
        "migrate_url",
        str,
        None,
        "SQLAlchemy URL that the migrations and `geomap seed` connect with: the schema "
        "owner's role (e.g. postgresql+psycopg://geomap_owner@host/db). Unset: "
        "`GEOMAP_DATABASE_URL` when that is set, else the embedded cluster's `geomap_owner`.",
    ),
    Setting(
        "state_dir",
        _path,
        PROJECT_DIR / ".geomap",
        "Folder for the project's own state: the embedded PostgreSQL cluster, its socket and log.",
    ),
    Setting(
        "pg_port",
        int,
        5432,
        "Port number of the embedded cluster. It listens only on a Unix socket in "
        "`GEOMAP_STATE_DIR`, so it never clashes with another server on that port.",
    ),
    Setting("data_dir", _path, PROJECT_DIR / "data", "Folder of the bundled datasets."),
    Setting("host", str, "127.0.0.1", "Address `geomap serve` binds to."),
    Setting("port", int, 5000, "Port `geomap serve` listens on."),
    Setting(
        "workers",
        int,
        2,
        "Processes `geomap serve` runs (gunicorn, threaded workers, keep-alive); 0 runs "
        "Flask's development server instead.",
    ),
    Setting(
        "threads",
        int,
        4,
        "Threads per worker process of `geomap serve`; each holds at most one database "
        "connection, so keep `GEOMAP_POOL_SIZE` at least threads + 2 (background work).",
    ),
    Setting(
        "statement_timeout_ms",
        int,
        30_000,
        "Upper bound on any single SQL statement run for a request or command, in milliseconds.",
    ),
    Setting(
        "max_features",
        int,
        10_000,
        "Largest number of features one API answer may hold; larger requests are refused.",
    ),
    Setting("walk_speed_kmh", float, 4.5, "Walking speed used for walking travel times, in km/h."),
    Setting(
        "circle_access_m",
        float,
        50.0,
        "Width in metres around reached streets that a walking circle (and coverage by travel "
        "time) covers: doors and courtyards off the street.",
    ),
    Setting(
        "open_read",
        _bool,
        False,
        "Let a browser or curl on this machine, talking to the service directly (never "
        "through a proxy: see \"Who may see and do what\"), read layers and run analyses "
        "without a key: the local demo (`make run` turns it on). Personal fields and writes "
        "always need a key; `geomap serve` refuses a non-loopback address while this is on.",
    ),
    Setting(
        "secret_key",
        str,
        None,
        "Secret that signs embed tokens. Unset: one is generated and kept in "
        "`GEOMAP_STATE_DIR`/secret_key.",
    ),
    Setting(
        "cors_origins",
        _str_list,
        (),
        "Comma-separated origins allowed to call the API from a browser (CORS allow-list).",
    ),
    Setting("log_level", str, "INFO", "Python logging level of the service and the CLI."),
    Setting(
        "frame_ancestors",
        _str_list,
        ("'self'",),
        "Comma-separated origins allowed to frame the embeddable maps opened without an "
        "embed token (Content-Security-Policy frame-ancestors); a token names its portal.",
    ),
    Setting(
        "trusted_proxies",
        int,
        0,
        "Number of reverse proxies in front of the service that set X-Forwarded-For, "
        "-Proto, -Host and -Port (nginx: 1). The client address, scheme and host are then "
        "read from those headers (werkzeug's ProxyFix), and only when the direct peer is "
        "one of `GEOMAP_TRUSTED_PROXY_ADDRESSES`; 0: the headers are ignored.",
    ),
    Setting(
        "trusted_proxy_addresses",
        _str_list,
        ("127.0.0.0/8", "::1"),
        "Comma-separated addresses or networks (CIDR) of the trusted proxies: only a request "
        "whose direct peer is one of them has its X-Forwarded-* headers believed.",
    ),
    Setting(
        "forwarded_prefix",
        _bool,
        False,
        "Believe the trusted proxies' X-Forwarded-Prefix (a path prefix such as `/geomap` "
        "the service is mounted under). Off: the header is ignored, so a client's own cannot "
        "reach the links the service writes.",
    ),
    Setting(
        "allowed_hosts",
        _str_list,
        ("localhost", "127.0.0.1", "[::1]"),
        "Comma-separated host names the service answers to (the Host header, or "
        "X-Forwarded-Host behind trusted proxies); others get a 400. `.example.gov.cn` "
        "allows its subdomains, `*` any host. Guards the local demo against DNS rebinding.",
    ),
    Setting(
        "pool_size",
        int,
        10,
        "Database connections one service process may hold at once.",
    ),
    Setting(
        "pool_timeout_s",
        float,
        2.0,
        "Longest wait for a free database connection, in seconds; then the request gets "
        "503 with Retry-After instead of queueing.",
    ),
    Setting(
        "heavy_requests",
        int,
        2,
        "Analyses (network travel times, coverage, circles) one service process runs at "
        "once; more get 503 with Retry-After at once, so cheap requests keep their threads "
        "and connections.",
    ),
    Setting(
        "job_runners",
        int,
        1,
        "Threads that run plan jobs from the queue held in PostgreSQL, each with two "
        "database connections of its own (outside `GEOMAP_POOL_SIZE`); more jobs wait "
        "`queued`. `geomap serve` runs them in one job process per node, at a lower CPU "
        "priority than the workers; another server, in its own process. 0: none (a read node).",
    ),
    Setting(
        "jobs_per_key",
        int,
        4,
        "Plan jobs one caller (API key) may have queued or running at once; beyond it: 429 "
        "with Retry-After.",
    ),
    Setting(
        "job_time_limit_s",
        float,
        900.0,
        "Longest run of one plan job, in seconds; then it fails (`time_limit`). A job whose "
        "runner died is queued again (once) or failed within 35 s, and one queued for an "
        "hour fails (`queue_timeout`).",
    ),
    Setting(
        "rate_limit_rps",
        float,
        50.0,
        "Requests per second each caller may make on average (token bucket, per service "
        "process): per API key, per embed token and client address, else per client "
        "address (open local reads are not limited). Beyond it: 429 with Retry-After. "
        "0 turns the limit off.",
    ),
    Setting(
        "rate_limit_burst",
        int,
        500,
        "Requests a caller may make at once before the rate limit applies (the bucket's "
        "size: a map page loads about 20 things at once, GDAL pages through a layer).",
    ),
    Setting(
        "max_body_bytes",
        int,
        1_000_000,
        "Largest request body accepted, in bytes; larger ones get 413 without being read.",
    ),
    Setting(
        "map_tiles_above",
        int,
        10_000,
        "A map layer with more features than this (or than `GEOMAP_MAX_FEATURES`) is drawn "
        "from vector tiles made by PostGIS (`/tiles/<layer>/{z}/{x}/{y}.pbf`) instead of one "
        "document; 0: every layer is tiled.",
    ),
    Setting(
        "tianditu_key",
        str,
        None,
        "Token (tk) of the Tianditu (天地图) tile service for the maps' `basemap=tianditu`; "
        "unset: that basemap is not drawn and the map says why.",
    ),
    Setting(
        "dispatch_rules",
        _path,
        PROJECT_DIR / "data" / "dispatch.toml",
        "The dispatch rules: which team kinds and capabilities fit each case kind, the "
        "minutes to accept a case at each level before it escalates, the hours to resolve.",
    ),
    Setting(
        "reach_min",
        float,
        15.0,
        "Drive time (minutes) within which a team covers a grid: a recommended team's "
        "coverage loss is the grids no other fitting available team reaches within it.",
    ),
    Setting("max_dispatch_teams", int, 10, "Most teams one dispatch request may send."),
    Setting(
        "move_up_suggestions",
        int,
        3,
        "Most repositionings suggested to restore the coverage a dispatch took away.",
    ),
    Setting(
        "escalation_interval_s",
        float,
        2.0,
        "How often the serving process records escalations that fell due (seconds); reads "
        "compute the level from the clock either way. 0 turns the background loop off.",
    ),
    Setting(
        "max_speed_kmh",
        float,
        150.0,
        "Fastest movement a team's position fixes may imply; faster fixes are refused.",
    ),
    Setting("max_fixes", int, 1000, "Most position fixes one request may carry."),
    Setting(
        "session_hours",
        float,
        12.0,
        "How long a sign-in session (the map pages' cookie) lasts; revoking its key ends it "
        "sooner.",
    ),
    Setting(
        "event_streams",
        int,
        250,
        "Most live event streams (`/api/events`) one service process keeps open; each holds "
        "a thread but no database connection. More are refused with 503.",
    ),
    Setting(
        "stale_minutes",
        float,
        30.0,
        "A team position older than this is marked stale on the battle map.",
    ),
    Setting(
        "call_per_station_per_hour",
        int,
        30,
        "Cases one-click calls (`/call/<station code>`) may open at one station in an hour "
        "(counted in the database); beyond it a new address's call is counted on the "
        "station's open call case and only a repeat from an address that called already is "
        "refused (429 with Retry-After). 0 turns the limit off.",
    ),
    Setting(
        "call_per_client_per_hour",
        int,
        6,
        "One-click calls one client address may make at one station in an hour, and "
        "stations it may call (counted in the database, across workers and nodes); beyond "
        "it: 429 with Retry-After. 0 turns the limit off.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The settings in force: attribute access by name, e.g. ``settings.database_url``."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (names must be declared settings)."""
        unknown = set(changes) - set(_BY_NAME)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return Settings({**self.values, **changes})


def load(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read every setting from the environment, then apply ``overrides``.

    Parameters
    ----------
    overrides : mapping, optional
        Values by setting name (lower case, without the ``GEOMAP_`` prefix), already typed.
    environ : mapping, optional
        The environment to read; ``os.environ`` by default.

    Raises
    ------
    ConfigError
        When a variable does not parse as its type, or an override names no setting.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.type(raw)
        except ValueError as exc:
            raise ConfigError(
                f"{setting.env}={raw!r} is not valid: {exc}", field=setting.env
            ) from exc
    return Settings(values).replace(**dict(overrides or {}))

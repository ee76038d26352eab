"""Position fixes: batches from teams' devices, a history partitioned by month, tracks.

A batch is checked fix by fix, in time order:

* a fix later than the clock (beyond a small skew) is refused (``future``);
* a fix implying more than ``max_speed_kmh`` from the fix before it (the history's, or
  the batch's) is refused (``too_fast``); each fix's accuracy is taken off the distance,
  so GPS jitter at walking pace is not "speed";
* a fix already in the history (same team, same time) is a resent one: ignored, and
  counted as a duplicate; the history's unique (team_id, recorded_at) makes it so for
  concurrent resends too;
* a fix outside the city is refused (``outside_city``), as a case there would be.

Accepted fixes go to the history (``team_positions``, one partition per month); the
newest becomes the team's current position only if it is newer than the current one, by
a conditional update, so an out-of-order or concurrent batch never moves a team back.
Malformed batches are refused whole (400, naming ``fixes[i].field``); a batch whose every
fix is refused answers 422; otherwise the answer lists the refused fixes.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
import sqlalchemy as sa
from pyproj import Geod

from geomap import crs, events
from geomap.analysis import city
from geomap.errors import GeomapError, InvalidInput, NotFound
from geomap.ops import audit
from geomap.params import check_datetime, check_fields, check_finite, check_id, check_typed_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

GEOD = Geod(ellps="WGS84")
FIX_FIELDS = ("lon", "lat", "recorded_at", "accuracy_m", "crs")
POINT_CRS = ("EPSG:4326", "EPSG:4490", "GCJ02", "BD09")
#: How far ahead of the service's clock a device's clock may run.
CLOCK_SKEW = dt.timedelta(seconds=60)
MAX_ACCURACY_M = 10_000.0
SOURCE = "real: reported by the team's device through the geomap API"


class Refused(GeomapError):
    """Every fix of a batch was refused (422): in the future, or impossibly fast."""

    status = 422
    code = "refused"


def parse_fixes(body: Any, max_fixes: int) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Check a batch's shape and values; returns the fixes and their WGS 84 lon/lat.

    Parameters
    ----------
    body : object
        The decoded JSON body: ``{"fixes": [{lon, lat, recorded_at, accuracy_m?, crs?}],
        "crs"?}``. A fix's ``crs`` overrides the batch's; both default to WGS 84 and must be
        one of ``POINT_CRS``.
    max_fixes : int
        The most fixes a batch may hold.

    Returns
    -------
    fixes : list of dict
        Each fix's ``index`` in the batch, its ``lon``/``lat`` as sent, ``crs``,
        ``accuracy_m`` (metres or None) and ``recorded_at`` (timezone-aware).
    lonlat : numpy.ndarray
        The fixes' points in WGS 84 degrees, shape (n, 2).

    Raises
    ------
    InvalidInput
        A malformed batch, naming the field (``fixes[i].lat``...).
    """
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", field="body")
    check_fields(body, ("fixes", "crs"))
    fixes = body.get("fixes")
    if not isinstance(fixes, list) or not fixes:
        raise InvalidInput(
            "fixes must be a non-empty list of {lon, lat, recorded_at}", field="fixes"
        )
    if len(fixes) > max_fixes:
        raise InvalidInput(
            f"a batch holds at most {max_fixes} fixes, got {len(fixes)}", field="fixes"
        )
    batch_crs = check_typed_text(body.get("crs"), "crs", 40)
    parsed = []
    for i, fix in enumerate(fixes):
        where = f"fixes[{i}]."
        if not isinstance(fix, dict):
            raise InvalidInput(f"fixes[{i}] must be an object", field=f"fixes[{i}]")
        check_fields(fix, FIX_FIELDS, where)
        lon = check_finite(fix.get("lon"), f"{where}lon")
        lat = check_finite(fix.get("lat"), f"{where}lat")
        for name, value, bound in (("lon", lon, 180.0), ("lat", lat, 90.0)):
            if isinstance(fix.get(name), bool) or abs(value) > bound:
                raise InvalidInput(
                    f"{where}{name}={fix.get(name)!r} is out of range", field=f"{where}{name}"
                )
        accuracy = fix.get("accuracy_m")
        if accuracy is not None:
            accuracy = check_finite(accuracy, f"{where}accuracy_m")
            if isinstance(fix["accuracy_m"], bool) or not 0 <= accuracy <= MAX_ACCURACY_M:
                raise InvalidInput(
                    f"{where}accuracy_m must be 0 to {MAX_ACCURACY_M:g} m",
                    field=f"{where}accuracy_m",
                )
        name = check_typed_text(fix.get("crs"), f"{where}crs", 40) or batch_crs or "EPSG:4326"
        spec = crs.parse_crs(name)
        if spec.name not in POINT_CRS:
            raise InvalidInput(
                f"crs {spec.name!r} is not accepted for positions; use one of "
                f"{', '.join(POINT_CRS)}",
                field=f"{where}crs",
            )
        parsed.append(
            {
                "index": i,
                "lon": lon,
                "lat": lat,
                "crs": spec.name,
                "accuracy_m": accuracy,
                "recorded_at": check_datetime(fix.get("recorded_at"), f"{where}recorded_at"),
            }
        )
    lonlat = np.array([[f["lon"], f["lat"]] for f in parsed], dtype=float)
    by_crs: dict[str, list[int]] = defaultdict(list)
    for k, fix in enumerate(parsed):
        by_crs[fix["crs"]].append(k)
    for name, rows in by_crs.items():
        if name == "EPSG:4326":
            continue
        moved = crs.to_wgs84(shapely.points(lonlat[rows]), name)
        lonlat[rows] = shapely.get_coordinates(moved)
    bad = np.flatnonzero((np.abs(lonlat[:, 0]) > 180) | (np.abs(lonlat[:, 1]) > 90))
    if bad.size:
        raise InvalidInput(
            "coordinate out of range after conversion to WGS84",
            field=f"fixes[{parsed[bad[0]]['index']}].lon",
        )
    return parsed, lonlat


TEAM_SQL = sa.text(
    "SELECT id, position_at, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM teams WHERE id = :id"
)
BEFORE_SQL = sa.text(
    """
    SELECT recorded_at, ST_X(geom) AS lon, ST_Y(geom) AS lat, accuracy_m
    FROM team_positions WHERE team_id = :id AND recorded_at <= :at
    ORDER BY recorded_at DESC LIMIT 1
    """
)
KNOWN_SQL = sa.text(
    "SELECT recorded_at FROM team_positions "
    "WHERE team_id = :id AND recorded_at = ANY(CAST(:times AS timestamptz[]))"
)
INSERT_SQL = sa.text(
    """
    INSERT INTO team_positions (team_id, recorded_at, geom, accuracy_m, received_at, source)
    SELECT :id, f.at, ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326), f.accuracy, :now, :source
    FROM unnest(CAST(:times AS timestamptz[]), CAST(:lons AS float8[]),
                CAST(:lats AS float8[]), CAST(:accuracies AS float8[])) AS f(at, lon, lat, accuracy)
    ON CONFLICT (team_id, recorded_at) DO NOTHING
    RETURNING recorded_at
    """
)
MOVE_SQL = sa.text(
    """
    UPDATE teams SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), position_at = :at
    WHERE id = :id AND (position_at IS NULL OR position_at < :at)
    RETURNING id
    """
)


def _speed_kmh(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Speed implied between two fixes, their accuracies taken off the distance."""
    _, _, metres = GEOD.inv(a["lon"], a["lat"], b["lon"], b["lat"])
    metres = max(0.0, metres - (a.get("accuracy_m") or 0.0) - (b.get("accuracy_m") or 0.0))
    seconds = max(abs((b["recorded_at"] - a["recorded_at"]).total_seconds()), 1.0)
    return metres / seconds * 3.6


def record(
    conn: Connection | Session,
    team_id: int,
    fixes: list[dict[str, Any]],
    *,
    now: dt.datetime,
    max_speed_kmh: float | None,
    source: str = SOURCE,
) -> dict[str, Any]:
    """Check ``fixes`` against the clock and the team's history and store the good ones.

    The team moves when the newest accepted fix is newer than its current position. No
    audit row is written: callers record one for the whole change.

    Parameters
    ----------
    conn : Connection or Session
        The database; written in the caller's transaction.
    team_id : int
        The team's id.
    fixes : list of dict
        Fixes as :func:`parse_fixes` gives them, with ``lon``/``lat`` already in WGS 84.
    now : datetime.datetime
        The service's clock; fixes later than it by more than ``CLOCK_SKEW`` are refused.
    max_speed_kmh : float or None
        The fastest believable speed between consecutive fixes, km/h; None checks no speed
        (a position entered by hand).
    source : str, default SOURCE
        The provenance stored with each fix.

    Returns
    -------
    dict
        ``team_id``, ``accepted`` and ``duplicates`` (counts), ``refused`` (index, field,
        code, message per fix), ``moved``, ``current`` (the team's position after, WGS 84)
        and ``first_at``/``last_at`` (the accepted fixes' times, or None).

    Raises
    ------
    NotFound
        No team has this id.
    Refused
        Every fix was refused.
    """
    team = conn.execute(TEAM_SQL, {"id": team_id}).mappings().first()
    if team is None:
        raise NotFound(f"no team {team_id}")
    ordered = sorted(fixes, key=lambda f: (f["recorded_at"], f["index"]))
    times = [f["recorded_at"] for f in ordered]
    known = set(conn.execute(KNOWN_SQL, {"id": team_id, "times": times}).scalars())
    previous = conn.execute(BEFORE_SQL, {"id": team_id, "at": times[0]}).mappings().first()
    if previous is None and team["position_at"] is not None and team["position_at"] <= times[0]:
        previous = {"recorded_at": team["position_at"], "lon": team["lon"], "lat": team["lat"]}
    previous = dict(previous) if previous is not None else None
    accepted, refused, duplicates = [], [], 0
    outline = city.city(conn)
    for fix in ordered:
        where = f"fixes[{fix['index']}]"
        if fix["recorded_at"] > now + CLOCK_SKEW:
            refused.append(
                {
                    "index": fix["index"],
                    "field": f"{where}.recorded_at",
                    "code": "future",
                    "message": f"{fix['recorded_at'].isoformat()} is later than the "
                    f"service's clock ({now.isoformat(timespec='seconds')})",
                }
            )
            continue
        if fix["recorded_at"] in known:  # sent before (a retried upload), or twice
            duplicates += 1
            continue
        if outline.contains(fix["lon"], fix["lat"]) is False:
            refused.append(
                {
                    "index": fix["index"],
                    "field": f"{where}.lon",
                    "code": "outside_city",
                    "message": f"the point ({fix['lon']:.6f}, {fix['lat']:.6f}) lies outside "
                    f"the city ({outline.names}); check the coordinates and their crs",
                }
            )
            continue
        if max_speed_kmh is not None and previous is not None:
            speed = _speed_kmh(previous, fix)
            if speed > max_speed_kmh:
                refused.append(
                    {
                        "index": fix["index"],
                        "field": f"{where}.lon",
                        "code": "too_fast",
                        "message": f"this fix implies {speed:,.0f} km/h since the fix "
                        f"of {previous['recorded_at'].isoformat()}; at most "
                        f"{max_speed_kmh:g} km/h is believable",
                    }
                )
                continue
        accepted.append(fix)
        known.add(fix["recorded_at"])
        previous = fix
    if not accepted and refused:
        first = refused[0]
        raise Refused(
            f"every fix was refused; {first['field']}: {first['message']}", field=first["field"]
        )
    moved = False
    if accepted:
        # A concurrent batch may have stored the same fix since KNOWN_SQL was read: the
        # unique (team_id, recorded_at) keeps one row, and this batch counts it as a
        # duplicate.
        stored = set(conn.execute(
            INSERT_SQL,
            {
                "id": team_id,
                "now": now,
                "source": source,
                "times": [f["recorded_at"] for f in accepted],
                "lons": [f["lon"] for f in accepted],
                "lats": [f["lat"] for f in accepted],
                "accuracies": [f["accuracy_m"] for f in accepted],
            },
        ).scalars())
        duplicates += len(accepted) - len(stored)
        accepted = [f for f in accepted if f["recorded_at"] in stored]
    if accepted:
        newest = accepted[-1]
        moved = (
            conn.execute(
                MOVE_SQL,
                {
                    "id": team_id,
                    "lon": newest["lon"],
                    "lat": newest["lat"],
                    "at": newest["recorded_at"],
                },
            ).first()
            is not None
        )
    current = conn.execute(TEAM_SQL, {"id": team_id}).mappings().one()
    return {
        "team_id": team_id,
        "accepted": len(accepted),
        "duplicates": duplicates,
        "refused": sorted(refused, key=lambda r: r["index"]),
        "moved": moved,
        "current": {
            "lon": current["lon"],
            "lat": current["lat"],
            "position_at": current["position_at"].isoformat() if current["position_at"] else None,
        },
        "first_at": accepted[0]["recorded_at"] if accepted else None,
        "last_at": accepted[-1]["recorded_at"] if accepted else None,
    }


def ingest(
    conn: Session,
    team_id: int,
    body: Any,
    *,
    actor: audit.Actor,
    now: dt.datetime,
    max_speed_kmh: float,
    max_fixes: int,
) -> dict[str, Any]:
    """``POST /api/teams/<id>/positions``: a batch of fixes (see the module docstring).

    Records the fixes, one ``team.positions`` audit row and, when the team moved, a
    ``team.moved`` event, in the caller's transaction.

    Parameters
    ----------
    conn : Session
        The request's session.
    team_id : int
        The team's id.
    body : object
        The decoded JSON body (see :func:`parse_fixes`).
    actor : audit.Actor
        Who sends the batch.
    now : datetime.datetime
        The service's clock.
    max_speed_kmh : float
        The fastest believable speed between fixes, km/h.
    max_fixes : int
        The most fixes a batch may hold.

    Returns
    -------
    dict
        As :func:`record`, with ``first_at``/``last_at`` as ISO text.

    Raises
    ------
    InvalidInput
        A malformed batch.
    NotFound
        No team has this id.
    Refused
        Every fix was refused.
    """
    fixes, lonlat = parse_fixes(body, max_fixes)
    for fix, (lon, lat) in zip(fixes, lonlat, strict=True):
        fix["lon"], fix["lat"] = float(lon), float(lat)
    result = record(conn, team_id, fixes, now=now, max_speed_kmh=max_speed_kmh)
    summary = {k: result[k] for k in ("accepted", "duplicates", "moved", "first_at", "last_at")}
    summary["refused"] = len(result["refused"])
    audit.record(conn, actor, "team.positions", at=now, team_id=team_id, changes=summary)
    if result["moved"]:
        events.announce(
            conn,
            "team.moved",
            {"id": team_id, **result["current"], "at": now},
            audience="layers",
            at=now,
            team_id=team_id,
        )
    return {**result, "first_at": _iso(result["first_at"]), "last_at": _iso(result["last_at"])}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


TRACK_SQL = sa.text(
    """
    SELECT recorded_at, ST_X(geom) AS lon, ST_Y(geom) AS lat, accuracy_m
    FROM team_positions
    WHERE team_id = :id AND recorded_at >= :since AND recorded_at < :until
    ORDER BY recorded_at, id
    LIMIT :limit
    """
)
MAX_TRACK_DAYS = 31


def track(
    conn: Session,
    team_id: Any,
    *,
    since: dt.datetime,
    until: dt.datetime,
    max_points: int,
) -> dict[str, Any]:
    """A team's fixes between ``since`` and ``until`` as a GeoJSON Feature.

    Parameters
    ----------
    conn : Session
        The database, read in the caller's transaction.
    team_id : object
        The team's id as given (checked to be a positive integer).
    since, until : datetime.datetime
        The window of ``recorded_at``, at most ``MAX_TRACK_DAYS`` long.
    max_points : int
        The most fixes answered; more is an error, not a truncated track.

    Returns
    -------
    dict
        A Feature whose geometry is a LineString (WGS 84, 7 decimals), a Point for a single
        fix or None for none, with each fix's time and accuracy in its properties.

    Raises
    ------
    InvalidInput
        A bad id, an empty or too long window, or more than ``max_points`` fixes.
    NotFound
        No team has this id.
    """
    team_id = check_id(team_id, "team_id")
    if until <= since:
        raise InvalidInput("to must be after from", field="to")
    if until - since > dt.timedelta(days=MAX_TRACK_DAYS):
        raise InvalidInput(f"a track spans at most {MAX_TRACK_DAYS} days", field="from")
    if conn.execute(sa.text("SELECT 1 FROM teams WHERE id = :id"), {"id": team_id}).first() is None:
        raise NotFound(f"no team {team_id}")
    rows = conn.execute(
        TRACK_SQL, {"id": team_id, "since": since, "until": until, "limit": max_points + 1}
    ).all()
    if len(rows) > max_points:
        raise InvalidInput(
            f"more than {max_points:,} fixes in that time; ask for less", field="from"
        )
    coords = [[round(r.lon, 7), round(r.lat, 7)] for r in rows]
    geometry = None
    if len(coords) == 1:
        geometry = {"type": "Point", "coordinates": coords[0]}
    elif coords:
        geometry = {"type": "LineString", "coordinates": coords}
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "team_id": team_id,
            "from": since.isoformat(),
            "to": until.isoformat(),
            "fixes": len(rows),
            "times": [r.recorded_at.isoformat() for r in rows],
            "accuracy_m": [r.accuracy_m for r in rows],
        },
    }

"""Scenarios (what-if): a venue set with venues added or removed, never touching live tables.

A scenario names a venue set (``of`` and ``kind``, as the circles take them), the places
it adds (``{"name", "lon", "lat"}``) and the venues it removes (``{"venue_table",
"venue_id"}``). Its coverage is computed like ``/api/coverage`` (the same reach sets, the
same roll-up), for the venues as they would be, next to the baseline (the venues as they
are), per grid, community, township or district. Planners keep their own: a scenario
belongs to the key (or the local user) that saved it. A suggestion run is saved as a
scenario adding its sites.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from geomap import vocab
from geomap.analysis import circles, coverage, covergrids
from geomap.errors import InvalidInput, NotFound
from geomap.ops import audit, utc_now
from geomap.params import check_choice, check_choices, check_lonlat, check_positive
from geomap.planning import suggest
from geomap.routing import index

MAX_CHANGES = 5_000
FIELDS = "id, owner, name, description, venue_set, added, removed, origin, created_at, updated_at"
INSERT_SQL = sa.text(
    f"""
    INSERT INTO scenarios (owner, name, description, venue_set, added, removed, origin)
    VALUES (:owner, :name, :description, CAST(:venue_set AS jsonb), CAST(:added AS jsonb),
            CAST(:removed AS jsonb), :origin)
    ON CONFLICT (owner, name) DO NOTHING
    RETURNING {FIELDS}
    """
)
GET_SQL = sa.text(f"SELECT {FIELDS} FROM scenarios WHERE id = :id AND owner = :owner")
LIST_SQL = sa.text(f"SELECT {FIELDS} FROM scenarios WHERE owner = :owner ORDER BY id")
DELETE_SQL = sa.text("DELETE FROM scenarios WHERE id = :id AND owner = :owner RETURNING id")


def _view(row: Any) -> dict:
    out = dict(row._mapping)
    out.pop("owner")
    for key in ("created_at", "updated_at"):
        out[key] = out[key].isoformat()
    return out


def check(body: dict) -> dict:
    """A scenario's fields, validated (each error names its field).

    Parameters
    ----------
    body : dict
        The decoded JSON body: ``name``, ``description``, ``of``, ``kind``, ``added``
        (places ``{"name", "lon", "lat"}``, WGS 84), ``removed`` (venues
        ``{"venue_table", "venue_id"}``), at most ``MAX_CHANGES`` of them.

    Returns
    -------
    dict
        ``name``, ``description``, ``venue_set`` (``of``, ``kind``), ``added``, ``removed``.

    Raises
    ------
    InvalidInput
        An unknown field or a bad value.
    """
    if not isinstance(body, dict):
        raise InvalidInput("the scenario must be a JSON object", field="body")
    unknown = sorted(set(body) - {"name", "description", "of", "kind", "added", "removed",
                                  "from_job"})  # fmt: skip
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput("name must be a text of 1 to 200 characters", field="name")
    of = check_choice(body.get("of", "red"), "of", circles.VENUE_SETS)
    allowed = {"red": {**vocab.SITE_KINDS, "red_station": None}, "sites": vocab.SITE_KINDS,
               "stations": vocab.STATION_KINDS}[of]  # fmt: skip
    kind = body.get("kind")
    if isinstance(kind, str):
        kind = [kind]
    kinds = check_choices(kind, "kind", allowed)
    added = body.get("added", [])
    removed = body.get("removed", [])
    if not isinstance(added, list) or not isinstance(removed, list):
        raise InvalidInput("added and removed must be lists", field="added")
    if len(added) + len(removed) > MAX_CHANGES:
        raise InvalidInput(f"at most {MAX_CHANGES} changes", field="added")
    places = []
    for i, place in enumerate(added, start=1):
        if not isinstance(place, dict):
            raise InvalidInput(f"added place {i} must be an object", field="added")
        try:
            lon, lat = check_lonlat(place.get("lon"), place.get("lat"))
        except InvalidInput as exc:
            raise InvalidInput(f"added place {i}: {exc.message}", field="added") from None
        label = place.get("name")
        places.append({"name": str(label) if label else f"+{i}", "lon": lon, "lat": lat})
    gone = []
    for i, venue in enumerate(removed, start=1):
        if (not isinstance(venue, dict) or venue.get("venue_table") not in ("sites", "stations")
                or not isinstance(venue.get("venue_id"), int)
                or isinstance(venue.get("venue_id"), bool)):  # fmt: skip
            raise InvalidInput(f"removed venue {i} must be {{venue_table: sites|stations, "
                               "venue_id: integer}", field="removed")  # fmt: skip
        gone.append({"venue_table": venue["venue_table"], "venue_id": venue["venue_id"]})
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        raise InvalidInput("description must be a text of at most 2000 characters",
                           field="description")  # fmt: skip
    return {"name": name.strip(), "description": description,
            "venue_set": {"of": of, "kind": kinds}, "added": places, "removed": gone}  # fmt: skip


def create(session: Session, owner: str, fields: dict, origin: str | None = None, *,
           actor: audit.Actor) -> dict:  # fmt: skip
    """Save a scenario (validated by :func:`check`); a name is unique per owner.

    Parameters
    ----------
    session : Session
        The database; the caller commits.
    owner : str
        Who the scenario belongs to (``key:<id>``, ``local`` or a role).
    fields : dict
        As :func:`check` gives them.
    origin : str, optional
        Where it came from (``job:<id>`` for a suggestion saved as a scenario).
    actor : Actor
        Who saves it: an audit row ``scenario.create`` in the same transaction.

    Returns
    -------
    dict
        The saved scenario, with its id and times (ISO text).

    Raises
    ------
    InvalidInput
        The owner already has a scenario of that name.
    """
    row = session.execute(INSERT_SQL, {
        "owner": owner, "name": fields["name"], "description": fields["description"],
        "venue_set": json.dumps(fields["venue_set"]),
        "added": json.dumps(fields["added"], ensure_ascii=False),
        "removed": json.dumps(fields["removed"]), "origin": origin,
    }).first()  # fmt: skip
    if row is None:
        raise InvalidInput(f"you already have a scenario named {fields['name']!r}", field="name")
    saved = _view(row)
    audit.record(session, actor, "scenario.create", at=utc_now(), changes={
        "scenario": saved["id"], "owner": owner, "name": saved["name"], "origin": origin,
        "venue_set": saved["venue_set"], "added": len(saved["added"]),
        "removed": len(saved["removed"]),
    })  # fmt: skip
    return saved


def from_plan(answer: dict, name: str) -> dict:
    """The fields of a scenario adding a suggestion's sites to its venue set.

    Parameters
    ----------
    answer : dict
        A suggestion run's answer (:func:`geomap.planning.suggest.run`).
    name : str
        The scenario's name.

    Returns
    -------
    dict
        As :func:`check` gives them.
    """
    query = answer["query"]
    return check({"name": name, "of": query["of"], "kind": query["kinds"],
                  "description": f"{answer['model']}: {len(answer['sites'])} sites, "
                                 f"+{answer['gained']:,} residents",
                  "added": [{"name": s["name"], "lon": s["lon"], "lat": s["lat"]}
                            for s in answer["sites"]]})  # fmt: skip


def get(session: Session, scenario_id: int, owner: str) -> dict:
    """One of the owner's scenarios.

    Parameters
    ----------
    session : Session
        The database.
    scenario_id : int
        The scenario's id.
    owner : str
        Who asks.

    Returns
    -------
    dict
        The scenario.

    Raises
    ------
    NotFound
        No such scenario, or another owner's.
    """
    row = session.execute(GET_SQL, {"id": scenario_id, "owner": owner}).first()
    if row is None:
        raise NotFound(f"no scenario {scenario_id}", field="id")
    return _view(row)


def list_scenarios(session: Session, owner: str) -> list[dict]:
    """The owner's scenarios, in id order.

    Parameters
    ----------
    session : Session
        The database.
    owner : str
        Whose scenarios.

    Returns
    -------
    list of dict
        The scenarios.
    """
    return [_view(r) for r in session.execute(LIST_SQL, {"owner": owner})]


def delete(session: Session, scenario_id: int, owner: str, *,
           actor: audit.Actor) -> None:  # fmt: skip
    """Delete one of the owner's scenarios; the caller commits.

    Parameters
    ----------
    session : Session
        The database.
    scenario_id : int
        The scenario's id.
    owner : str
        Who asks.
    actor : Actor
        Who deletes it: an audit row ``scenario.delete`` in the same transaction.

    Raises
    ------
    NotFound
        No such scenario, or another owner's.
    """
    if session.execute(DELETE_SQL, {"id": scenario_id, "owner": owner}).first() is None:
        raise NotFound(f"no scenario {scenario_id}", field="id")
    audit.record(session, actor, "scenario.delete", at=utc_now(),
                 changes={"scenario": scenario_id, "owner": owner})  # fmt: skip


def venues_of(session: Session, scenario: dict) -> tuple[list[dict], list[dict]]:
    """The baseline venues and the scenario's venues.

    Parameters
    ----------
    session : Session
        The database.
    scenario : dict
        A saved scenario.

    Returns
    -------
    baseline : list of dict
        The venue set's venues as they are.
    scenario : list of dict
        Those not removed, then the added places (``venue_table`` ``"scenario"``).
    """
    venue_set = scenario["venue_set"]
    base = suggest.venues(session, venue_set["of"], venue_set.get("kind"))
    gone = {(r["venue_table"], r["venue_id"]) for r in scenario["removed"]}
    kept = [v for v in base if (v["venue_table"], v["venue_id"]) not in gone]
    added = [{"venue_table": "scenario", "venue_id": None, "kind": None, **p}
             for p in scenario["added"]]  # fmt: skip
    return base, kept + added


def evaluate(
    session: Session, scenario: dict, *, level: str = "grid", mode: str = "walk",
    minutes: Any = None, distance_m: Any = None, walk_speed_kmh: float = 4.5,
    access_m: float = 50.0, with_geometry: bool = False,
) -> dict:  # fmt: skip
    """The scenario's coverage per unit of ``level`` next to the baseline's.

    The answer has the shape of ``/api/coverage`` (its ``units`` are the scenario's) plus,
    per unit, ``baseline_covered_population``, ``baseline_covered_share_population`` and
    ``gained``, and a ``baseline`` summary.

    Parameters
    ----------
    session : Session
        The database.
    scenario : dict
        A saved scenario.
    level : str, default "grid"
        One of ``coverage.LEVELS``.
    mode : {"walk", "drive"}, default "walk"
        The travel mode.
    minutes : object, optional
        The travel time, minutes (15 when neither it nor ``distance_m`` is given).
    distance_m : object, optional
        A walking distance, metres, walked at ``walk_speed_kmh`` (``mode="walk"`` only).
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.
    access_m : float, default 50.0
        How far from a reached street a point counts as reached, metres.
    with_geometry : bool, default False
        Whether each unit carries its outline (GeoJSON, WGS 84).

    Returns
    -------
    dict
        As :func:`geomap.analysis.coverage.coverage`, with the baseline beside it.

    Raises
    ------
    InvalidInput
        A bad level, mode or budget.
    """
    started = time.perf_counter()
    level = check_choice(level, "level", coverage.LEVELS)
    mode = check_choice(mode, "mode", ("walk", "drive"))
    if minutes is not None and distance_m is not None:
        raise InvalidInput("give minutes or distance_m, not both", field="minutes")
    if distance_m is not None:
        if mode != "walk":
            raise InvalidInput("distance_m is a walking distance: use mode=walk",
                               field="distance_m")  # fmt: skip
        budget = check_positive(distance_m, "distance_m", circles.MAX_DISTANCE_M) / (
            walk_speed_kmh / 3.6)
        minutes = None
    else:
        minutes = 15.0 if minutes is None else check_positive(minutes, "minutes",
                                                              circles.MAX_MINUTES)  # fmt: skip
        budget = minutes * 60.0
    reach = index.Reach(mode, budget, walk_speed_kmh, access_m)
    base, now = venues_of(session, scenario)
    rows = {}
    for label, venues in (("baseline", base), ("scenario", now)):
        places = np.array([(v["lon"], v["lat"]) for v in venues], dtype=float).reshape(-1, 2)
        samples, points = index.covered_points(session, places, reach)
        rows[label] = samples.rows(samples.grid_shares(points), samples.nearest_m(places))
    venue_set = scenario["venue_set"]
    query = covergrids.Query(of=venue_set["of"], kinds=venue_set.get("kind"), by=mode,
                           within_m=None, within_min=minutes, level=level, order="code")
    answer = coverage.coverage(session, query, grids=rows["scenario"],
                               with_geometry=with_geometry)
    baseline = coverage.coverage(session, query, grids=rows["baseline"])
    before = {u["code"]: u for u in baseline["units"]}
    for unit in answer["units"]:
        b = before.get(unit["code"], {})
        unit["baseline_covered_population"] = b.get("covered_population", 0)
        unit["baseline_covered_share_population"] = b.get("covered_share_population", 0.0)
        unit["baseline_covered"] = b.get("covered", False)
        unit["gained"] = unit["covered_population"] - b.get("covered_population", 0)
    answer["query"] = {**answer["query"], "scenario": scenario["id"], "distance_m": distance_m,
                       "mode": mode}  # fmt: skip
    answer["baseline"] = baseline["summary"]
    answer["scenario"] = {"id": scenario["id"], "name": scenario["name"],
                          "added": len(scenario["added"]), "removed": len(scenario["removed"]),
                          "venues": len(now), "baseline_venues": len(base)}  # fmt: skip
    answer["definitions"] = coverage.DEFINITIONS
    answer["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return answer

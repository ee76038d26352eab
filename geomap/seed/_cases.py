"""A demo history (synthetic): a month of hazards, incidents and requests across the city.

So that statistics and the map are not empty on the default dataset. Everything here is
labelled ``synthetic:`` and drawn from the seed, deterministically:

* ~4,000 cases over the 30 days before the teams' snapshot (``_teams.SNAPSHOT``), placed
  in grids in proportion to their residents, more by day than by night;
* each case lives its life on a plausible clock: accepted after a delay (some too late,
  so they climbed the chain: the escalations follow the dispatch rules' deadlines),
  dispatched to the nearest fitting teams (straight line), on scene after a drive,
  resolved, then closed after a check (a hazard by a different person than the one who
  resolved it); 3% are cancelled;
* the history is cut at the snapshot: most cases are closed, the recent ones are still
  open at every stage, and the teams on their active dispatches are teams the snapshot
  shows ``deployed`` (each on one dispatch only);
* the snapshot's team states then follow the dispatches (:func:`team_states`): a team is
  ``deployed`` exactly when it holds an active dispatch, as the service itself keeps it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from geomap.ops import escalation, rules
from geomap.seed import _teams

DAYS = 30
COUNTS = {"hazard": 2400, "incident": 360, "request": 1200}
SEVERITY_SHARES = {
    "hazard": (0.50, 0.35, 0.13, 0.02),
    "incident": (0.30, 0.45, 0.20, 0.05),
    "request": (0.60, 0.35, 0.05, 0.00),
}
SEVERITIES = ("low", "medium", "high", "critical")
#: Median minutes to accept, by kind (lognormal, spread 0.9): a tail climbs the chain.
ACCEPT_MEDIAN_MIN = {"incident": 2.0, "hazard": 6.0, "request": 5.0}
#: Share of cases a team is sent to, and how many teams.
DISPATCH_SHARE = {"incident": 1.0, "hazard": 0.6, "request": 0.7}
#: Minutes from arrival (or acceptance) to resolution: (low, high), log-uniform.
RESOLVE_MIN = {"incident": (20, 150), "hazard": (60, 72 * 60), "request": (15, 240)}
#: Minutes from resolution to the closing check: (low, high), log-uniform.
CHECK_MIN = {"incident": (5, 120), "hazard": (120, 48 * 60), "request": (5, 180)}
CANCEL_SHARE = 0.03
DRIVE_KMH = 25.0

TITLES = {
    "hazard": (
        "消防通道堵塞",
        "电动车楼道充电",
        "井盖破损",
        "外墙脱落风险",
        "燃气管道老化",
        "路面塌陷",
        "违章搭建",
        "广告牌松动",
        "积水点",
        "树木倾斜",
    ),
    "incident": (
        "老人突发疾病",
        "道路积水内涝",
        "居民楼起火",
        "交通事故",
        "燃气泄漏",
        "人员走失",
        "触电事故",
        "高空坠物",
    ),
    "request": (
        "独居老人助餐",
        "代购药品",
        "上门理发",
        "家电维修求助",
        "邻里纠纷调解",
        "垃圾清运",
        "路灯不亮",
        "一键呼叫：行动不便需协助",
    ),
}


def _points_in(grids: gpd.GeoDataFrame, which: np.ndarray, rng: np.random.Generator):
    """A random point inside each grid of ``which`` (lon/lat)."""
    shapes = grids.geometry.to_numpy()[which]
    bounds = shapely.bounds(shapes)
    lon, lat = np.full(which.size, np.nan), np.full(which.size, np.nan)
    todo = np.arange(which.size)
    for _ in range(30):
        if todo.size == 0:
            break
        x = rng.uniform(bounds[todo, 0], bounds[todo, 2])
        y = rng.uniform(bounds[todo, 1], bounds[todo, 3])
        inside = shapely.contains_xy(shapes[todo], x, y)
        lon[todo[inside]], lat[todo[inside]] = x[inside], y[inside]
        todo = todo[~inside]
    if todo.size:
        inner = shapely.get_coordinates(shapely.point_on_surface(shapes[todo]))
        lon[todo], lat[todo] = inner[:, 0], inner[:, 1]
    return lon, lat


def _log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def _metric(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Rough metres (equirectangular at Nanchang): enough to pick the nearest teams."""
    return np.column_stack([lon * 111_320 * np.cos(np.radians(28.68)), lat * 110_574])


def build(frames: dict[str, gpd.GeoDataFrame], seed: int, data_dir: Path) -> dict:
    """The demo history: frames for ``cases``, ``case_escalations`` and ``dispatches``.

    Parameters
    ----------
    frames : dict
        The dataset's frames so far (``regions``, ``grids``, ``teams`` are used; the
        teams frame's ``status`` tells which teams may hold an active dispatch).
    seed : int
        The dataset's seed.
    data_dir : Path
        ``data/nanchang``; the dispatch rules are read from ``data/dispatch.toml``.
    """
    rng = np.random.default_rng([seed, 9])
    policy = rules.load(Path(data_dir).parent / "dispatch.toml")
    source = f"synthetic: geomap seed nanchang, demo history (seed {seed})"
    end = _teams.SNAPSHOT.tz_convert("UTC").to_pydatetime()
    grids, regions, teams = frames["grids"], frames["regions"], frames["teams"]
    parent = dict(zip(regions["code"], regions["parent_code"], strict=True))
    grid_codes = grids["code"].to_numpy()
    grid_communities = grids["community_code"].to_numpy()
    team_ids = teams["id"].to_numpy()
    team_lon, team_lat = teams.geometry.x.to_numpy(), teams.geometry.y.to_numpy()

    kinds = np.concatenate([np.full(n, k) for k, n in COUNTS.items()])
    n = kinds.size
    weights = grids["population"].to_numpy(float)
    which = rng.choice(len(grids), size=n, p=weights / weights.sum())
    lon, lat = _points_in(grids, which, rng)
    day = rng.uniform(0, DAYS, n)
    hour = np.where(rng.random(n) < 0.8, rng.uniform(7, 21, n), rng.uniform(0, 24, n))
    offset_min = (np.floor(day) * 24 + hour) * 60 - DAYS * 24 * 60
    reported = np.array([end + dt.timedelta(minutes=float(m)) for m in offset_min], dtype=object)
    order = np.argsort(reported, kind="stable")
    kinds, which, lon, lat, reported = (
        kinds[order],
        which[order],
        lon[order],
        lat[order],
        reported[order],
    )

    team_xy = _metric(team_lon, team_lat)
    team_kind = teams["kind"].to_numpy()
    team_caps = teams["capabilities"].to_numpy()
    deployed = teams["status"].to_numpy() == "deployed"
    trees = {}
    for kind, rule in policy.kinds.items():
        fits = np.isin(team_kind, rule.team_kinds)
        if rule.capabilities:
            fits &= np.array([bool(set(c) & set(rule.capabilities)) for c in team_caps])
        rows = np.flatnonzero(fits)
        busy_rows = np.flatnonzero(fits & deployed)
        trees[kind] = (rows, cKDTree(team_xy[rows]), busy_rows, cKDTree(team_xy[busy_rows]))
    used_active: set[int] = set()

    case_rows, climb_rows, dispatch_rows = [], [], []
    for i in range(n):
        kind = str(kinds[i])
        severity = SEVERITIES[rng.choice(4, p=SEVERITY_SHARES[kind])]
        grid_code, community = grid_codes[which[i]], grid_communities[which[i]]
        township = parent.get(community)
        district = parent.get(township)
        minutes = policy.accept_minutes(kind, severity)
        t0 = reported[i]
        accept = t0 + dt.timedelta(
            minutes=float(rng.lognormal(np.log(ACCEPT_MEDIAN_MIN[kind]), 0.9))
        )
        cancelled = rng.random() < CANCEL_SHARE
        teams_sent = 0
        if not cancelled and rng.random() < DISPATCH_SHARE[kind]:
            teams_sent = 2 if (kind == "incident" and severity in ("high", "critical")) else 1
        rows, tree, busy_rows, busy_tree = trees[kind]
        xy = _metric(np.array([lon[i]]), np.array([lat[i]]))[0]
        sent = []
        if teams_sent:
            dist, near = tree.query(xy, k=teams_sent)
            for d, j in zip(np.atleast_1d(dist), np.atleast_1d(near), strict=True):
                drive = float(d) * 1.4 / (DRIVE_KMH / 3.6) / 60 + 2
                sent.append([int(rows[j]), drive])
        arrive = accept + dt.timedelta(minutes=2 + max([s[1] for s in sent], default=0))
        low, high = RESOLVE_MIN[kind]
        resolve = (arrive if sent else accept) + dt.timedelta(
            minutes=float(_log_uniform(rng, low, high, 1)[0])
        )
        low, high = CHECK_MIN[kind]
        close = resolve + dt.timedelta(minutes=float(_log_uniform(rng, low, high, 1)[0]))
        cancel_at = accept + dt.timedelta(minutes=float(rng.uniform(2, 30))) if cancelled else None

        # The case as it stands at the snapshot.
        def seen(t):
            return t if t is not None and t <= end else None

        accepted_at, resolved_at, closed_at = seen(accept), seen(resolve), seen(close)
        cancelled_at = seen(cancel_at)
        if cancelled_at is not None:
            status, resolved_at, closed_at = "cancelled", None, None
        elif closed_at is not None:
            status = "closed"
        elif resolved_at is not None:
            status = "resolved"
        elif sent and seen(arrive) is not None:
            status = "on_scene"
        elif sent and accepted_at is not None:
            status = "dispatched"
        elif accepted_at is not None:
            status = "accepted"
        else:
            status = "reported"
        until = min(t for t in (accepted_at, cancelled_at, end) if t is not None)
        climbs, next_at = escalation.climbs("grid", t0, minutes, until)
        if accepted_at is not None or cancelled_at is not None:
            next_at = None
        case_id = i + 1
        for climb in climbs:
            climb_rows.append({"case_id": case_id, "level": climb.level, "at": climb.at})
        if status in ("dispatched", "on_scene") and busy_rows.size:
            # Active dispatches hold teams the snapshot shows deployed, one case each.
            _, near = busy_tree.query(xy, k=min(busy_rows.size, 40))
            free = [
                int(busy_rows[j])
                for j in np.atleast_1d(near)
                if int(busy_rows[j]) not in used_active
            ]
            sent = [[team, drive] for team, (_, drive) in zip(free, sent, strict=False)]
            used_active.update(team for team, _ in sent)
            if not sent:
                status = "accepted"
        if accepted_at is None:
            sent = []  # nobody accepted it yet: nobody was sent
        for team, drive in sent:
            released = resolved_at or cancelled_at
            on_scene = seen(arrive)
            if on_scene is not None and released is not None and on_scene > released:
                on_scene = None
            dispatch_rows.append(
                {
                    "case_id": case_id,
                    "team_id": int(team_ids[team]),
                    "status": "released" if released else ("on_scene" if on_scene else "assigned"),
                    "assigned_at": accepted_at,
                    "en_route_at": None,
                    "on_scene_at": on_scene,
                    "released_at": released,
                    "eta_min": round(drive, 2),
                    "origin": shapely.Point(team_lon[team], team_lat[team]),
                    "assigned_by": "值班指挥员 (synthetic)",
                    "note": None,
                    "source": source,
                }
            )
        last = max(
            t for t in (t0, accepted_at, resolved_at, closed_at, cancelled_at) if t is not None
        )
        level = climbs[-1].level if climbs else "grid"
        case_rows.append(
            {
                "id": case_id,
                "kind": kind,
                "severity": severity,
                "title": str(rng.choice(TITLES[kind])),
                "description": None,
                "address": None,
                "status": status,
                "geom": shapely.Point(lon[i], lat[i]),
                "located": "grid",
                "grid_code": grid_code,
                "community_code": community,
                "township_code": township,
                "district_code": district,
                "level": level,
                "level_since": climbs[-1].at if climbs else t0,
                "escalate_at": next_at,
                "accept_minutes": minutes,
                "resolve_by": policy.resolve_by(kind, severity, t0),
                "reporter_name": None,
                "reporter_phone": None,
                "reported_at": t0,
                "accepted_at": accepted_at,
                "resolved_at": resolved_at,
                "closed_at": closed_at,
                "cancelled_at": cancelled_at,
                "resolved_by": "网格员 (synthetic)" if resolved_at else None,
                "resolved_key_id": None,
                "created_by": "demo history (synthetic)",
                "updated_at": last,
                "source": source,
            }
        )

    cases = gpd.GeoDataFrame(pd.DataFrame(case_rows), geometry="geom", crs="EPSG:4326")
    dispatches = pd.DataFrame(dispatch_rows)
    dispatches.insert(0, "id", np.arange(1, len(dispatches) + 1))
    dispatches = gpd.GeoDataFrame(dispatches, geometry="origin", crs="EPSG:4326")
    escalations = pd.DataFrame(climb_rows, columns=["case_id", "level", "at"])
    return {"cases": cases, "case_escalations": escalations, "dispatches": dispatches}


def team_states(teams: gpd.GeoDataFrame, dispatches: pd.DataFrame) -> gpd.GeoDataFrame:
    """The teams with their status made to agree with the active dispatches.

    The teams' draw marks a share ``deployed`` (placed farther from their base, the pool
    the active dispatches are taken from); only some of them get a case. The service
    keeps a team ``deployed`` exactly while it holds an active dispatch and frees it when
    the dispatch is released, so the snapshot does the same: a team on an active
    dispatch is ``deployed``, a ``deployed`` team without one is ``available`` again (on
    its way back, where it was last seen); ``off_duty`` teams without a dispatch stay so.

    Parameters
    ----------
    teams : GeoDataFrame
        The teams frame (``id``, ``status``).
    dispatches : DataFrame
        The dispatches frame of :func:`build` (``team_id``, ``status``).

    Returns
    -------
    GeoDataFrame
        A copy of ``teams`` with the agreeing ``status``.
    """
    active = dispatches.loc[dispatches["status"] != "released", "team_id"].to_numpy()
    on_dispatch = np.isin(teams["id"].to_numpy(), active)
    status = teams["status"].to_numpy(dtype=object, copy=True)
    status[(status == "deployed") & ~on_dispatch] = "available"
    status[on_dispatch] = "deployed"
    return teams.assign(status=status)

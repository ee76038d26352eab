"""A suggestion's question: the :class:`Plan` a run answers, and its checks.

:func:`make_plan` validates what ``POST /api/plans``, the plan page and ``geomap plan
sites`` ask (the venue set, the candidates or an uploaded candidate layer, the area, the
reach and the model), every error naming its field; :func:`geomap.planning.suggest.run`
answers the checked plan.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from geomap import vocab
from geomap.analysis import circles
from geomap.errors import InvalidInput
from geomap.params import check_choice, check_choices, check_int, check_lonlat, check_positive
from geomap.routing import index

MODELS = ("coverage", "covering", "median")
CANDIDATE_SOURCES = ("stations", "layer")
MAX_N = 200
MAX_LAYER_POINTS = 20_000


@dataclass(frozen=True)
class Plan:
    """The normalised question of a suggestion run (echoed in answers).

    Parameters
    ----------
    of : str, default "red"
        The venue set locked in (one of ``circles.VENUE_SETS``).
    kinds : list of str, optional
        Only venues of these kinds.
    candidates : {"stations", "layer"}, default "stations"
        Where candidate sites come from: the stations not in the venue set, or ``layer``.
    candidate_kinds : list of str, optional
        Only stations of these kinds as candidates.
    layer : list of dict, optional
        Uploaded candidates (:func:`check_layer`), WGS 84.
    area : str, optional
        A region code: candidates and the residents counted are inside it.
    mode : {"walk", "drive"}, default "walk"
        The travel mode.
    minutes : float or None, default 15.0
        The travel time, minutes (None when ``distance_m`` is given).
    distance_m : float, optional
        A walking distance, metres, walked at ``walk_speed_kmh``.
    model : {"coverage", "covering", "median"}, default "coverage"
        Maximal coverage, set covering or p-median (:mod:`geomap.planning.models`).
    n : int, default 5
        Sites to choose (coverage and median), 1 to ``MAX_N``.
    target_share : float, optional
        The share of reachable residents to cover (covering; 1 when not given).
    walk_speed_kmh : float, default 4.5
        The walking speed, km/h.
    access_m : float, default 50.0
        How far from a reached street a point counts as reached, metres.
    time_limit_s : float, default 60.0
        The solver's time limit, seconds.
    """

    of: str = "red"
    kinds: list[str] | None = None
    candidates: str = "stations"
    candidate_kinds: list[str] | None = None
    layer: list[dict] | None = None
    area: str | None = None
    mode: str = "walk"
    minutes: float | None = 15.0
    distance_m: float | None = None
    model: str = "coverage"
    n: int = 5
    target_share: float | None = None
    walk_speed_kmh: float = 4.5
    access_m: float = 50.0
    time_limit_s: float = 60.0

    @property
    def budget_s(self) -> float:
        """The travel budget in seconds (a distance is walked at the walking speed)."""
        if self.minutes is not None:
            return self.minutes * 60.0
        return self.distance_m / (self.walk_speed_kmh / 3.6)

    @property
    def reach(self) -> index.Reach:
        """The reach rule of the plan, as the routing index keeps reach sets."""
        return index.Reach(self.mode, self.budget_s, self.walk_speed_kmh, self.access_m)

    def as_dict(self) -> dict[str, Any]:
        """The plan as answers echo it (the layer as its number of points).

        Returns
        -------
        dict
            Every field.
        """
        out = asdict(self)
        out["layer"] = None if self.layer is None else len(self.layer)
        return out


def check_layer(features: Any) -> list[dict]:
    """An uploaded candidate layer, checked; every bad feature is named by its number.

    Parameters
    ----------
    features : object
        A GeoJSON FeatureCollection of points in WGS 84, or a list of
        ``{"name", "lon", "lat"}``; at most ``MAX_LAYER_POINTS``.

    Returns
    -------
    list of dict
        ``name``, ``kind``, ``lon``, ``lat`` per candidate.

    Raises
    ------
    InvalidInput
        Not a collection of points, another CRS, too many points or a bad point.
    """
    if isinstance(features, dict):
        if features.get("type") != "FeatureCollection" or not isinstance(
            features.get("features"), list
        ):
            raise InvalidInput("layer must be a GeoJSON FeatureCollection of points",
                               field="layer")  # fmt: skip
        crs = (features.get("crs") or {}).get("properties", {}).get("name", "")
        if crs and not crs.upper().endswith(("4326", "CRS84")):
            raise InvalidInput(f"layer must be in WGS84 (EPSG:4326), not {crs}", field="layer")
        rows = []
        for i, f in enumerate(features["features"], start=1):
            geom = (f or {}).get("geometry") or {}
            if geom.get("type") != "Point" or len(geom.get("coordinates") or []) < 2:
                raise InvalidInput(f"layer feature {i}: geometry must be a Point", field="layer")
            props = f.get("properties") or {}
            rows.append({"name": props.get("name"), "kind": props.get("kind"),
                         "lon": geom["coordinates"][0], "lat": geom["coordinates"][1]})  # fmt: skip
        features = rows
    if not isinstance(features, list) or not features:
        raise InvalidInput("layer must hold at least one candidate point", field="layer")
    if len(features) > MAX_LAYER_POINTS:
        raise InvalidInput(f"layer holds {len(features)} points; at most {MAX_LAYER_POINTS}",
                           field="layer")  # fmt: skip
    out = []
    for i, row in enumerate(features, start=1):
        if not isinstance(row, dict):
            raise InvalidInput(f"layer point {i} must be an object", field="layer")
        try:
            lon, lat = check_lonlat(row.get("lon"), row.get("lat"))
        except InvalidInput as exc:
            raise InvalidInput(f"layer point {i}: {exc.message}", field="layer") from None
        name = row.get("name")
        out.append({"name": str(name) if name not in (None, "") else f"#{i}",
                    "kind": str(row["kind"]) if row.get("kind") else None,
                    "lon": lon, "lat": lat})  # fmt: skip
    return out


def make_plan(
    *, of: str = "red", kind: list[str] | None = None, candidates: str = "stations",
    candidate_kind: list[str] | None = None, layer: Any = None, area: str | None = None,
    mode: str = "walk", minutes: Any = None, distance_m: Any = None, model: str = "coverage",
    n: Any = 5, target_share: Any = None, walk_speed_kmh: float = 4.5, access_m: float = 50.0,
    time_limit_s: Any = 60.0,
) -> Plan:  # fmt: skip
    """Validate a suggestion's inputs; every error names its field.

    Parameters
    ----------
    of, kind : see :class:`Plan`
        The venue set (``of``, ``kinds``).
    candidates, candidate_kind, layer, area : see :class:`Plan`
        The candidates.
    mode, minutes, distance_m, walk_speed_kmh, access_m : see :class:`Plan`
        The reach; ``minutes`` up to ``circles.MAX_MINUTES``, ``distance_m`` up to
        ``circles.MAX_DISTANCE_M``, ``walk_speed_kmh`` up to 20.
    model, n, target_share, time_limit_s : see :class:`Plan`
        The model; ``time_limit_s`` up to 600.

    Returns
    -------
    Plan
        The checked question.

    Raises
    ------
    InvalidInput
        A bad value, or values that do not go together (a layer without
        ``candidates="layer"``, a distance when driving, ``target_share`` without covering).
    """
    of = check_choice(of, "of", circles.VENUE_SETS)
    allowed = {"red": {**vocab.SITE_KINDS, "red_station": None}, "sites": vocab.SITE_KINDS,
               "stations": vocab.STATION_KINDS}[of]  # fmt: skip
    kinds = check_choices(kind, "kind", allowed)
    candidates = check_choice(candidates, "candidates", CANDIDATE_SOURCES)
    candidate_kinds = check_choices(candidate_kind, "candidate_kind", vocab.STATION_KINDS)
    if candidates == "layer":
        if layer is None:
            raise InvalidInput("candidates=layer needs a layer of candidate points", field="layer")
        layer = check_layer(layer)
    elif layer is not None:
        raise InvalidInput("a layer is given: set candidates=layer", field="candidates")
    mode = check_choice(mode, "mode", ("walk", "drive"))
    if minutes is not None and distance_m is not None:
        raise InvalidInput("give minutes or distance_m, not both", field="minutes")
    if distance_m is not None and mode != "walk":
        raise InvalidInput("distance_m is a walking distance: use mode=walk", field="distance_m")
    model = check_choice(model, "model", MODELS)
    target = None
    if model == "covering":
        target = 1.0 if target_share is None else check_positive(target_share, "target_share", 1.0)
    elif target_share is not None:
        raise InvalidInput("target_share is for model=covering", field="target_share")
    if area is not None and (not isinstance(area, str) or not area.strip()):
        raise InvalidInput("area must be a region code", field="area")
    return Plan(
        of=of, kinds=kinds, candidates=candidates, candidate_kinds=candidate_kinds, layer=layer,
        area=area.strip() if area else None, mode=mode,
        minutes=(check_positive(minutes, "minutes", circles.MAX_MINUTES) if minutes is not None
                 else (None if distance_m is not None else 15.0)),
        distance_m=(None if distance_m is None
                    else check_positive(distance_m, "distance_m", circles.MAX_DISTANCE_M)),
        model=model, n=check_int(n if n is not None else 5, "n", 1, MAX_N), target_share=target,
        walk_speed_kmh=check_positive(walk_speed_kmh, "walk_speed_kmh", 20.0),
        access_m=float(access_m),
        time_limit_s=check_positive(time_limit_s, "time_limit_s", 600.0),
    )  # fmt: skip

"""The analysis questions a request may ask, parsed and checked once for every face.

``/api/circles`` and the circles map's data (``/map/circles/data``) ask the same question,
as do ``/api/coverage`` and ``/map/coverage/data``: each pair builds it here, so that both
refuse the same inputs (the analyses' own checks, then the per-request cost limits of
:mod:`geomap.web.costs`) with the same 400 naming the same field. The answer is then
computed inside an analysis slot (:func:`geomap.web.guard.heavy`) by the view.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from geomap.analysis import circles, coverage, covergrids
from geomap.config import Settings
from geomap.web import costs
from geomap.web.args import Args


def circles_query(args: Args, settings: Settings) -> circles.Query:
    """The circles asked for by ``of``, ``kind``, ``minutes``, ``distance_m``, checked.

    Parameters
    ----------
    args : Args
        The request's arguments.
    settings : Settings
        Walking speed and access distance of the service.

    Returns
    -------
    circles.Query

    Raises
    ------
    InvalidInput
        A malformed value, or circles larger than one request may build (field
        ``minutes``/``distance_m``).
    """
    query = circles.make_query(
        of=args.str("of", "red"),
        kinds=args.list("kind"),
        minutes=args.raw("minutes"),
        distance_m=args.raw("distance_m"),
        walk_speed_kmh=settings.walk_speed_kmh,
        access_m=settings.circle_access_m,
    )
    costs.check_circles(query)
    return query


def coverage_query(
    args: Args,
    settings: Settings,
    session: Session,
    *,
    default_within_m: float | None = None,
) -> covergrids.Query:
    """The coverage asked for by ``of``, ``kind``, ``by``, ``within_m``/``within_min``,
    ``level`` and ``order``, checked.

    Parameters
    ----------
    args : Args
        The request's arguments.
    settings : Settings
        The service's walking speed (the cost limits depend on it).
    session : Session
        The request's session.
    default_within_m : float, optional
        The reach when neither ``within_m`` nor ``within_min`` is given (the coverage map
        asks for 1 km; the API requires one of them).

    Returns
    -------
    covergrids.Query

    Raises
    ------
    InvalidInput
        A malformed value, or a coverage question too costly for one request (field
        ``within_m``).
    """
    within_m, within_min = args.raw("within_m"), args.raw("within_min")
    if within_m is None and within_min is None:
        within_m = default_within_m
    query = coverage.make_query(
        of=args.str("of", "stations"),
        kinds=args.list("kind"),
        by=args.str("by", "distance"),
        within_m=within_m,
        within_min=within_min,
        level=args.str("level", "grid"),
        order=args.str("order", "code"),
    )
    costs.check_coverage(session, query, walk_speed_kmh=settings.walk_speed_kmh)
    return query

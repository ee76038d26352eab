"""``geomap circles``: the 15-minute red culture circles, and the options their commands share."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from geomap import config
from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings

if TYPE_CHECKING:
    from geomap.analysis.circles import Query


@click.group("circles")
def circles_group() -> None:
    """15-minute red culture circles (walking isochrones of venues)."""


def circles_query(
    settings: config.Settings,
    of: str,
    kinds: tuple[str, ...],
    minutes: float | None,
    distance_m: float | None,
) -> Query:
    """The circles' query from the options of :func:`circle_options` and the settings.

    Parameters
    ----------
    settings : Settings
        Walking speed and the access width around reached streets.
    of, kinds, minutes, distance_m
        The options' values (``--of``, ``--kind``, ``--minutes``, ``--distance-m``).

    Returns
    -------
    Query
        Checked by :func:`geomap.analysis.circles.make_query`.
    """
    from geomap.analysis import circles

    return circles.make_query(
        of=of,
        kinds=list(kinds) or None,
        minutes=minutes,
        distance_m=distance_m,
        walk_speed_kmh=settings.walk_speed_kmh,
        access_m=settings.circle_access_m,
    )


_circle_options = [
    click.option("--of", "of", default="red", show_default=True,
                 type=click.Choice(["red", "sites", "stations"]),
                 help="red: every red culture site and red station."),
    click.option("--kind", "kinds", multiple=True, help="Venue kind (repeatable)."),
    click.option("--minutes", type=float, default=None, help="Walking budget (default 15)."),
    click.option("--distance-m", type=float, default=None, help="Walking distance budget."),
]  # fmt: skip


def circle_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The venue and budget options shared by the circles commands."""
    for option in reversed(_circle_options):
        func = option(func)
    return func


@circles_group.command("build")
@circle_options
@click.pass_context
@handle_errors
def circles_build(ctx: click.Context, of: str, kinds: tuple[str, ...], minutes: float | None,
                  distance_m: float | None) -> None:  # fmt: skip
    """Build (and cache) the circles that are missing, with a progress bar."""
    from tqdm import tqdm

    from geomap import db as dbmod
    from geomap.analysis import circles
    from geomap.ops import audit, utc_now

    settings = _settings(ctx)
    query = circles_query(settings, of, kinds, minutes, distance_m)
    with dbmod.session_scope(settings) as session, tqdm(
        desc="circles", unit="venue", file=sys.stderr
    ) as bar:

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        counts = circles.build(session, query, progress=step)
        audit.record(session, audit.Actor.cli(), "circles.build", at=utc_now(),
                     changes={"query": query.as_dict(), **counts})  # fmt: skip
    click.echo(
        f"{counts['built']:,} circles built, {counts['venues'] - counts['built']:,} cached; "
        f"{counts['without_street']:,} venues have no walkable street within "
        f"{circles.MAX_SNAP_M:g} m"
    )

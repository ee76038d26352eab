"""``geomap nearest``: the nearest teams to a point, as JSON."""

from __future__ import annotations

import click

from geomap.cli._common import echo_json, handle_errors
from geomap.cli._common import settings as _settings


@click.command("nearest")
@click.option("--lon", required=True, type=float)
@click.option("--lat", required=True, type=float)
@click.option("--crs", "crs_text", default="EPSG:4326", show_default=True)
@click.option("-k", "k", default=5, show_default=True, type=int)
@click.option(
    "--by", default="distance", show_default=True, type=click.Choice(["distance", "walk", "drive"])
)
@click.option("--kind", "kinds", multiple=True, help="Team kind (repeatable).")
@click.option("--status", "statuses", multiple=True, help="Team status (default available).")
@click.option("--capability", default=None)
@click.pass_context
@handle_errors
def nearest_cmd(
    ctx: click.Context,
    lon: float,
    lat: float,
    crs_text: str,
    k: int,
    by: str,
    kinds: tuple[str, ...],
    statuses: tuple[str, ...],
    capability: str | None,
) -> None:
    """The nearest teams to a point, as JSON."""
    from geomap import crs
    from geomap import db as dbmod
    from geomap.analysis import nearest

    settings = _settings(ctx)
    lon, lat = crs.lonlat_to_wgs84(lon, lat, crs.parse_crs(crs_text))
    query = nearest.make_query(
        lon,
        lat,
        k=k,
        by=by,
        kinds=list(kinds) or None,
        statuses=list(statuses) or None,
        capability=capability,
    )
    with dbmod.session_scope(settings) as session:
        answer = nearest.nearest_teams(session, query, walk_speed_kmh=settings.walk_speed_kmh)
    echo_json(answer)

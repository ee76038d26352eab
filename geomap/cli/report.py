"""``geomap report``: planners' reports (coverage, circles) as files."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings
from geomap.cli.circles import circle_options, circles_query


@click.group()
def report() -> None:
    """Planners' reports as files."""


@report.command("coverage")
@click.option(
    "--of",
    "of",
    default="stations",
    show_default=True,
    type=click.Choice(["stations", "teams", "sites"]),
)
@click.option("--kind", "kinds", multiple=True, help="Provider kind (repeatable).")
@click.option("--within-m", type=float, default=None, help="Reach in metres (by distance).")
@click.option("--within-min", type=float, default=None, help="Reach in minutes (walk/drive).")
@click.option(
    "--by", default="distance", show_default=True, type=click.Choice(["distance", "walk", "drive"])
)
@click.option(
    "--level",
    "levels",
    multiple=True,
    type=click.Choice(["grid", "community", "township", "district"]),
    help="Levels in the report (default: all four).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="report.html, report.csv or report.gpkg (one layer per level).",
)
@click.option("--lang", default="zh", show_default=True, type=click.Choice(["zh", "en"]),
              help="Language of the HTML report.")
@click.pass_context
@handle_errors
def report_coverage(
    ctx: click.Context,
    of: str,
    kinds: tuple[str, ...],
    within_m: float | None,
    within_min: float | None,
    by: str,
    levels: tuple[str, ...],
    out: Path,
    lang: str,
) -> None:
    """Coverage of grids (and their communities, townships, districts) as a file."""
    import dataclasses

    from tqdm import tqdm

    from geomap import db as dbmod
    from geomap import reports
    from geomap.analysis import coverage, covergrids

    settings = _settings(ctx)
    levels = levels or coverage.LEVELS
    query = coverage.make_query(
        of=of,
        kinds=list(kinds) or None,
        by=by,
        within_m=within_m,
        within_min=within_min,
        level=levels[0],
    )
    with_geometry = out.suffix.lower() in (".gpkg", ".html")  # the HTML draws a map
    by_level = {}
    with (
        dbmod.session_scope(settings) as session,
        tqdm(total=len(levels) + 1, desc="coverage", unit="step", file=sys.stderr) as bar,
    ):
        bar.set_postfix_str("grids")
        grids = covergrids.grid_coverage(session, query, walk_speed_kmh=settings.walk_speed_kmh,
                                         access_m=settings.circle_access_m)  # fmt: skip
        bar.update(1)
        for level in levels:
            bar.set_postfix_str(level)
            by_level[level] = coverage.coverage(
                session,
                dataclasses.replace(query, level=level),
                grids=grids,
                walk_speed_kmh=settings.walk_speed_kmh,
                with_geometry=with_geometry,
            )
            bar.update(1)
    reports.write(out, by_level, query.as_dict(), lang=lang)
    summary = by_level[levels[0]]["summary"]
    click.echo(
        f"wrote {out}: {summary['covered_units']:,}/{summary['units']:,} {levels[0]}s "
        f"covered, {summary['covered_share']:.1%} of residents"
    )


@report.command("circles")
@circle_options
@click.option("--level", "levels", multiple=True,
              type=click.Choice(["grid", "community", "township", "district"]),
              help="Levels in the report (default: all four).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="report.html, report.csv or report.gpkg (one layer per level).")
@click.option("--lang", default="zh", show_default=True, type=click.Choice(["zh", "en"]),
              help="Language of the HTML report.")
@click.pass_context
@handle_errors
def report_circles(ctx: click.Context, of: str, kinds: tuple[str, ...], minutes: float | None,
                   distance_m: float | None, levels: tuple[str, ...], out: Path,
                   lang: str) -> None:
    """Residents inside the circles, by grid, community, township and district, as a file."""
    from geomap import db as dbmod
    from geomap import reports
    from geomap.analysis import circles

    settings = _settings(ctx)
    query = circles_query(settings, of, kinds, minutes, distance_m)
    levels = levels or ("grid", "community", "township", "district")
    with dbmod.session_scope(settings) as session:
        grids = circles.grid_rows(session, query)
        by_level = {
            level: circles.circle_coverage(session, query, level=level, grids=grids,
                                           with_geometry=(level == "grid" or out.suffix.lower()
                                                          == ".gpkg")
                                           and out.suffix.lower() != ".csv")
            for level in levels
        }  # fmt: skip
    reports.write(out, by_level, {**query.as_dict(), "by": "walk",
                                  "within_min": query.minutes, "within_m": query.distance_m},
                  lang=lang)
    summary = by_level[levels[0]]["summary"]
    click.echo(f"wrote {out}: {summary['covered_share']:.1%} of residents inside the circles")

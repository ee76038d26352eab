"""``geomap plan``: where the next stations go, and scenarios."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from geomap.cli._common import echo_json, handle_errors
from geomap.cli._common import settings as _settings


@click.group("plan")
def plan_group() -> None:
    """Planners: where the next stations go, scenarios."""


@plan_group.command("sites")
@click.option("--of", "of", default="red", show_default=True,
              type=click.Choice(["red", "sites", "stations"]),
              help="The venue set kept as it is (red: red culture sites and red stations).")
@click.option("--kind", "kinds", multiple=True, help="Venue kind of the set (repeatable).")
@click.option("--candidate-kind", "candidate_kinds", multiple=True,
              help="Only stations of these kinds are candidates (repeatable).")
@click.option("--candidates-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Candidate points instead of stations: a stations file as `geomap load` "
              "reads it (GeoJSON, GPKG, Shapefile, CSV with lon/lat; name, kind).")
@click.option("--crs", default=None, help="CRS of the candidates file (as `geomap load`).")
@click.option("--area", default=None, help="Only candidates and residents in this region code.")
@click.option("--model", default="coverage", show_default=True,
              type=click.Choice(["coverage", "covering", "median"]),
              help="coverage: add N sites covering most residents; covering: fewest sites "
              "to reach --target; median: least total travel time.")
@click.option("-n", "n", type=int, default=5, show_default=True, help="Sites to add.")
@click.option("--target", "target_share", type=float, default=None,
              help="covering: share of residents to reach (default: everyone reachable).")
@click.option("--mode", default="walk", show_default=True, type=click.Choice(["walk", "drive"]))
@click.option("--minutes", type=float, default=None, help="Travel time budget (default 15).")
@click.option("--distance-m", type=float, default=None, help="Or a walking distance budget.")
@click.option("--time-limit", "time_limit_s", type=float, default=60.0, show_default=True,
              help="Seconds the solver may take.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Also write the answer: .csv (sites), .gpkg or .html (report).")
@click.option("--lang", default="zh", show_default=True, type=click.Choice(["zh", "en"]))
@click.option("--save-scenario", default=None, help="Save the sites as a scenario (name).")
@click.pass_context
@handle_errors
def plan_sites(ctx: click.Context, of: str, kinds: tuple[str, ...],
               candidate_kinds: tuple[str, ...], candidates_file: Path | None, crs: str | None,
               area: str | None, model: str, n: int, target_share: float | None, mode: str,
               minutes: float | None, distance_m: float | None, time_limit_s: float,
               out: Path | None, lang: str, save_scenario: str | None) -> None:
    """Suggest where the next sites go; prints the answer as JSON (progress on stderr)."""
    from tqdm import tqdm

    from geomap import db as dbmod
    from geomap import reports
    from geomap.ops import audit
    from geomap.planning import question, scenarios, suggest

    settings = _settings(ctx)
    layer = None
    if candidates_file is not None:
        from geomap import importers

        # Validated as a stations file (name, kind, points; CRS normalised to WGS84).
        frame, _ = importers.read_layer(candidates_file, "stations", crs=crs)
        layer = [{"name": name, "kind": kind, "lon": g.x, "lat": g.y}
                 for name, kind, g in zip(frame["name"], frame["kind"], frame.geometry,
                                          strict=True)]
    plan = question.make_plan(
        of=of, kind=list(kinds) or None, candidate_kind=list(candidate_kinds) or None,
        candidates="layer" if layer is not None else "stations", layer=layer, area=area,
        model=model, n=n, target_share=target_share, mode=mode, minutes=minutes,
        distance_m=distance_m, time_limit_s=time_limit_s,
        walk_speed_kmh=settings.walk_speed_kmh, access_m=settings.circle_access_m,
    )  # fmt: skip
    with dbmod.session_scope(settings) as session, tqdm(
        total=100, desc="plan", unit="%", file=sys.stderr
    ) as bar:

        def report(share: float, message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(round(share * 100) - bar.n)

        answer = suggest.run(session, plan, suggest.Progress(report))
        geometry = reports.grid_geometry(session, [g["code"] for g in answer["grids"]])
        if save_scenario:
            scenarios.create(session, "local", scenarios.from_plan(answer, save_scenario),
                             origin="cli", actor=audit.Actor.cli())  # fmt: skip
    if out is not None:
        reports.write_plan(out, answer, geometry=geometry, lang=lang)
        click.echo(f"wrote {out}", err=True)
    for site in answer["sites"]:
        site.pop("circle", None)
    echo_json(answer, indent=1)

"""The ``geomap`` command: a thin layer over the package's functions.

Every command reads the settings (``GEOMAP_*``) when it runs; errors of the
:class:`~geomap.errors.GeomapError` family print their message and exit with status 1
(2 for configuration problems).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from geomap import config
from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings
from geomap.errors import ConfigError


@click.group()
@click.version_option(package_name="geomap")
@click.pass_context
def main(ctx: click.Context) -> None:
    """geomap: the battle map (作战图) service for grid-governance emergency teams."""
    ctx.ensure_object(dict)


# -- database ------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """The database: the embedded PostGIS cluster and the schema."""


def _cluster(settings: config.Settings):
    from geomap import pg

    if settings.database_url:
        raise ConfigError(
            "GEOMAP_DATABASE_URL is set: geomap uses that database and manages no cluster"
        )
    return pg.Cluster(settings.state_dir, port=settings.pg_port)


@db.command("up")
@click.pass_context
@handle_errors
def db_up(ctx: click.Context) -> None:
    """Create (once) and start the embedded PostGIS, then migrate the schema."""
    from geomap import db as dbmod

    settings = _settings(ctx)
    if not settings.database_url:
        cluster = _cluster(settings)
        cluster.up()
        click.echo(f"embedded PostGIS {cluster.status()}")
    dbmod.migrate(settings)
    click.echo("schema is at the latest migration")


@db.command("down")
@click.pass_context
@handle_errors
def db_down(ctx: click.Context) -> None:
    """Stop the embedded PostGIS (data stays)."""
    cluster = _cluster(_settings(ctx))
    cluster.stop()
    click.echo(f"embedded PostGIS {cluster.status()}")


@db.command("status")
@click.pass_context
@handle_errors
def db_status(ctx: click.Context) -> None:
    """Say whether the embedded PostGIS exists and runs (exit 1 when it does not run)."""
    cluster = _cluster(_settings(ctx))
    status = cluster.status()
    click.echo(f"embedded PostGIS {status}")
    if not status.running:
        sys.exit(1)


@db.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--down", is_flag=True, help="Downgrade to --revision (e.g. base) instead.")
@click.pass_context
@handle_errors
def db_migrate(ctx: click.Context, revision: str, down: bool) -> None:
    """Apply the Alembic migrations (or undo them with --down)."""
    from geomap import db as dbmod

    dbmod.migrate(_settings(ctx), revision, down=down)
    click.echo(f"schema {'downgraded' if down else 'upgraded'} to {revision}")


# -- data ----------------------------------------------------------------------------------
@main.command("seed")
@click.argument("dataset", type=click.Choice(["nanchang"]))
@click.option("--seed", "seed_value", type=int, default=None, help="Random seed (default: fixed).")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already holds grids.")
@click.pass_context
@handle_errors
def seed(ctx: click.Context, dataset: str, seed_value: int | None, if_empty: bool) -> None:
    """Generate the default dataset (real where real data exists) and load it.

    Replaces every table's content, all-or-nothing.
    """
    import sqlalchemy as sa
    from tqdm import tqdm

    from geomap import db as dbmod
    from geomap import storage
    from geomap.analysis import inventory
    from geomap.ops import audit, escalation, utc_now
    from geomap.seed import nanchang

    settings = _settings(ctx)
    with dbmod.session_scope(settings) as session:
        if if_empty and inventory.counts(session)["grids"] > 0:
            click.echo("the database already holds a dataset; nothing to do (--if-empty)")
            return
    kwargs = {} if seed_value is None else {"seed": seed_value}
    with tqdm(desc=f"generating {dataset}", unit="step", file=sys.stderr) as bar:

        def step(name: str, rows: int) -> None:
            bar.set_postfix_str(f"{name}: {rows:,}")
            bar.update(1)

        frames = nanchang.generate(settings.data_dir / "nanchang", progress=step, **kwargs)
    with (
        dbmod.session_scope(settings) as session,
        tqdm(total=len(frames), desc="loading", unit="table", file=sys.stderr) as bar,
    ):

        def loaded(name: str, rows: int) -> None:
            bar.set_postfix_str(f"{name}: {rows:,}")
            bar.update(1)

        storage.replace_all(session.connection(), frames, progress=loaded)
        counts = inventory.counts(session)
        escalation.ensure_partitions(session, utc_now())  # position history months ahead
        change = {"dataset": dataset, "seed": seed_value, "counts": counts}
        audit.record(session, audit.Actor.cli(), "dataset.replace", at=utc_now(), changes=change)
    with dbmod.session_scope(settings) as session:
        session.execute(sa.text("ANALYZE"))  # fresh planner statistics for the new rows
    click.echo(", ".join(f"{k} {v:,}" for k, v in counts.items()))


@main.command("provenance")
@click.option("--check", is_flag=True, help="Only compare; exit 1 when a file is out of date.")
@click.option("--seed", "seed_value", type=int, default=None, help="Random seed (default: fixed).")
@click.pass_context
@handle_errors
def provenance_cmd(ctx: click.Context, check: bool, seed_value: int | None) -> None:
    """Write data/nanchang/PROVENANCE.md and community_matching.csv from the dataset.

    Both are generated from the default dataset (what is real, what synthetic, row counts,
    credits; how each real community was attached to a township polygon). With --check,
    say which file differs instead of writing.
    """
    from geomap.seed import nanchang
    from geomap.seed import provenance as seed_provenance

    settings = _settings(ctx)
    seed = nanchang.DEFAULT_SEED if seed_value is None else seed_value
    stale = []
    for path, text in seed_provenance.outputs(settings.data_dir / "nanchang", seed).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            click.echo(f"{path}: up to date")
        elif check:
            stale.append(path)
            click.echo(f"{path}: out of date (run: geomap provenance)")
        else:
            path.write_text(text, encoding="utf-8")
            click.echo(f"{path}: written")
    if stale:
        sys.exit(1)


@main.command("load")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--layer",
    required=True,
    type=click.Choice(["grids", "stations", "sites", "teams", "regions"]),
    help="Which table the file feeds.",
)
@click.option(
    "--crs", "crs_text", default=None, help="CRS of the file: EPSG:n, CGCS2000, GCJ02, BD09."
)
@click.option("--encoding", default=None, help="Text encoding of a Shapefile's .dbf or a CSV.")
@click.option("--no-repair", is_flag=True, help="Reject invalid polygons instead of repairing.")
@click.option("--source", default=None, help="Provenance, 'real: ...' or 'synthetic: ...'.")
@click.pass_context
@handle_errors
def load(
    ctx: click.Context,
    path: Path,
    layer: str,
    crs_text: str | None,
    encoding: str | None,
    no_repair: bool,
    source: str | None,
) -> None:
    """Import a GeoJSON, GeoPackage, Shapefile (or a .zip of one) or CSV file, all-or-nothing."""
    from geomap import db as dbmod
    from geomap import importers

    with dbmod.session_scope(_settings(ctx)) as session:
        report = importers.import_file(
            session.connection(),
            path,
            layer,
            crs=crs_text,
            encoding=encoding,
            repair=not no_repair,
            source=source,
        )
    for warning in report.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"loaded {report.rows:,} {layer} from {path}")


@main.group()
def network() -> None:
    """The road network used for travel times."""


@network.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--source", default=None, help="Provenance, 'real: ...' (default: OSM + file name).")
@click.pass_context
@handle_errors
def network_import(ctx: click.Context, path: Path, source: str | None) -> None:
    """Replace the road network with an OpenStreetMap extract (.osm.pbf or .osm)."""
    from geomap import db as dbmod
    from geomap import network as netmod

    with dbmod.session_scope(_settings(ctx)) as session:
        counts = netmod.import_network(session.connection(), path, source=source)
    click.echo(f"road_nodes {counts['road_nodes']:,}, road_edges {counts['road_edges']:,}")
    # Pieces cut off from the rest (at the extract's edge, behind one-way streets): points
    # snapped there reach little. Said plainly, so a planner knows before trusting circles.
    for mode in netmod.MODES:
        nodes, edges = counts[f"{mode}_island_nodes"], counts[f"{mode}_island_edges"]
        click.echo(
            f"{mode}: {nodes:,} nodes and {edges:,} edges lie outside the largest connected "
            "part of the network"
        )


@main.command("nearest")
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
    import json

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
    click.echo(json.dumps(answer, ensure_ascii=False, indent=2, default=str))


@main.group()
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
    from geomap.analysis import coverage

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
        grids = coverage.grid_coverage(session, query, walk_speed_kmh=settings.walk_speed_kmh,
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


@main.group("circles")
def circles_group() -> None:
    """15-minute red culture circles (walking isochrones of venues)."""


def _circles_query(settings, of, kinds, minutes, distance_m):
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

    settings = _settings(ctx)
    query = _circles_query(settings, of, kinds, minutes, distance_m)
    with dbmod.session_scope(settings) as session, tqdm(
        desc="circles", unit="venue", file=sys.stderr
    ) as bar:

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        counts = circles.build(session, query, progress=step)
    click.echo(
        f"{counts['built']:,} circles built, {counts['venues'] - counts['built']:,} cached; "
        f"{counts['without_street']:,} venues have no walkable street within "
        f"{circles.MAX_SNAP_M:g} m"
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
    query = _circles_query(settings, of, kinds, minutes, distance_m)
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


@main.group()
def keys() -> None:
    """API keys (hashed at rest, with a role) and embed tokens."""


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(["commander", "planner", "viewer"]))
@click.option("--name", required=True, help="Who or what uses the key.")
@click.pass_context
@handle_errors
def keys_create(ctx: click.Context, role: str, name: str) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    from geomap import auth
    from geomap import db as dbmod
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(_settings(ctx)) as session:
        key, prefix = auth.create_key(session.connection(), name, role)
        audit.record(session, audit.Actor.cli(), "key.create", at=utc_now(),
                     changes={"name": name.strip(), "role": role, "prefix": prefix})  # fmt: skip
    click.echo(key)
    click.echo(f"({role} key {prefix} for {name}; keep it safe, it is not shown again)",
               err=True)  # fmt: skip


@keys.command("list")
@click.pass_context
@handle_errors
def keys_list(ctx: click.Context) -> None:
    """List keys and embed tokens (names, roles or portals, ids, dates; never the secrets)."""
    import datetime as dt

    from geomap import auth
    from geomap import db as dbmod

    now = dt.datetime.now(dt.UTC)
    with dbmod.session_scope(_settings(ctx)) as session:
        for row in auth.list_keys(session.connection()):
            state = "revoked" if row["revoked_at"] else "active"
            click.echo(f"{row['prefix']}  {row['role']:<9}  {state:<7}  {row['name']}")
        for row in auth.list_embed_tokens(session.connection()):
            state = (
                "revoked" if row["revoked_at"] else "expired" if row["expires_at"] < now
                else "active"
            )  # fmt: skip
            click.echo(
                f"{row['id']}  {'embed':<9}  {state:<7}  {row['name']}  "
                f"(for {row['origin']}: {','.join(row['layers'])}; "
                f"until {row['expires_at']:%Y-%m-%d})"
            )


@keys.command("revoke")
@click.argument("prefix")
@click.pass_context
@handle_errors
def keys_revoke(ctx: click.Context, prefix: str) -> None:
    """Revoke the key with this prefix (the 8 characters after `gm_`) or the embed token
    with this id (see `geomap keys list`)."""
    from geomap import auth
    from geomap import db as dbmod
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(_settings(ctx)) as session:
        what = auth.revoke(session.connection(), prefix)
        audit.record(session, audit.Actor.cli(), f"{what.replace(' ', '_')}.revoke", at=utc_now(),
                     changes={"prefix": prefix})  # fmt: skip
    click.echo(f"revoked {what} {prefix}")


@keys.command("embed")
@click.option("--layers", "layer_list", required=True,
              help="Comma-separated layers the token opens, e.g. grids,teams,circles.")
@click.option("--origin", required=True, help="Origin of the portal, e.g. https://portal.example")
@click.option("--days", type=float, default=30, show_default=True, help="Validity.")
@click.option("--name", default="", help="Which portal or page it is for (shown in `keys list`).")
@click.pass_context
@handle_errors
def keys_embed(ctx: click.Context, layer_list: str, origin: str, days: float, name: str) -> None:
    """Create an embed token: read-only, those layers, frames of that portal, so many days."""
    from geomap import auth, layers
    from geomap import db as dbmod

    catalog = layers.load_catalog()
    wanted = [x.strip() for x in layer_list.split(",") if x.strip()]
    for layer_id in wanted:
        layers.get_layer(catalog, layer_id)
    settings = _settings(ctx)
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(settings) as session:
        token, token_id = auth.create_embed_token(
            session.connection(), auth.secret_key(settings), wanted, origin, days, name
        )
        audit.record(session, audit.Actor.cli(), "embed_token.create", at=utc_now(),
                     changes={"id": token_id, "origin": origin, "layers": wanted,
                              "days": days})  # fmt: skip
    click.echo(token)
    click.echo(f"(embed token {token_id} for {origin}; revoke it with "
               f"`geomap keys revoke {token_id}`)", err=True)  # fmt: skip


# -- service -------------------------------------------------------------------------------
@main.command("serve")
@click.option("--host", default=None, help="Bind address (default: GEOMAP_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: GEOMAP_PORT).")
@click.option("--workers", type=int, default=None,
              help="gunicorn worker processes (default: GEOMAP_WORKERS); 0: Flask's "
                   "development server.")  # fmt: skip
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the battle map and the API (gunicorn threaded workers, see geomap.serving)."""
    import os

    from geomap import auth

    settings = _settings(ctx)
    host = host or settings.host
    port = port or settings.port
    workers = settings.workers if workers is None else workers
    auth.check_bind(host, settings)
    if workers > 0:
        click.echo(f"serving on http://{host}:{port} ({workers} workers)", err=True)
        # The settings module geomap.serving reads them from the environment.
        env = {**os.environ, "GEOMAP_HOST": host, "GEOMAP_PORT": str(port),
               "GEOMAP_WORKERS": str(workers)}  # fmt: skip
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "gunicorn", "-c", "python:geomap.serving", "geomap.wsgi:app"],
            env,
        )
    from geomap import create_app
    from geomap.api._ops import start_loop

    app = create_app({"host": host, "port": port})
    start_loop(app)  # escalations recorded as they fall due (GEOMAP_ESCALATION_INTERVAL_S)
    click.echo(f"serving on http://{host}:{port}", err=True)
    app.run(host=host, port=port, threaded=True)


@main.group("plan")
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
    import json

    from tqdm import tqdm

    from geomap import db as dbmod
    from geomap import reports
    from geomap.planning import scenarios, suggest

    settings = _settings(ctx)
    layer = None
    if candidates_file is not None:
        from geomap import importers

        # Validated as a stations file (name, kind, points; CRS normalised to WGS84).
        frame, _ = importers.read_layer(candidates_file, "stations", crs=crs)
        layer = [{"name": name, "kind": kind, "lon": g.x, "lat": g.y}
                 for name, kind, g in zip(frame["name"], frame["kind"], frame.geometry,
                                          strict=True)]
    plan = suggest.make_plan(
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
                             origin="cli")  # fmt: skip
    if out is not None:
        reports.write_plan(out, answer, geometry=geometry, lang=lang)
        click.echo(f"wrote {out}", err=True)
    for site in answer["sites"]:
        site.pop("circle", None)
    click.echo(json.dumps(answer, ensure_ascii=False, indent=1))


def _attach_subcommands() -> None:
    from geomap.cli.cases import cases_group
    from geomap.cli.map import map_group
    from geomap.cli.stations import stations_group

    main.add_command(map_group)
    main.add_command(cases_group)
    main.add_command(stations_group)


_attach_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()

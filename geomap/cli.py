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
from geomap.clitools import handle_errors
from geomap.clitools import settings as _settings
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
    """Import a GeoJSON, GeoPackage, Shapefile or CSV file into a table, all-or-nothing."""
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
    click.echo(", ".join(f"{k} {v:,}" for k, v in counts.items()))


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
    with_geometry = out.suffix.lower() == ".gpkg"
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
    reports.write(out, by_level, query.as_dict())
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
@click.pass_context
@handle_errors
def report_circles(ctx: click.Context, of: str, kinds: tuple[str, ...], minutes: float | None,
                   distance_m: float | None, levels: tuple[str, ...], out: Path) -> None:
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
                                           with_geometry=out.suffix.lower() == ".gpkg")
            for level in levels
        }  # fmt: skip
    reports.write(out, by_level, {**query.as_dict(), "by": "walk",
                                  "within_min": query.minutes, "within_m": query.distance_m})
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
    """List keys (names, roles, prefixes and dates; never the keys)."""
    from geomap import auth
    from geomap import db as dbmod

    with dbmod.session_scope(_settings(ctx)) as session:
        for row in auth.list_keys(session.connection()):
            state = "revoked" if row["revoked_at"] else "active"
            click.echo(f"{row['prefix']}  {row['role']:<9}  {state:<7}  {row['name']}")


@keys.command("revoke")
@click.argument("prefix")
@click.pass_context
@handle_errors
def keys_revoke(ctx: click.Context, prefix: str) -> None:
    """Revoke the key with this prefix (the 8 characters after `gm_`)."""
    from geomap import auth
    from geomap import db as dbmod
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(_settings(ctx)) as session:
        auth.revoke_key(session.connection(), prefix)
        audit.record(session, audit.Actor.cli(), "key.revoke", at=utc_now(),
                     changes={"prefix": prefix})  # fmt: skip
    click.echo(f"revoked key {prefix}")


@keys.command("embed")
@click.option("--layers", "layer_list", required=True,
              help="Comma-separated layers the token opens, e.g. grids,teams,circles.")
@click.option("--origin", required=True, help="Origin of the portal, e.g. https://portal.example")
@click.option("--days", type=float, default=30, show_default=True, help="Validity.")
@click.pass_context
@handle_errors
def keys_embed(ctx: click.Context, layer_list: str, origin: str, days: float) -> None:
    """Create a signed embed token: read-only, those layers, that origin, for so many days."""
    from geomap import auth, layers

    catalog = layers.load_catalog()
    wanted = [x.strip() for x in layer_list.split(",") if x.strip()]
    for layer_id in wanted:
        layers.get_layer(catalog, layer_id)
    settings = _settings(ctx)
    click.echo(auth.make_embed_token(auth.secret_key(settings), wanted, origin, days))


# -- service -------------------------------------------------------------------------------
@main.command("serve")
@click.option("--host", default=None, help="Bind address (default: GEOMAP_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: GEOMAP_PORT).")
@click.option("--workers", type=int, default=0, help="Run gunicorn with N workers (0: Flask).")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the battle map and the API."""
    from geomap import auth

    settings = _settings(ctx)
    host = host or settings.host
    port = port or settings.port
    auth.check_bind(host, settings)
    if workers > 0:
        import os

        os.execvp(
            sys.executable,
            # Threaded workers: a request spends most of its time waiting on PostgreSQL,
            # and a sync worker would sit idle meanwhile.
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", "4",
             "-b", f"{host}:{port}", "geomap.wsgi:app"],
        )  # fmt: skip
    from geomap import create_app
    from geomap.api._ops import start_loop

    app = create_app({"host": host, "port": port})
    start_loop(app)  # escalations recorded as they fall due (GEOMAP_ESCALATION_INTERVAL_S)
    click.echo(f"serving on http://{host}:{port}", err=True)
    app.run(host=host, port=port, threaded=True)


def _attach_subcommands() -> None:
    from geomap.maps.cli import map_group
    from geomap.ops.cli import cases_group

    main.add_command(map_group)
    main.add_command(cases_group)


_attach_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()

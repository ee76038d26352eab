"""The ``geomap`` command: a thin layer over the package's functions.

Every command reads the settings (``GEOMAP_*``) when it runs; errors of the
:class:`~geomap.errors.GeomapError` family print their message and exit with status 1
(2 for configuration problems).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from geomap import config
from geomap.errors import ConfigError, GeomapError


def _settings(ctx: click.Context) -> config.Settings:
    return ctx.ensure_object(dict).setdefault("settings", config.load())


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print GeomapError messages as CLI errors instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GeomapError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            sys.exit(2 if isinstance(exc, ConfigError) else 1)

    return wrapper


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
    with dbmod.session_scope(settings) as session:
        session.execute(sa.text("ANALYZE"))  # fresh planner statistics for the new rows
    click.echo(", ".join(f"{k} {v:,}" for k, v in counts.items()))


# -- service -------------------------------------------------------------------------------
@main.command("serve")
@click.option("--host", default=None, help="Bind address (default: GEOMAP_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: GEOMAP_PORT).")
@click.option("--workers", type=int, default=0, help="Run gunicorn with N workers (0: Flask).")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int) -> None:
    """Serve the battle map and the API."""
    settings = _settings(ctx)
    host = host or settings.host
    port = port or settings.port
    if workers > 0:
        import os

        os.execvp(
            sys.executable,
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"{host}:{port}",
             "geomap.wsgi:app"],
        )  # fmt: skip
    from geomap import create_app

    app = create_app({"host": host, "port": port})
    click.echo(f"serving on http://{host}:{port}", err=True)
    app.run(host=host, port=port, threaded=True)


if __name__ == "__main__":  # pragma: no cover
    main()

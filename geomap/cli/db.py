"""``geomap db``: the embedded PostGIS cluster and the schema."""

from __future__ import annotations

import sys

import click

from geomap import config
from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings
from geomap.errors import ConfigError


@click.group()
def db() -> None:
    """The database: the embedded PostGIS cluster and the schema."""


def _cluster(settings: config.Settings):
    from geomap import pg

    if settings.database_url:
        raise ConfigError(
            "GEOMAP_DATABASE_URL is set: geomap uses that database and manages no cluster "
            "(`geomap db check` says whether its roles' grants are right)"
        )
    return pg.Cluster(settings.state_dir, port=settings.pg_port)


@db.command("up")
@click.pass_context
@handle_errors
def db_up(ctx: click.Context) -> None:
    """Create (once) and start the embedded PostGIS, migrate the schema, check the grants.

    With GEOMAP_DATABASE_URL set, only migrate (as GEOMAP_MIGRATE_URL) and check; exit 1
    when the service's role lacks a grant it needs or has one it must not.
    """
    from geomap import db as dbmod

    settings = _settings(ctx)
    if not settings.database_url:
        cluster = _cluster(settings)
        cluster.up()
        click.echo(f"embedded PostGIS {cluster.status()}")
    dbmod.migrate(settings)
    click.echo("schema is at the latest migration")
    _check_roles(settings)


def _check_roles(settings: config.Settings) -> None:
    from geomap import db as dbmod
    from geomap import dbroles

    with dbmod.translate_errors(), dbmod.get_engine(settings).connect() as conn:
        lines, good = dbroles.report(conn)
    for line in lines:
        click.echo(line)
    if not good:
        sys.exit(1)


@db.command("check")
@click.pass_context
@handle_errors
def db_check(ctx: click.Context) -> None:
    """Say which grants the service's role (and the read-only role) lack or must not have.

    Connects as the service does (GEOMAP_DATABASE_URL, or the embedded cluster's
    geomap_app) and compares with migration 0013_roles: no superuser, no ownership, only
    SELECT and INSERT on audit_log and events... Exit 1 when anything differs.
    """
    _check_roles(_settings(ctx))


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

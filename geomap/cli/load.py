"""``geomap load``: one file into one table, all-or-nothing, audited (``layer.load``)."""

from __future__ import annotations

from pathlib import Path

import click

from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings


@click.command("load")
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
    from geomap.ops import audit, utc_now

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
        # In the load's transaction: the rows and their audit row commit together.
        change = {"layer": layer, "file": path.name, "rows": report.rows, "crs": crs_text,
                  "source": source, "repair": not no_repair}  # fmt: skip
        audit.record(session, audit.Actor.cli(), "layer.load", at=utc_now(), changes=change)
    for warning in report.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"loaded {report.rows:,} {layer} from {path}")

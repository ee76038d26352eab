"""``geomap network``: the road network used for travel times, from OpenStreetMap.

An import replaces the network and appends its audit row (``network.import``) in one
transaction.
"""

from __future__ import annotations

from pathlib import Path

import click

from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings


@click.group()
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
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(_settings(ctx)) as session:
        counts = netmod.import_network(session.connection(), path, source=source)
        change = {"file": path.name, "source": source, "road_nodes": counts["road_nodes"],
                  "road_edges": counts["road_edges"]}  # fmt: skip
        audit.record(session, audit.Actor.cli(), "network.import", at=utc_now(), changes=change)
    click.echo(f"road_nodes {counts['road_nodes']:,}, road_edges {counts['road_edges']:,}")
    # Pieces cut off from the rest (at the extract's edge, behind one-way streets): points
    # snapped there reach little. Said plainly, so a planner knows before trusting circles.
    for mode in netmod.MODES:
        nodes, edges = counts[f"{mode}_island_nodes"], counts[f"{mode}_island_edges"]
        click.echo(
            f"{mode}: {nodes:,} nodes and {edges:,} edges lie outside the largest connected "
            "part of the network"
        )

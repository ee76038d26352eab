"""Storing a network: frames or an OSM extract → ``road_nodes``/``road_edges``, all-or-nothing.

:func:`load_network` replaces the stored network inside a savepoint of the caller's
transaction; :func:`import_network` reads an extract first, then loads it and reports its
islands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from geomap import storage
from geomap.network.connectivity import islands
from geomap.network.osm import read_osm


def load_network(
    conn: Connection,
    nodes: gpd.GeoDataFrame,
    edges: gpd.GeoDataFrame,
    *,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Replace the stored network by ``nodes`` and ``edges`` (as :func:`read_osm` returns).

    Runs inside the caller's transaction, in a savepoint: on any error the tables are left
    as they were and the caller's transaction stays usable.

    Returns
    -------
    dict
        Rows written: ``{"road_nodes": n, "road_edges": m}``.
    """
    with conn.begin_nested():
        # DELETE, not TRUNCATE: TRUNCATE takes an exclusive lock that would block every
        # reader of a running service until commit, and fails when the transaction has
        # pending deferred FK checks on these tables; DELETE lets readers see the old
        # network until the new one commits.
        conn.execute(sa.text("DELETE FROM road_edges"))
        conn.execute(sa.text("DELETE FROM road_nodes"))
        written = {"road_nodes": storage.copy_frame(conn, "road_nodes", nodes)}
        if progress:
            progress("road_nodes", written["road_nodes"])
        written["road_edges"] = storage.copy_frame(conn, "road_edges", edges)
        if progress:
            progress("road_edges", written["road_edges"])
        # The node FKs are deferred: check them now, inside the savepoint, so a bad frame
        # fails here (and is rolled back) rather than at the caller's commit.
        fks = "road_edges_source_node_fkey, road_edges_target_node_fkey"
        conn.execute(sa.text(f"SET CONSTRAINTS {fks} IMMEDIATE"))
        conn.execute(sa.text(f"SET CONSTRAINTS {fks} DEFERRED"))
        # Fresh statistics, so the planner uses the spatial indexes on the new rows.
        conn.execute(sa.text("ANALYZE road_nodes, road_edges"))
    return written


def import_network(
    conn: Connection,
    path: Path,
    *,
    source: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Replace the stored road network with the routable ways of an OSM extract.

    Parameters
    ----------
    conn : Connection
        A connection in a transaction; the caller commits. All-or-nothing (a savepoint).
    path : Path
        The OSM extract (see :func:`read_osm`).
    source : str, optional
        Provenance label (``real: ...`` or ``synthetic: ...``).
    progress : callable, optional
        Called as ``progress(table, rows_written)`` after each table.

    Returns
    -------
    dict
        Rows written, ``{"road_nodes": n, "road_edges": m}``, and what lies outside the
        largest connected part of the network, per mode (:func:`islands`):
        ``walk_island_nodes``, ``walk_island_edges``, ``drive_island_nodes``,
        ``drive_island_edges``.

    Raises
    ------
    InvalidFile
        The file is missing, unreadable, not OSM, or holds no routable way; nothing changed.
    """
    nodes, edges = read_osm(path, source=source)  # read fully before touching the tables
    written = load_network(conn, nodes, edges, progress=progress)
    for mode, counts in islands(nodes, edges).items():
        written[f"{mode}_island_nodes"] = counts["island_nodes"]
        written[f"{mode}_island_edges"] = counts["island_edges"]
    return written

"""The road network: OpenStreetMap ways → a routable pgRouting graph, snapping, travel times.

* :func:`read_osm` turns an OSM extract (``.osm.pbf``, ``.osm``, ``.osm.gz``, ``.osm.bz2``)
  into two GeoDataFrames shaped like ``road_nodes`` and ``road_edges``: ways are split at
  every node shared by two or more ways (and at way ends), so edges meet only at nodes.
* :func:`import_network` replaces the stored network with an extract, all-or-nothing
  (:func:`load_network` does the writing, for frames already read or generated), and
  reports what lies outside the largest connected part per mode (:func:`islands`).
* :func:`snap` finds the nearest node that is usable in a mode (index-assisted, in metres).
* :func:`edges_sql` builds the edge query pgRouting reads (optionally in a box from
  :func:`bbox_around`/:func:`bbox_of`, optionally reversed); :func:`travel_times` and
  :func:`costs_from` run a one-to-many ``pgr_dijkstraCost`` with it; :func:`route_geojson`
  draws one route. :func:`cost_columns`/:func:`cost_expressions` give the analysis SQL the
  same cost columns and walking-speed scaling.
* :func:`to_networkx` builds the same graph in memory: an independent check for tests and
  the baseline of the benchmarks.

Costs are seconds. A negative cost means "not traversable in that direction" (pgRouting
drops such edges). Walking ignores one-way signs (they are for vehicles). Walking costs
are stored at :data:`~geomap.modes.BASE_WALK_KMH` and scaled in the edge query for another walking
speed, so one import serves every configured speed.

The package by job: :mod:`~geomap.network.osm` (reading OSM),
:mod:`~geomap.network.connectivity` (islands), :mod:`~geomap.network.loading` (storing),
:mod:`~geomap.network.snapping` (nearest node), :mod:`~geomap.network.pgrouting` (the SQL)
and :mod:`~geomap.network.export` (networkx). The travel modes and their cost columns are
:mod:`geomap.modes`, shared with :mod:`geomap.routing`.
"""

from geomap.modes import BASE_WALK_KMH, MODES, cost_columns
from geomap.network.connectivity import islands
from geomap.network.export import to_networkx
from geomap.network.loading import import_network, load_network
from geomap.network.osm import HIGHWAY_CLASSES, parse_maxspeed, read_osm
from geomap.network.pgrouting import (
    Executor,
    bbox_around,
    bbox_of,
    cost_expressions,
    costs_between_points,
    costs_from,
    edges_sql,
    points_sql,
    route_geojson,
    travel_times,
)
from geomap.network.snapping import Snap, snap

__all__ = [
    "BASE_WALK_KMH", "HIGHWAY_CLASSES", "MODES", "Executor", "Snap", "bbox_around", "bbox_of",
    "cost_columns", "cost_expressions", "costs_between_points", "costs_from", "edges_sql",
    "import_network", "islands", "load_network", "parse_maxspeed", "points_sql", "read_osm",
    "route_geojson", "snap", "to_networkx", "travel_times",
]  # fmt: skip

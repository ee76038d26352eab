"""The routing engine: the street network in memory, beside PostGIS.

pgRouting answers inside the database (``geomap.network``); it stays the reference the
tests compare against. This package answers the same questions on arrays in the process,
20-100× faster, for everything that routes on a request path:

* :mod:`~geomap.routing.graph`: :class:`StreetGraph`, CSR arrays built from
  ``road_nodes``/``road_edges`` (one per network version), with metric edge geometry and
  the largest strongly connected component of each mode.
* :mod:`~geomap.routing.snap`: points snap to a position along the nearest edge of that
  component (as ``pgr_withPoints`` does), never onto an island.
* :mod:`~geomap.routing.search`: Dijkstra from and to positions along edges, one or many
  sources, within a budget (``scipy.sparse.csgraph``), and routes.
* :mod:`~geomap.routing.reach`: what a search reaches, as street segments (whole and
  partly walked edges), and the isochrone polygon around them.
* :mod:`~geomap.routing.sample`: residents' sample points in each grid and the streets
  near each point: coverage by travel time counted in milliseconds.
* :mod:`~geomap.routing.index`: each place's reached sample points, kept in the process
  and in the database (``venue_reach``): the coverage of any set of places is a union.
* :mod:`~geomap.routing.cache`: the process's graphs and team mirror, kept current
  through the ``data_versions`` table and ``teams.sync_xid`` (migration 0005).
"""


from geomap.routing import mirror, reach, sample, search, snap
from geomap.routing.cache import current_graph, grid_samples, team_mirror, versions
from geomap.routing.graph import StreetGraph
from geomap.routing.snap import EdgePoints

__all__ = [
    "EdgePoints", "StreetGraph", "current_graph", "grid_samples", "mirror", "reach", "sample",
    "search", "snap", "team_mirror", "versions",
]  # fmt: skip

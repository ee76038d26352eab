"""What the database holds: row counts per table and per region level."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

COUNTS_SQL = sa.text(
    """
    SELECT
        (SELECT count(*) FROM regions WHERE level = 'city')                AS cities,
        (SELECT count(*) FROM regions WHERE level = 'district')            AS districts,
        (SELECT count(*) FROM regions WHERE level = 'township')            AS townships,
        (SELECT count(*) FROM regions WHERE level = 'community')           AS communities,
        (SELECT count(*) FROM grids)                                       AS grids,
        (SELECT coalesce(sum(population), 0) FROM grids)                   AS population,
        (SELECT count(*) FROM stations)                                    AS stations,
        (SELECT count(*) FROM stations WHERE kind = 'red_station')         AS red_stations,
        (SELECT count(*) FROM sites)                                       AS sites,
        (SELECT count(*) FROM teams)                                       AS teams,
        (SELECT coalesce(sum(headcount), 0) FROM teams)                    AS team_members,
        (SELECT count(*) FROM road_nodes)                                  AS road_nodes,
        (SELECT count(*) FROM road_edges)                                  AS road_edges,
        (SELECT count(*) FROM cases)                                       AS cases
    """
)


def counts(session: Session) -> dict[str, int]:
    """Row counts of what is loaded, for the command line and the health check.

    Regions by level, grids, stations (and red stations), sites, teams, team members (sum
    of headcounts), population, road nodes and edges, cases.

    Parameters
    ----------
    session : Session
        The database.

    Returns
    -------
    dict of str to int
        One count per name.
    """
    row = session.execute(COUNTS_SQL).mappings().one()
    return {key: int(value) for key, value in row.items()}

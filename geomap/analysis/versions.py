"""Stamps of data sets: what a payload was built from, to keep it until that data changes.

A map layer's document or an analysis answer is a pure function of a few tables (and of
its query and the settings). The service keeps it (:mod:`geomap.web.keep`) together with
the *stamps* of those tables read before it was built, and hands it out again as long as
fresh stamps compare equal. A stamp is read with one small query and never misses a
committed change:

``grids``, ``regions``, ``network``, ``stations``, ``sites``
    Their row of ``data_versions`` (migrations 0005 and 0010): statement triggers give it
    a new number from a sequence on every write.
``teams``
    Teams move all day, one row at a time, so no shared row is bumped (migration 0005):
    every row carries ``sync_xid``, the transaction that last wrote it. The stamp holds the
    deletion epoch (the ``teams`` row of ``data_versions``), a watermark (the oldest
    transaction still running when it was read) and the rows written at or after the
    watermark. Any later write is by a transaction that was running then or started since,
    so its rows show up at or above the same watermark with a new ``sync_xid``: reading
    again with the old watermark (``since``) and comparing tells whether anything changed.
``circles``
    The circles cache is written by requests and by ``geomap circles build``; a statement
    trigger on it would serialise them. Every write of a circle stamps ``built_at``
    (a rebuild too), and deletions change the ids present: the stamp is the count, the sum
    of ids and the sum of build times, read from the small non-spatial columns.

A stamp read *before* the data is read may only make a payload look older than it is
(the next request rebuilds it), never newer. Data written by the caller's own open
transaction is never shared: :func:`stamps` returns None then.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from geomap.layers import Layer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

#: Data sets with a row in ``data_versions``.
VERSIONED = ("grids", "regions", "network", "stations", "sites")
#: Every data set a stamp can be read for.
DATA_SETS = (*VERSIONED, "teams", "circles")
#: The data set of each table a layer can be drawn from.
TABLE_DATA_SETS = {
    "grids": "grids",
    "regions": "regions",
    "stations": "stations",
    "sites": "sites",
    "teams": "teams",
    "circles": "circles",
    "road_edges": "network",
    "road_nodes": "network",
    # A materialized view of road_edges, refreshed by a statement trigger on it in the
    # writing transaction (migration 0007): it changes exactly when the network does.
    "streets": "network",
}

_VERSIONS_SQL = sa.text(
    """
    SELECT name, version, coalesce(changed_xid = pg_current_xact_id_if_assigned(), false)
    FROM data_versions
    """
)
_TEAMS_SQL = sa.text(
    """
    WITH state AS (
        SELECT coalesce(CAST(:watermark AS xid8), pg_snapshot_xmin(pg_current_snapshot()))
                   AS watermark,
               pg_current_xact_id_if_assigned() AS me
    )
    SELECT s.watermark::text AS watermark,
           coalesce(bool_or(t.sync_xid = s.me), false) AS mine,
           coalesce(array_agg(t.id ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL), '{}') AS ids,
           coalesce(array_agg(t.sync_xid::text ORDER BY t.id) FILTER (WHERE t.id IS NOT NULL),
                    '{}') AS xids
    FROM state s
    -- the upper bound excludes nothing: a range for the planner (see routing.mirror)
    LEFT JOIN teams t ON t.sync_xid BETWEEN s.watermark AND CAST('18446744073709551615' AS xid8)
    GROUP BY s.watermark
    """
)
_CIRCLES_SQL = sa.text(
    "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(extract(epoch FROM built_at)), 0)"
    " FROM circles"
)


def layer_data_sets(layer: Layer) -> tuple[str, ...]:
    """The data sets a catalog layer is drawn from (empty: unknown, never kept).

    Parameters
    ----------
    layer : Layer
        A catalog layer.

    Returns
    -------
    tuple of str
        Names of :data:`DATA_SETS`.
    """
    name = TABLE_DATA_SETS.get(layer.table)
    return (name,) if name else ()


def stamps(
    conn: Connection | Session, names: Iterable[str], since: Mapping[str, Hashable] | None = None
) -> dict[str, Hashable] | None:
    """The stamps of data sets as ``conn``'s transaction sees them now.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    names : iterable of str
        Data sets, from :data:`DATA_SETS`.
    since : mapping, optional
        Stamps read earlier: the teams' stamp is then read against the same watermark, so
        that it compares equal exactly when no team was written since.

    Returns
    -------
    dict or None
        Stamps by name; None when the caller's own uncommitted transaction changed one of
        them (what it sees must not be shared with other requests).

    Raises
    ------
    ValueError
        For an unknown data set.
    """
    wanted = sorted(set(names))
    unknown = [n for n in wanted if n not in DATA_SETS]
    if unknown:
        raise ValueError(f"unknown data set(s) {unknown}; known: {', '.join(DATA_SETS)}")
    out: dict[str, Hashable] = {}
    if any(n in VERSIONED or n == "teams" for n in wanted):
        versions = {name: (int(v), bool(mine)) for name, v, mine in conn.execute(_VERSIONS_SQL)}
        for name in wanted:
            if name == "circles":
                continue
            if name not in versions:  # a schema without this row: nothing can be kept
                return None
            version, mine = versions[name]  # for teams: the deletion epoch
            if mine:
                return None
            out[name] = ("version", version)
    if "teams" in wanted:
        teams = _teams_stamp(conn, (since or {}).get("teams"))
        if teams is None:
            return None
        out["teams"] = (out.get("teams"), teams)
    if "circles" in wanted:
        row = conn.execute(_CIRCLES_SQL).one()
        out["circles"] = ("rows", int(row[0]), int(row[1]), float(row[2]))
    return out


def _teams_stamp(conn: Connection | Session, since: Hashable | None) -> tuple | None:
    watermark = None
    if since is not None:
        _epoch, previous = since  # type: ignore[misc]
        watermark = previous[1]
    row = conn.execute(_TEAMS_SQL, {"watermark": watermark}).mappings().one()
    if row["mine"]:
        return None
    return ("written", row["watermark"], tuple(zip(row["ids"], row["xids"], strict=True)))

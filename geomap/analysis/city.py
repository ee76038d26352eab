"""Is a point in the city? The check every point-taking analysis starts with.

The city outline (the ``city`` level of ``regions``) is kept in memory per regions version
(``data_versions``), prepared for point tests: a check costs microseconds instead of a
query on every request. A point outside answers :class:`~geomap.errors.Unreachable`
(422), naming the city and hinting at the usual cause, a wrong coordinate system.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import shapely
import sqlalchemy as sa

from geomap import routing
from geomap.errors import Unreachable

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

CITY_SQL = sa.text(
    "SELECT name, ST_AsBinary(geom) AS geom FROM regions WHERE level = 'city' ORDER BY code"
)


@dataclass(frozen=True)
class City:
    """The loaded city outlines (lon/lat), prepared; ``shape`` is None when none is loaded.

    Parameters
    ----------
    names : str
        The names of the regions of level ``city``, joined.
    shape : shapely.Geometry or None
        Their union, WGS 84, prepared for point tests.
    """

    names: str
    shape: shapely.Geometry | None
    # GEOS builds a prepared geometry's indexes lazily, on its first tests, and not
    # thread-safely (libgeos/geos#825), while shapely runs the test without the GIL: two
    # request threads testing a fresh city at once corrupted the heap. One test at a time
    # (~3 µs each).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def contains(self, lon: float, lat: float) -> bool | None:
        """Whether (lon, lat) lies in the city (its boundary included); None: no city.

        Parameters
        ----------
        lon, lat : float
            The point, WGS 84 degrees.

        Returns
        -------
        bool or None
            None when no city is loaded.
        """
        if self.shape is None:
            return None
        with self._lock:
            return bool(shapely.intersects_xy(self.shape, lon, lat))


def _load(conn: Connection | Session) -> City:
    rows = conn.execute(CITY_SQL).all()
    if not rows:
        return City("", None)
    shape = shapely.union_all(shapely.from_wkb([bytes(r.geom) for r in rows]))
    shapely.prepare(shape)
    return City(", ".join(r.name for r in rows), shape)


def city(conn: Connection | Session, known: dict[str, Any] | None = None) -> City:
    """The city as ``conn``'s transaction sees it (cached until ``regions`` changes).

    Parameters
    ----------
    conn : Connection or Session
        The database.
    known : dict, optional
        The data versions already read (:func:`geomap.routing.cache.versions`).

    Returns
    -------
    City
        The loaded outlines.
    """
    return routing.cache.derived(conn, "city", ("regions",), lambda: _load(conn), known)


def check_in_city(
    conn: Connection | Session,
    lon: float,
    lat: float,
    *,
    known: dict[str, Any] | None = None,
    field: str = "lon",
) -> None:
    """Raise :class:`Unreachable` when (lon, lat) lies outside the loaded city.

    A point is accepted when no city is loaded.

    Parameters
    ----------
    conn : Connection or Session
        The database.
    lon, lat : float
        The point, WGS 84 degrees.
    known : dict, optional
        The data versions already read.
    field : str, default "lon"
        The request field the error names.

    Raises
    ------
    Unreachable
        The point lies outside the city (422).
    """
    found = city(conn, known)
    if found.contains(lon, lat) is False:
        raise Unreachable(
            f"the point ({lon:.6f}, {lat:.6f}) lies outside the city ({found.names}); "
            "check the coordinates and their crs",
            field=field,
        )

"""Travel modes and the stored cost columns of each, shared by what writes the road network
(:mod:`geomap.network`) and what routes on it (:mod:`geomap.routing`, :mod:`geomap.analysis`).

Costs are seconds; a negative cost means "not traversable in that direction". Walking
costs are stored at :data:`BASE_WALK_KMH` and scaled at query time for another speed.
"""

from __future__ import annotations

from typing import Any

from geomap.errors import InvalidInput
from geomap.params import check_finite

#: Walking speed the stored ``walk_s``/``walk_reverse_s`` costs are computed with (km/h).
BASE_WALK_KMH = 4.5

#: Travel modes and the cost columns pgRouting reads for each. An unknown mode is an
#: InvalidInput on field ``by``: the name of the mode parameter in the API and the CLI.
MODES: dict[str, tuple[str, str]] = {
    "walk": ("walk_s", "walk_reverse_s"),
    "drive": ("drive_s", "drive_reverse_s"),
}


def cost_columns(mode: str, field: str = "by") -> tuple[str, str]:
    """The stored cost columns of ``mode``: ``("walk_s", "walk_reverse_s")`` or drive's.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`.
    field : str
        The parameter named in the error (``by`` in the API and the CLI).

    Returns
    -------
    (cost, reverse_cost) : tuple of str
        Column names of ``road_edges``.

    Raises
    ------
    InvalidInput
        Unknown mode.
    """
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"unknown travel mode {mode!r}; expected one of {', '.join(MODES)}", field=field
        ) from None


def walk_factor(walk_speed_kmh: Any) -> float:
    """What stored walking costs are multiplied by for a walk at ``walk_speed_kmh``.

    Parameters
    ----------
    walk_speed_kmh : float
        In (0, 30] km/h.

    Returns
    -------
    float
        ``BASE_WALK_KMH / walk_speed_kmh``.

    Raises
    ------
    InvalidInput
        Not a number, or outside (0, 30] (field ``walk_speed_kmh``).
    """
    speed = check_finite(walk_speed_kmh, "walk_speed_kmh")
    if not 0 < speed <= 30:
        raise InvalidInput(
            f"walking speed must be in (0, 30] km/h, got {speed:g}", field="walk_speed_kmh"
        )
    return BASE_WALK_KMH / speed

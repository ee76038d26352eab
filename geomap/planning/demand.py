"""Demand for the location models: residents' sample points grouped into units.

The coverage the pages report counts a grid's residents as spread evenly over its sample
points (a 25 m lattice) and a point as covered when a reached street passes within the
access width (see :mod:`geomap.routing.sample`). The models use exactly that rule, so
the residents a suggestion gains are the residents ``/api/coverage`` gains when the sites
are added for real:

* points already covered by the locked venues are left out (covered whatever is chosen);
* so are points no candidate reaches, and points of grids without residents;
* the points left are grouped by the set of candidates that reach them: one **demand
  unit** per distinct set, weighing the residents of its points. No approximation is
  made beyond the sampling itself: a unit is covered by a choice exactly when each of its
  points is. City-wide, ~410,000 points become ~53,000 units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from geomap.planning.models import Instance


@dataclass
class Demand:
    """An :class:`Instance` with the way back to the sample points.

    Parameters
    ----------
    instance : Instance
        The units × candidates cover and the units' weights (residents).
    points : numpy.ndarray
        The sample points in the units (indices).
    unit_of : numpy.ndarray
        Each of those points' unit.
    site_points : scipy.sparse.csr_matrix
        Candidates × all sample points (0/1): each candidate's reach.
    """

    instance: Instance
    points: np.ndarray
    unit_of: np.ndarray
    site_points: sp.csr_matrix


def site_matrix(sets: list[np.ndarray], n_points: int) -> sp.csr_matrix:
    """Candidates × sample points, from each candidate's covered points.

    Parameters
    ----------
    sets : list of numpy.ndarray
        Per candidate, the indices of the sample points it covers.
    n_points : int
        The number of sample points.

    Returns
    -------
    scipy.sparse.csr_matrix
        0/1 (int8), one row per candidate.
    """
    indptr = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum([s.size for s in sets], out=indptr[1:])
    indices = np.concatenate(sets) if sets else np.zeros(0, dtype=np.int64)
    data = np.ones(indices.size, dtype=np.int8)
    return sp.csr_matrix((data, indices, indptr), shape=(len(sets), n_points))


def _group_rows(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Rows with identical column sets grouped: (group of each row, first row of each).

    Two independent 64-bit sums of random column keys name each set; the grouping is then
    checked exactly (same columns as the group's first row), and the rare row whose sums
    collided with another set's is given a group of its own by an exact lookup.
    """
    rows = matrix.shape[0]
    counts = np.diff(matrix.indptr)
    owner = np.repeat(np.arange(rows), counts)
    keys = []
    for seed in (7, 11):
        random = np.random.default_rng(seed).integers(1, 2**63, size=matrix.shape[1],
                                                      dtype=np.uint64)  # fmt: skip
        h = np.zeros(rows, dtype=np.uint64)
        np.add.at(h, owner, random[matrix.indices])
        keys.append(h)
    _, first, group = np.unique(np.stack([*keys, counts.astype(np.uint64)], axis=1), axis=0,
                                return_index=True, return_inverse=True)  # fmt: skip
    group = group.ravel()
    rep = first[group]
    same_len = counts == counts[rep]
    # Element-wise comparison of each row with its representative (same lengths).
    pos = np.arange(matrix.indices.size) - np.repeat(matrix.indptr[:-1], counts)
    other = np.repeat(matrix.indptr[rep], counts) + pos
    equal = matrix.indices == matrix.indices[np.minimum(other, matrix.indices.size - 1)]
    bad = ~same_len | (np.bincount(owner, weights=~equal, minlength=rows) > 0)
    if bad.any():  # a collision: exact sets for the rows concerned
        exact: dict[bytes, int] = {}
        next_group = int(group.max()) + 1
        for r in np.flatnonzero(bad):
            key = matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]].tobytes()
            if key not in exact:
                exact[key] = next_group
                next_group += 1
            group[r] = exact[key]
        _, first, group = np.unique(group, return_index=True, return_inverse=True)
    return group.ravel(), first


def build(site_points: sp.csr_matrix, point_weight: np.ndarray, base: np.ndarray) -> Demand:
    """Demand units from the candidates' reach and the residents of each sample point.

    Parameters
    ----------
    site_points : scipy.sparse.csr_matrix
        Candidates × sample points (0/1), as :func:`site_matrix` gives it.
    point_weight : numpy.ndarray
        Residents each sample point stands for.
    base : numpy.ndarray
        The points the locked venues already cover (indices), left out.

    Returns
    -------
    Demand
        One unit per distinct set of candidates reaching some open point.
    """
    by_point = site_points.T.tocsr()
    by_point.sort_indices()
    open_ = np.ones(site_points.shape[1], dtype=bool)
    open_[base] = False
    open_ &= point_weight > 0
    open_ &= np.diff(by_point.indptr) > 0
    points = np.flatnonzero(open_)
    rows = by_point[points]
    if points.size == 0:
        empty = sp.csr_matrix((0, site_points.shape[0]), dtype=np.int8)
        return Demand(Instance(empty, np.zeros(0)), points, np.zeros(0, dtype=np.int64),
                      site_points)  # fmt: skip
    unit_of, first = _group_rows(rows)
    weight = np.bincount(unit_of, weights=point_weight[points], minlength=first.size)
    cover = rows[first].tocsr()
    cover.data[:] = 1
    return Demand(Instance(cover, weight), points, unit_of, site_points)

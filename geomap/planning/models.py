"""Location models on a coverage matrix: maximal coverage, set covering, p-median, greedy.

An :class:`Instance` is a sparse 0/1 matrix of demand units × candidate sites (unit ``k``
is covered by site ``j``) and the residents of each unit. Existing venues are not in it:
the residents they already cover are left out of the units (they are covered whatever is
chosen), which is the same as spopt's "predefined facilities" and smaller.

**Maximal coverage** (MCLP, Church & ReVelle 1974): choose ``n`` sites covering the most
residents. The city-wide instance (~7,000 candidates, ~50,000 units, 10⁶ non-zeros) is far
too big for a MIP solver as it stands (HiGHS did not finish the root LP in 120 s), but its
LP bound is tight. So the exact solution runs in three steps:

1. a **Lagrangian bound** (the coverage constraints relaxed: the bound of each multiplier
   vector is a sum plus the ``n`` best site scores; subgradient steps, Polyak's rule;
   it converges to the LP bound) and, on the way, feasible solutions (the ``n`` best
   sites of each step) improving the greedy one;
2. **reduced-cost fixing**: a site whose best possible solution (the bound with that site
   forced in) is below the best known solution can be in no better solution: it is
   dropped (city-wide: 6,580 of 6,665); a site whose exclusion bound is below it is fixed in;
3. the **core** (the sites left, the units they cover, re-aggregated) is solved to
   optimality with spopt's :class:`spopt.locate.MCLP` on HiGHS. Its optimum is the
   optimum of the whole instance: a dropped site cannot be in a better solution.

**Set covering** (the fewest sites that reach a target number of residents, e.g. 95 % or
everyone reachable): the least ``n`` whose maximal coverage reaches the target, by
bisection between the Lagrangian bound (too few) and greedy (enough).

**p-median** (spopt :class:`spopt.locate.PMedian`): minimise residents' total travel
time to the nearest site, existing venues included (one column, always open); for
instances of moderate size (an area, not the whole city).

**Greedy**: the site adding most residents, then the next; within ``1 - 1/e`` of the
optimum (Nemhauser, Wolsey & Fisher 1978), usually within a percent or two.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from geomap.errors import InvalidInput

#: Relative tolerance under which a bound counts as reached.
TOLERANCE = 1e-9
#: Largest dense core (units × sites) handed to spopt; larger cores use the same model
#: written sparse for HiGHS directly.
SPOPT_MAX_CELLS = 4_000_000


class Stop(Exception):
    """Raised by a model when its caller asked it to stop."""


@dataclass
class Instance:
    """Demand units × candidate sites (``cover``, CSR, 0/1) and residents per unit.

    Parameters
    ----------
    cover : scipy.sparse.csr_matrix
        Units × sites, 0/1: unit ``k`` is covered by site ``j``.
    weight : numpy.ndarray
        Residents per unit.
    """

    cover: sp.csr_matrix
    weight: np.ndarray
    _by_site: sp.csr_matrix | None = field(default=None, repr=False)

    @property
    def n_units(self) -> int:
        """The number of demand units."""
        return int(self.cover.shape[0])

    @property
    def n_sites(self) -> int:
        """The number of candidate sites."""
        return int(self.cover.shape[1])

    @property
    def by_site(self) -> sp.csr_matrix:
        """Sites × units (``cover`` transposed, built once)."""
        if self._by_site is None:
            self._by_site = self.cover.T.tocsr()
        return self._by_site

    def units_of(self, site: int) -> np.ndarray:
        """The units a site covers.

        Parameters
        ----------
        site : int
            A candidate's index.

        Returns
        -------
        numpy.ndarray
            Unit indices.
        """
        m = self.by_site
        return m.indices[m.indptr[site] : m.indptr[site + 1]]

    def value(self, sites: list[int] | np.ndarray) -> float:
        """Residents covered by ``sites``.

        Parameters
        ----------
        sites : list of int or numpy.ndarray
            Candidate indices.

        Returns
        -------
        float
            The weight of the units any of them covers.
        """
        covered = np.zeros(self.n_units, dtype=bool)
        for j in sites:
            covered[self.units_of(int(j))] = True
        return float(self.weight[covered].sum())


@dataclass
class Solution:
    """Chosen sites (in order of marginal gain) and how good the answer is known to be.

    Parameters
    ----------
    sites : list of int
        The chosen candidates, the largest marginal gain first.
    gains : list of float
        What each adds to those before it: residents (for p-median, weighted seconds saved).
    value : float
        Residents covered (maximal coverage, set covering) or the total travel time
        (p-median, seconds × residents).
    bound : float
        The best bound known on ``value`` (on the number of sites for set covering);
        NaN for a heuristic.
    status : str
        ``optimal``, ``time_limit``, ``heuristic`` or ``infeasible``.
    seconds : dict of str to float
        Time spent per step (``bound``, ``core``, ``solve``...).
    details : dict
        Figures of the run (sites fixed, core size...), for the report.
    """

    sites: list[int]
    gains: list[float]
    value: float
    bound: float
    status: str  # optimal | time_limit | heuristic | infeasible
    seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative optimality gap (bound − value) / value; 0 when proven optimal."""
        if self.status == "optimal":
            return 0.0
        return max(0.0, (self.bound - self.value) / self.value) if self.value > 0 else 0.0


def greedy(inst: Instance, n: int, *, target: float | None = None) -> Solution:
    """The site adding most residents, ``n`` times (or until ``target`` residents).

    Parameters
    ----------
    inst : Instance
        The coverage instance.
    n : int
        The most sites chosen (without ``target``).
    target : float, optional
        Instead of ``n``: stop once this many residents are covered.

    Returns
    -------
    Solution
        Status ``heuristic``, no bound.
    """
    started = time.perf_counter()
    covered = np.zeros(inst.n_units, dtype=bool)
    gain = np.asarray(inst.by_site @ inst.weight).ravel().astype(float)
    sites: list[int] = []
    gains: list[float] = []
    total = 0.0
    limit = inst.n_sites if target is not None else min(n, inst.n_sites)
    cover_csr = inst.cover
    while len(sites) < limit:
        if target is not None and total >= target * (1 - TOLERANCE):
            break
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        newly = inst.units_of(j)
        newly = newly[~covered[newly]]
        covered[newly] = True
        sites.append(j)
        gains.append(float(inst.weight[newly].sum()))
        total += gains[-1]
        # Every site covering a newly covered unit loses that unit's residents.
        gain -= np.asarray(cover_csr[newly].T @ inst.weight[newly]).ravel()
        gain[j] = -np.inf
    value = float(inst.weight[covered].sum())
    return Solution(sites, gains, value, np.nan, "heuristic",
                    {"greedy": time.perf_counter() - started})  # fmt: skip


def by_gain(inst: Instance, sites: list[int]) -> tuple[list[int], list[float]]:
    """``sites`` ordered by marginal gain (greedy within the set), with the gains.

    Parameters
    ----------
    inst : Instance
        The coverage instance.
    sites : list of int
        Candidate indices.

    Returns
    -------
    sites : list of int
        The same sites, largest marginal gain first.
    gains : list of float
        Residents each adds.
    """
    if not sites:
        return [], []
    sub = Instance(inst.cover[:, sites].tocsr(), inst.weight)
    order = greedy(sub, len(sites))
    rest = [i for i in range(len(sites)) if i not in order.sites]
    picked = order.sites + rest
    return [sites[i] for i in picked], order.gains + [0.0] * len(rest)


def _cover_counts(inst: Instance, sites: np.ndarray) -> np.ndarray:
    counts = np.zeros(inst.n_units)
    for j in sites:
        counts[inst.units_of(int(j))] += 1
    return counts


def lagrangian(
    inst: Instance, n: int, lower: float, best_sites: list[int], *,
    max_iterations: int = 4000, time_limit_s: float = 30.0,
    check: Callable[[float], None] | None = None,
) -> tuple[float, float, list[int], np.ndarray, np.ndarray]:  # fmt: skip
    """Lagrangian bound of maximal coverage and fixing of sites.

    Parameters
    ----------
    inst : Instance
        The coverage instance.
    n : int
        The number of sites.
    lower : float
        The best value known (residents), e.g. greedy's.
    best_sites : list of int
        The sites achieving it.
    max_iterations : int, default 4000
        The most subgradient steps.
    time_limit_s : float, default 30.0
        The most seconds spent.
    check : callable, optional
        ``check(share done)``; raises :class:`Stop` to stop the run.

    Returns
    -------
    bound : float
        The best bound.
    lower : float
        The best value seen.
    best_sites : list of int
        Its sites.
    drop, keep : numpy.ndarray
        The sites proven out of and in every solution better than ``lower`` (masks).
    """
    w = inst.weight
    total = float(w.sum())
    by_site = inst.by_site
    m = inst.n_sites
    drop = np.zeros(m, dtype=bool)
    keep = np.zeros(m, dtype=bool)
    if n >= m:
        return inst.value(range(m)), inst.value(range(m)), list(range(m)), drop, ~drop
    mu = 0.5 * w
    bound = np.inf
    theta, stall = 2.0, 0
    started = time.perf_counter()
    for it in range(max_iterations):
        score = np.asarray(by_site @ mu).ravel()
        top = np.argpartition(-score, n)[: n + 1]
        top = top[np.argsort(-score[top], kind="stable")]
        chosen, s_n, s_next = top[:n], score[top[n - 1]], score[top[n]]
        value_l = total - float(mu.sum()) + float(score[chosen].sum())
        if not np.isfinite(bound) or value_l < bound - TOLERANCE * max(bound, 1.0):
            bound, stall = value_l, 0
        else:
            stall += 1
            if stall >= 30:
                theta, stall = theta / 2, 0
        feasible = inst.value(chosen)
        if feasible > lower:
            lower, best_sites = feasible, [int(j) for j in chosen]
        margin = lower * (1 - 1e-12) - 1e-9
        # Forced in: the bound rises by its score minus the n-th best; forced out, the
        # (n+1)-th replaces it. Valid for any multipliers, so kept from every step.
        drop |= value_l + score - s_n < margin
        in_top = np.zeros(m, dtype=bool)
        in_top[chosen] = True
        keep |= in_top & (value_l - score + s_next < margin)
        if check is not None and it % 25 == 0:
            check(min(1.0, it / max_iterations))
        if bound - lower <= TOLERANCE * max(lower, 1.0) or theta < 1e-4:
            break
        if time.perf_counter() - started > time_limit_s:
            break
        g = _cover_counts(inst, chosen) - 1.0
        g[(mu <= 0) & (g > 0)] = 0.0
        g[(mu >= w) & (g < 0)] = 0.0
        norm = float(g @ g)
        if norm == 0:
            break
        mu = np.clip(mu - theta * (value_l - lower) / norm * g, 0.0, w)
    drop &= ~keep
    return bound, lower, best_sites, drop, keep


def _aggregate(cover: sp.csr_matrix, weight: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Units with the same set of sites merged into one (their residents added up)."""
    cover = cover.tocsr()
    cover.sort_indices()
    keys = [cover.indices[cover.indptr[i] : cover.indptr[i + 1]].tobytes()
            for i in range(cover.shape[0])]  # fmt: skip
    groups: dict[bytes, int] = {}
    which = np.array([groups.setdefault(k, len(groups)) for k in keys], dtype=np.int64)
    first = np.zeros(len(groups), dtype=np.int64)
    first[which[::-1]] = np.arange(cover.shape[0])[::-1]
    return cover[first], np.bincount(which, weights=weight, minlength=len(groups))


def _solve_core(
    cover: sp.csr_matrix, weight: np.ndarray, n: int, fixed: np.ndarray, time_limit_s: float
) -> tuple[list[int], str, float]:
    """Maximal coverage of a small instance solved exactly; (sites, status, bound)."""
    cells = cover.shape[0] * cover.shape[1]
    if cells <= SPOPT_MAX_CELLS:
        import pulp
        from spopt.locate import MCLP

        cost = np.where(cover.toarray() > 0, 0.0, 1.0)
        model = MCLP.from_cost_matrix(
            cost, weight, service_radius=0.5, p_facilities=n,
            predefined_facilities_arr=fixed.astype(int) if fixed.any() else None,
        )  # fmt: skip
        solver = pulp.HiGHS(msg=False, timeLimit=time_limit_s, gapRel=0.0, threads=1)
        model.problem.solve(solver)
        status = pulp.LpStatus[model.problem.status]
        sites = [j for j, v in enumerate(model.fac_vars) if (v.value() or 0) > 0.5]
        value = float(pulp.value(model.problem.objective) or 0.0)
        return sites, ("optimal" if status == "Optimal" else "time_limit"), value
    return _solve_core_highs(cover, weight, n, fixed, time_limit_s)


def _solve_core_highs(cover, weight, n, fixed, time_limit_s):
    """The MCLP of :func:`_solve_core` written sparse for HiGHS (large cores)."""
    import highspy

    units, m = cover.shape
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("threads", 1)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = m + units, units + 1
    lp.col_cost_ = np.concatenate([np.zeros(m), weight])
    lp.col_lower_ = np.concatenate([fixed.astype(float), np.zeros(units)])
    lp.col_upper_ = np.ones(m + units)
    lp.sense_ = highspy.ObjSense.kMaximize
    rows = sp.vstack([
        sp.hstack([-cover.astype(float), sp.identity(units, format="csr")]),
        sp.csr_matrix((np.ones(m), (np.zeros(m, dtype=int), np.arange(m))), shape=(1, m + units)),
    ]).tocsc()  # fmt: skip
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = rows.indptr
    lp.a_matrix_.index_ = rows.indices
    lp.a_matrix_.value_ = rows.data
    lp.row_lower_ = np.concatenate([np.full(units, -highspy.kHighsInf), [n]])
    lp.row_upper_ = np.concatenate([np.zeros(units), [n]])
    kinds = highspy.HighsVarType
    lp.integrality_ = [kinds.kInteger] * m + [kinds.kContinuous] * units
    h.passModel(lp)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    x = np.asarray(h.getSolution().col_value[:m])
    return [int(j) for j in np.flatnonzero(x > 0.5)], (
        "optimal" if status == "Optimal" else "time_limit"), float(h.getInfo().mip_dual_bound)


def maximal_coverage(
    inst: Instance, n: int, *, time_limit_s: float = 60.0,
    check: Callable[[float], None] | None = None,
) -> Solution:  # fmt: skip
    """The ``n`` sites covering the most residents, solved to optimality.

    See the module docstring; the sites are ordered by marginal gain.

    Parameters
    ----------
    inst : Instance
        The coverage instance.
    n : int
        The number of sites.
    time_limit_s : float, default 60.0
        The most seconds spent (bound and core solve); past it the best solution found is
        answered with status ``time_limit``.
    check : callable, optional
        ``check(share done)``; raises :class:`Stop` to stop the run.

    Returns
    -------
    Solution
        The sites, their value and the bound.
    """
    if n < 1:
        raise InvalidInput("n must be at least 1", field="n")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    n = min(n, inst.n_sites)
    if n == 0 or inst.n_units == 0:
        return Solution([], [], 0.0, 0.0, "optimal", {"solve": 0.0})
    first = greedy(inst, n)
    bound, lower, best, drop, keep = lagrangian(
        inst, n, first.value, first.sites, time_limit_s=time_limit_s / 2,
        check=(lambda f: check(0.6 * f)) if check else None,
    )  # fmt: skip
    seconds["bound"] = time.perf_counter() - started
    status, value = "optimal", lower
    if bound - lower > TOLERANCE * max(lower, 1.0):
        core_sites = np.flatnonzero(~drop)
        sub = inst.by_site[core_sites]
        fixed_units = np.unique(inst.by_site[np.flatnonzero(keep)].indices)
        units = np.setdiff1d(np.unique(sub.indices), fixed_units)
        core, core_w = _aggregate(inst.cover[units][:, core_sites], inst.weight[units])
        if check:
            check(0.65)
        t = time.perf_counter()
        left = max(1.0, time_limit_s - (t - started))
        picked, core_status, _ = _solve_core(core, core_w, n, keep[core_sites], left)
        seconds["core"] = time.perf_counter() - t
        candidate = [int(core_sites[j]) for j in picked]
        candidate_value = inst.value(candidate)
        if candidate_value > lower:
            lower, best = candidate_value, candidate
        status, value = core_status, lower
        details = {"core_sites": int(core_sites.size), "core_units": int(core.shape[0])}
    else:
        details = {"core_sites": 0, "core_units": 0}
    if status == "optimal":
        bound = value
    sites, gains = by_gain(inst, best)
    seconds["solve"] = time.perf_counter() - started
    details.update({"greedy_value": first.value, "lagrangian_bound": float(bound)})
    return Solution(sites, gains, value, float(bound), status, seconds, details)


def set_covering(
    inst: Instance, target: float, *, time_limit_s: float = 60.0,
    check: Callable[[float], None] | None = None,
) -> Solution:  # fmt: skip
    """The fewest sites covering at least ``target`` residents.

    Exactly: the least ``n`` whose maximal coverage reaches it.

    Parameters
    ----------
    inst : Instance
        The coverage instance.
    target : float
        Residents to cover.
    time_limit_s : float, default 60.0
        The most seconds per maximal coverage solved.
    check : callable, optional
        ``check(share done)``; raises :class:`Stop` to stop the run.

    Returns
    -------
    Solution
        The sites; ``bound`` is the least number of sites proven needed; status
        ``infeasible`` when the candidates cannot reach ``target``.
    """
    started = time.perf_counter()
    reachable = float(inst.weight[np.asarray(inst.cover.sum(axis=1)).ravel() > 0].sum())
    if target > reachable * (1 + TOLERANCE):
        return Solution([], [], 0.0, reachable, "infeasible",
                        {"solve": time.perf_counter() - started},
                        {"reachable": reachable})  # fmt: skip
    if target <= 0:
        return Solution([], [], 0.0, 0.0, "optimal", {"solve": 0.0})
    first = greedy(inst, inst.n_sites, target=target)
    hi, best = len(first.sites), first
    lo, status = 0, "optimal"  # lo sites cannot reach the target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if check:
            check(min(0.95, 1 - (hi - lo) / max(len(first.sites), 1)))
        left = time_limit_s - (time.perf_counter() - started)
        if left <= 0:
            status = "time_limit"
            break
        bound, *_ = lagrangian(inst, mid, 0.0, [], time_limit_s=left / 2)
        if bound < target * (1 - TOLERANCE):
            lo = mid
            continue
        solved = maximal_coverage(inst, mid, time_limit_s=left)
        if solved.value >= target * (1 - TOLERANCE):
            hi, best = mid, solved
        elif solved.status == "optimal":
            lo = mid
        else:
            status = "time_limit"
            break
    sites, gains = by_gain(inst, best.sites)
    return Solution(sites, gains, inst.value(sites), float(lo + 1), status,
                    {"solve": time.perf_counter() - started},
                    {"greedy_sites": len(first.sites), "fewest_possible": lo + 1})  # fmt: skip


def p_median(
    cost_s: np.ndarray, weight: np.ndarray, base_s: np.ndarray, n: int, *,
    time_limit_s: float = 60.0,
) -> Solution:  # fmt: skip
    """The ``n`` sites minimising residents' total travel time to their nearest site.

    Parameters
    ----------
    cost_s : numpy.ndarray
        Units × candidates, travel time in seconds (capped).
    weight : numpy.ndarray
        Residents per unit.
    base_s : numpy.ndarray
        Each unit's time to the nearest existing venue (capped), seconds: an extra column
        that is always open.
    n : int
        The number of sites.
    time_limit_s : float, default 60.0
        The solver's time limit, seconds.

    Returns
    -------
    Solution
        The sites, ordered by gain; ``value`` is the total weighted time.
    """
    import pulp
    from spopt.locate import PMedian

    started = time.perf_counter()
    m = cost_s.shape[1]
    matrix = np.column_stack([base_s, cost_s])
    predefined = np.zeros(m + 1, dtype=int)
    predefined[0] = 1
    model = PMedian.from_cost_matrix(matrix, weight, p_facilities=n + 1,
                                     predefined_facilities_arr=predefined)  # fmt: skip
    model.problem.solve(pulp.HiGHS(msg=False, timeLimit=time_limit_s, gapRel=0.0, threads=1))
    status = pulp.LpStatus[model.problem.status]
    chosen = [j - 1 for j, v in enumerate(model.fac_vars) if j > 0 and (v.value() or 0) > 0.5]
    total = float(pulp.value(model.problem.objective) or 0.0)
    # Ordered by how much each lowers the total time, greedily within the chosen set.
    order, gains, current = [], [], base_s.copy()
    rest = list(chosen)
    while rest:
        saved = [float((weight * (current - np.minimum(current, cost_s[:, j]))).sum())
                 for j in rest]
        k = int(np.argmax(saved))
        order.append(rest[k])
        gains.append(saved[k])
        current = np.minimum(current, cost_s[:, rest.pop(k)])
    return Solution(order, gains, total, total, "optimal" if status == "Optimal" else "time_limit",
                    {"solve": time.perf_counter() - started},
                    {"weighted_time_before_s": float((weight * base_s).sum())})  # fmt: skip

"""Planning: where the next stations go, what-if scenarios, coverage in a blink.

The kept reach sets it answers from are :mod:`geomap.routing.index`.

* :mod:`~geomap.planning.demand`: residents' sample points grouped into demand units.
* :mod:`~geomap.planning.models`: maximal coverage, set covering, p-median (spopt on
  HiGHS, made to scale by a Lagrangian bound that fixes most sites), and greedy.
* :mod:`~geomap.planning.question`: a suggestion's question, the plan, checked.
* :mod:`~geomap.planning.suggest`: a suggestion run, from the checked question to the answer.
* :mod:`~geomap.planning.scenarios`: named what-if venue sets and their coverage.
* :mod:`~geomap.planning.jobs`: runs in worker threads, with status in ``plan_jobs``.
"""

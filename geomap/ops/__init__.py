"""The command loop: cases from report to closure, plain functions over a connection.

* :mod:`~geomap.ops.cases`: cases (事件) reported, placed on the unit chain resolved from
  their point, and stepped by a person.
* :mod:`~geomap.ops.casesteps`: a case's lifecycle, a state machine written as a table, and
  the one writer that moves a case along it.
* :mod:`~geomap.ops.casereads`: one case or a filtered page of them, as they are answered.
* :mod:`~geomap.ops.dispatch`: teams sent to cases, their own states, and the database's
  guarantee of one active dispatch per team.
* :mod:`~geomap.ops.escalation`: climbs along the chain computed from the clock and
  recorded once; the serving process's background loop.
* :mod:`~geomap.ops.recommend`: the teams that fit a case ranked by drive time, what the
  city loses when each leaves (:mod:`~geomap.ops.cover`), and move-up suggestions.
* :mod:`~geomap.ops.positions`: batches of position fixes, the monthly history, tracks.
* :mod:`~geomap.ops.teams`: a commander's changes to a team.
* :mod:`~geomap.ops.stats`: found, closed, closure rate and times, per unit.
* :mod:`~geomap.ops.registers`: hazard registers (CSV, XLSX) imported as cases.
* :mod:`~geomap.ops.audit`: the append-only audit log; :mod:`geomap.events` the live events.

Every write goes through one function that also appends the audit row and announces the
event, in the caller's transaction. Time is always a parameter (``now``): the service
passes its clock, tests a clock of their own.
"""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """The service's clock: the current time, timezone-aware (UTC).

    Returns
    -------
    datetime.datetime
        Now, with ``tzinfo=UTC``; every ``now`` parameter of :mod:`geomap.ops` takes one.
    """
    return dt.datetime.now(dt.UTC)

"""A lifecycle as an explicit table: (state, action) → next state.

Cases and dispatches each declare theirs (``STEPS`` in :mod:`geomap.ops.casesteps` and
:mod:`geomap.ops.dispatch`); this module answers the two questions asked of either: which
actions a state allows, and where an action leads (an unknown action is bad input, 400;
an action the state does not allow is a conflict, 409, naming the ones it does).
"""

from __future__ import annotations

from collections.abc import Mapping

from geomap.errors import Conflict, InvalidInput

#: (state, action) → next state.
Steps = Mapping[tuple[str, str], str]


def allowed(steps: Steps, actions: tuple[str, ...], status: str) -> list[str]:
    """The ``actions`` that ``steps`` allows from ``status``, in their order.

    Parameters
    ----------
    steps : Steps
        The lifecycle table, (state, action) → next state.
    actions : tuple of str
        Every action of the lifecycle, in the order they are offered.
    status : str
        The current state.

    Returns
    -------
    list of str
        The actions with a row for ``status`` in ``steps``; empty for a final state.
    """
    return [a for a in actions if (status, a) in steps]


def next_status(
    steps: Steps,
    actions: tuple[str, ...],
    status: str,
    action: str,
    *,
    refusal: str,
    finished: str,
) -> str:
    """The status ``action`` leads to from ``status``.

    Parameters
    ----------
    steps : Steps
        The lifecycle table, (state, action) → next state.
    actions : tuple of str
        Every action of the lifecycle; any other is bad input.
    status : str
        The current state.
    action : str
        The action asked for.
    refusal : str
        The conflict's opening, formatted with ``status`` and ``action``
        (e.g. ``"a {status} case cannot take the step {action!r}"``).
    finished : str
        What the message says is allowed when nothing is (a final state).

    Returns
    -------
    str
        The next state.

    Raises
    ------
    InvalidInput
        ``action`` is none of ``actions``.
    Conflict
        ``status`` does not allow it; the message names what it allows.
    """
    if action not in actions:
        raise InvalidInput(
            f"unknown action {action!r}; actions: {', '.join(actions)}", field="action"
        )
    found = steps.get((status, action))
    if found is None:
        options = allowed(steps, actions, status)
        raise Conflict(
            f"{refusal.format(status=status, action=action)}; allowed from {status}: "
            f"{', '.join(options) if options else finished}",
            field="action",
        )
    return found

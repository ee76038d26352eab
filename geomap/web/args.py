"""Query-string parsing shared by the faces: unknown parameters are refused by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.datastructures import MultiDict

from geomap.errors import InvalidInput


class Args:
    """The query arguments of one request, restricted to the ones an endpoint knows.

    Parameters
    ----------
    args : MultiDict
        ``request.args``.
    allowed : iterable of str
        Parameter names the endpoint accepts; any other name is a 400 naming it.
    """

    def __init__(self, args: MultiDict, allowed: Iterable[str]):
        allowed = set(allowed)
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise InvalidInput(
                f"unknown parameter {unknown[0]!r}; this endpoint accepts: "
                f"{', '.join(sorted(allowed))}",
                field=unknown[0],
            )
        self._args = args

    def str(self, name: str, default: str | None = None) -> str | None:
        """The single value of ``name`` (a repeated parameter is an error)."""
        values = self._args.getlist(name)
        if not values:
            return default
        if len(values) > 1:
            raise InvalidInput(f"{name} is given {len(values)} times; give it once", field=name)
        return values[0].strip()

    def raw(self, name: str) -> Any:
        """The value as given (validated later by the analysis function), or None."""
        value = self.str(name)
        return None if value == "" else value

    def list(self, name: str) -> list[str] | None:
        """Values of ``name``: repeated (``kind=a&kind=b``) or comma-separated (``kind=a,b``)."""
        values = [v.strip() for raw in self._args.getlist(name) for v in raw.split(",")]
        values = [v for v in values if v]
        return values or None

    def bool(self, name: str, default: bool = False) -> bool:
        """``1/true/yes`` or ``0/false/no``."""
        value = self.str(name)
        if value is None or value == "":
            return default
        if value.lower() in {"1", "true", "yes"}:
            return True
        if value.lower() in {"0", "false", "no"}:
            return False
        raise InvalidInput(f"{name} must be 1/true/yes or 0/false/no, got {value!r}", field=name)


def single_values(args: MultiDict) -> dict[str, str]:
    """Each parameter's one value, for a core that takes plain values (``geomap.ogc.core``).

    Parameters
    ----------
    args : MultiDict
        ``request.args``.

    Returns
    -------
    dict of str to str

    Raises
    ------
    InvalidInput
        A parameter given more than once (the error names it).
    """
    values: dict[str, str] = {}
    for name, given in args.lists():
        if len(given) > 1:
            raise InvalidInput(f"{name} is given {len(given)} times; give it once", field=name)
        values[name] = given[0]
    return values

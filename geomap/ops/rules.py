"""The dispatch rules (``data/dispatch.toml``): which teams fit a case, and its deadlines.

The rules are data, read and checked once per file version (a changed file is read
again): every team kind must be a known one, every deadline a positive number, and a
mistake is a :class:`~geomap.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geomap import vocab
from geomap.errors import ConfigError

#: Levels with an acceptance deadline (the last level of the chain has none).
DEADLINE_LEVELS = ("grid", "community", "township")


@dataclass(frozen=True)
class KindRule:
    """The teams that fit one case kind.

    Parameters
    ----------
    kind : str
        The case kind (a key of ``vocab.CASE_KINDS``).
    zh, en : str
        The kind's name in Chinese and in English.
    team_kinds : tuple of str
        The team kinds that may be sent (keys of ``vocab.TEAM_KINDS``).
    capabilities : tuple of str
        A team fits if it has any of them; empty when no capability is needed.
    """

    kind: str
    zh: str
    en: str
    team_kinds: tuple[str, ...]
    capabilities: tuple[str, ...]  # any of them; empty: no capability needed


@dataclass(frozen=True)
class Rules:
    """The dispatch rules in force.

    Parameters
    ----------
    path : pathlib.Path
        The file they were read from.
    kinds : dict of str to KindRule
        The team filter of every case kind.
    accept : dict
        The ``[accept]`` tables: minutes to accept per level, by kind and severity, with a
        ``default``.
    resolve : dict
        The ``[resolve]`` tables: ``hours`` to resolution, by kind and severity, with a
        ``default``.
    """

    path: Path
    kinds: dict[str, KindRule]
    accept: dict[str, Any]
    resolve: dict[str, Any]

    def fit(self, kind: str) -> KindRule:
        """The team filter of a case kind.

        Parameters
        ----------
        kind : str
            A case kind.

        Returns
        -------
        KindRule
            The team kinds and capabilities that fit it.
        """
        return self.kinds[kind]

    def accept_minutes(self, kind: str, severity: str) -> list[int]:
        """Minutes to accept at the grid, community and township levels.

        Parameters
        ----------
        kind, severity : str
            The case's kind and severity; the most specific table that gives the minutes wins
            (kind and severity, then kind, then ``default``).

        Returns
        -------
        list of int
            One number per level of ``DEADLINE_LEVELS``, in order.
        """
        table = _lookup(self.accept, kind, severity, "grid")
        return [int(table[level]) for level in DEADLINE_LEVELS]

    def resolve_hours(self, kind: str, severity: str) -> float:
        """Hours from report to resolution before an open case is overdue.

        Parameters
        ----------
        kind, severity : str
            The case's kind and severity (looked up as in :meth:`accept_minutes`).

        Returns
        -------
        float
            The hours.
        """
        return float(_lookup(self.resolve, kind, severity, "hours")["hours"])

    def resolve_by(self, kind: str, severity: str, reported_at: dt.datetime) -> dt.datetime:
        """The time by which a case reported at ``reported_at`` should be resolved.

        Parameters
        ----------
        kind, severity : str
            The case's kind and severity.
        reported_at : datetime.datetime
            When the case was reported.

        Returns
        -------
        datetime.datetime
            ``reported_at`` plus :meth:`resolve_hours`.
        """
        return reported_at + dt.timedelta(hours=self.resolve_hours(kind, severity))


def _lookup(section: dict[str, Any], kind: str, severity: str, key: str) -> dict[str, Any]:
    by_kind = section.get(kind, {})
    for table in (by_kind.get(severity, {}), by_kind, section["default"]):
        if key in table:
            return table
    raise KeyError(key)  # pragma: no cover - load() checks that default has every key


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}", field="GEOMAP_DISPATCH_RULES")


def _positive(path: Path, where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _fail(path, f"{where} must be a positive number, got {value!r}")


def _check_deadlines(path: Path, name: str, section: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(section, dict) or not isinstance(section.get("default"), dict):
        raise _fail(path, f"[{name}.default] is missing")
    for key in keys:
        if key not in section["default"]:
            raise _fail(path, f"[{name}.default] needs {key}")
    for kind, table in section.items():
        if kind != "default" and kind not in vocab.CASE_KINDS:
            raise _fail(path, f"[{name}.{kind}]: unknown case kind {kind!r}")
        tables = [(f"{name}.{kind}", table)]
        for sub, value in table.items():
            if isinstance(value, dict):
                if sub not in vocab.CASE_SEVERITIES:
                    raise _fail(path, f"[{name}.{kind}.{sub}]: unknown severity {sub!r}")
                tables.append((f"{name}.{kind}.{sub}", value))
        for where, values in tables:
            scalars = {k: v for k, v in values.items() if not isinstance(v, dict)}
            if scalars and set(scalars) != set(keys):
                raise _fail(path, f"[{where}] must give {', '.join(keys)} together")
            for key, value in scalars.items():
                _positive(path, f"[{where}] {key}", value)


def load(path: Path) -> Rules:
    """Read and check a rules file.

    Parameters
    ----------
    path : pathlib.Path
        The TOML file (``data/dispatch.toml`` or ``GEOMAP_DISPATCH_RULES``).

    Returns
    -------
    Rules
        The checked rules.

    Raises
    ------
    ConfigError
        The file is missing, is not TOML, or says something impossible (the message names
        the key).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, f"cannot read the dispatch rules ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML: {exc}") from exc
    kinds = {}
    for kind in vocab.CASE_KINDS:
        table = data.get("kinds", {}).get(kind)
        if not isinstance(table, dict):
            raise _fail(path, f"[kinds.{kind}] is missing")
        team_kinds = tuple(table.get("team_kinds", ()))
        unknown = [k for k in team_kinds if k not in vocab.TEAM_KINDS]
        if not team_kinds or unknown:
            known = ", ".join(vocab.TEAM_KINDS)
            raise _fail(
                path,
                f"[kinds.{kind}] team_kinds must list known team kinds "
                f"({known}); got {unknown or 'none'}",
            )
        capabilities = table.get("capabilities", [])
        if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
            raise _fail(path, f"[kinds.{kind}] capabilities must be a list of names")
        kinds[kind] = KindRule(
            kind,
            str(table.get("zh", vocab.CASE_KINDS[kind].zh)),
            str(table.get("en", vocab.CASE_KINDS[kind].en)),
            team_kinds,
            tuple(capabilities),
        )
    _check_deadlines(path, "accept", data.get("accept"), DEADLINE_LEVELS)
    _check_deadlines(path, "resolve", data.get("resolve"), ("hours",))
    return Rules(path, kinds, data["accept"], data["resolve"])


_cache: dict[Path, tuple[float, Rules]] = {}
_lock = threading.Lock()


def rules(path: Path) -> Rules:
    """The rules of ``path``, read again when the file changes.

    Parameters
    ----------
    path : pathlib.Path
        The rules file; its modification time decides whether the cached copy holds.

    Returns
    -------
    Rules
        The checked rules, as :func:`load` gives them.

    Raises
    ------
    ConfigError
        As :func:`load`.
    """
    path = Path(path)
    try:
        stamp = path.stat().st_mtime
    except OSError:
        stamp = -1.0
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    found = load(path)
    with _lock:
        _cache[path] = (stamp, found)
    return found

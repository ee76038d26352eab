"""Check that every third-party package the code imports is declared in setup.cfg.

Each folder is held to what its users install: ``geomap/`` to ``install_requires``, ``tests/``
to that plus the ``test`` extra, ``bench/`` to that plus the ``bench`` extra (``make bench``
installs ``.[test,bench]``). An import is matched to its distribution through the installed
metadata (``PIL`` is ``pillow``, ``fpdf`` is ``fpdf2``); a few that the environment may lack
(the bench engines) are named in ``KNOWN``. Imports inside functions and ``__import__("x")``
count too. Prints each undeclared import with the files that make it; exits 1 if there is one.

Usage: ``python tools/check_deps.py`` from the top of the repository, with the venv's python.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"geomap", "tests", "bench"}
# Import names of distributions that ``make bench`` installs but ``make venv`` does not, so the
# environment running this check may have no metadata for them.
KNOWN = {"valhalla": {"pyvalhalla-weekly"}, "pandana": {"pandana"}}
# Which folder is held to which extras of setup.cfg.
FOLDERS = {"geomap": (), "tests": ("test",), "bench": ("test", "bench")}


def canonical(name: str) -> str:
    """The PEP 503 form of a distribution name (``Jinja2`` and ``jinja2`` are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    """The distribution a requirement line names (``psycopg[binary]>=3.1`` is ``psycopg``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    if match is None:
        raise ValueError(f"not a requirement: {line!r}")
    return canonical(match.group(1))


def declared(setup_cfg: Path, extras: tuple[str, ...]) -> set[str]:
    """Distribution names in ``install_requires`` and the given extras of ``setup_cfg``."""
    config = configparser.ConfigParser()
    config.read(setup_cfg, encoding="utf-8")
    lines = config["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += config["options.extras_require"][extra].splitlines()
    return {requirement_name(line) for line in lines if line.strip()}


def imported(folder: Path) -> dict[str, set[Path]]:
    """Top-level names imported anywhere under ``folder``, with the files importing each."""
    found: dict[str, set[Path]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "__import__" and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and isinstance(node.args[0].value, str)):
                names = [node.args[0].value]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path)
    return found


def undeclared(root: Path = ROOT) -> list[str]:
    """One line per import under ``root`` that setup.cfg does not declare for its folder.

    Parameters
    ----------
    root
        The top of the repository (holding ``setup.cfg`` and the folders).

    Returns
    -------
    list of str
        ``"folder: module (distribution?) in file, ..."`` lines; empty when all is declared.
    """
    distributions = {name: {canonical(d) for d in dists}
                     for name, dists in packages_distributions().items()}
    distributions.update(KNOWN)
    problems = []
    for folder, extras in FOLDERS.items():
        allowed = declared(root / "setup.cfg", extras)
        for module, paths in sorted(imported(root / folder).items()):
            if module in FIRST_PARTY or module in sys.stdlib_module_names:
                continue
            candidates = distributions.get(module, {canonical(module)})
            if candidates & allowed:
                continue
            files = ", ".join(sorted(str(p.relative_to(root)) for p in paths))
            problems.append(f"{folder}: {module} ({' or '.join(sorted(candidates))}) in {files}")
    return problems


def main() -> int:
    problems = undeclared()
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

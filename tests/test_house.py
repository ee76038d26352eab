"""The house's rules hold: no import cycle, no face or framework below the faces, short files.

The rules are read from the source (:mod:`tests.importgraph`), lazy imports included.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from tests import importgraph

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_imports_itself_through_others():
    found = importgraph.cycles(importgraph.edges(ROOT))
    assert found == [], "import cycles: " + "; ".join(" ↔ ".join(group) for group in found)


def test_plain_packages_import_no_framework_cli_or_face():
    found = [
        f"{edge.importer} imports {edge.imported} (line {edge.line})"
        for edge in importgraph.forbidden(importgraph.edges(ROOT))
    ]
    assert found == []


def test_no_long_file_without_its_reason():
    assert importgraph.long_files(ROOT) == []


def test_the_readme_layout_names_every_module_and_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout") :].split("```")[1]
    named = set(re.findall(r"[\w.]+/?", layout))
    rooms = sorted(
        path.name + ("/" if path.is_dir() else "")
        for path in (ROOT / "geomap").iterdir()
        if path.name != "__pycache__" and (path.is_dir() or path.suffix == ".py")
    )
    assert [room for room in rooms if room not in named] == []


def test_the_checker_sees_lazy_cycles_and_forbidden_imports(tmp_path):
    # A tree of three modules: a ↔ b only through an import inside a function, and an ops
    # module that imports flask lazily; an import under TYPE_CHECKING is no cycle.
    files = {
        "geomap/__init__.py": "",
        "geomap/a.py": "from geomap import b\n",
        "geomap/b.py": "def f():\n    from geomap.a import x\n",
        "geomap/c.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from geomap import a\n"
        ),
        "geomap/ops/__init__.py": "",
        "geomap/ops/run.py": "def g():\n    import flask\n    from .. import c\n",
        "geomap/ops/long.py": "x = 1\n" * 601,
        "geomap/ops/why.py": '"""Longer than 600 lines: a table."""\n' + "x = 1\n" * 601,
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    edges = list(importgraph.edges(tmp_path))
    assert importgraph.cycles(edges) == [["geomap.a", "geomap.b"]]
    assert [(e.importer, e.imported) for e in importgraph.forbidden(edges)] == [
        ("geomap.ops.run", "flask")
    ]
    assert ("geomap.ops.run", "geomap.c") in {(e.importer, e.imported) for e in edges}
    assert importgraph.long_files(tmp_path) == [(Path("geomap/ops/long.py"), 601)]

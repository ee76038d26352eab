"""setup.cfg declares what the code imports, and constraints.txt locks what it pulls in."""

from __future__ import annotations

import configparser
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> ModuleType:
    """A script of tools/ as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_imported_package_is_declared_for_its_folder():
    assert _tool("check_deps").undeclared(ROOT) == []


def test_test_only_packages_stay_out_of_the_runtime_requirements():
    check = _tool("check_deps")
    runtime = check.declared(ROOT / "setup.cfg", ())
    for name in ("pytest", "ruff", "playwright", "pyrosm", "hypothesis"):
        assert name not in runtime, name
        assert name in check.declared(ROOT / "setup.cfg", ("test",)), name
    assert "pyrosm" not in check.imported(ROOT / "geomap")


def test_ruff_is_pinned_to_one_version():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = [line.strip() for line in config["options.extras_require"]["test"].splitlines()]
    ruff = [line for line in lines if line.startswith("ruff")]
    assert len(ruff) == 1 and ruff[0].startswith("ruff=="), ruff


def test_the_constraints_file_locks_exactly_what_the_environment_pulls_in():
    lock = _tool("lock")
    installed = lock.closure(lock.roots(ROOT / "setup.cfg"))
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[lock.canonicalize_name(name)] = version
    installed = {lock.canonicalize_name(name): v for name, v in installed.items()}
    missing = sorted(installed.keys() - pinned.keys())
    assert not missing, f"not in constraints.txt (run `make lock`): {missing}"
    extra = sorted(pinned.keys() - installed.keys())
    assert not extra, f"pinned but not required (run `make lock`): {extra}"
    drift = {k: (pinned[k], installed[k]) for k in pinned if pinned[k] != installed[k]}
    assert not drift, f"installed versions differ from constraints.txt (run `make venv`): {drift}"

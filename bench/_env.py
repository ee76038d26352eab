"""Shared set-up for the benchmarks: a throwaway database with the Nanchang dataset."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from geomap import config, db, pg, storage
from geomap.seed import nanchang

ROOT = Path(__file__).resolve().parent.parent


def settings_for(url: str) -> config.Settings:
    return config.load({"database_url": url}, environ={})


@contextmanager
def nanchang_database() -> Iterator[str]:
    """A throwaway cluster holding the default dataset; yields its URL."""
    state = Path(tempfile.mkdtemp(prefix="geomap-bench-"))
    state.chmod(0o755)
    cluster = pg.Cluster(state, port=5439, throwaway=True)
    try:
        cluster.up("geomap_bench")
        url = cluster.url("geomap_bench")
        db.migrate(settings_for(url))
        started = time.perf_counter()
        frames = nanchang.generate(config.PROJECT_DIR / "data" / "nanchang")
        with db.get_engine(settings_for(url)).begin() as conn:
            storage.replace_all(conn, frames)
        with db.get_engine(settings_for(url)).connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        print(f"  (Nanchang dataset generated and loaded in {time.perf_counter() - started:.1f} s)")
        yield url
    finally:
        db.dispose_engines()
        cluster.destroy()
        shutil.rmtree(state, ignore_errors=True)


def timings_ms(func: Callable[[], object], repeat: int, warmup: int = 2) -> list[float]:
    """Wall-clock milliseconds of ``repeat`` calls after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        func()
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


def line(label: str, value: float, unit: str, baseline: float | None = None,
         baseline_label: str = "", goal: str = "") -> None:  # fmt: skip
    """Print one figure, with its ratio to the baseline when there is one."""
    text = f"  {label}: {_figure(value)} {unit}"
    if baseline is not None:
        ratio = baseline / value if value else float("inf")
        compared = f"{ratio:,.1f}× faster" if ratio >= 1 else f"{1 / ratio:,.1f}× slower"
        text += f"  | baseline {baseline_label}: {_figure(baseline)} {unit} → {compared}"
    if goal:
        text += f"  [goal {goal}]"
    print(text, flush=True)


def _figure(x: float) -> str:
    """One decimal, or enough for two significant digits below 1 (0.35, 0.0047)."""
    if x == 0 or abs(x) >= 1:
        return f"{x:,.1f}"
    return f"{x:.2g}" if abs(x) < 0.1 else f"{x:.2f}"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"

"""``python -m bench [name ...]``: run the benchmarks (all by default)."""

from __future__ import annotations

import importlib
import sys
import time

from bench._env import machine, nanchang_database

# maps first: nearest adds synthetic teams (up to 100,000) to the shared database; cases
# before it, on the dataset's own 5,650 teams.
BENCHMARKS = (
    "maps", "cases", "live", "routing", "nearest", "coverage", "circles", "throughput", "plan",
    "jobs",
)  # fmt: skip


def main(names: list[str]) -> int:
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; "
              f"choose from {', '.join(BENCHMARKS)}", file=sys.stderr)  # fmt: skip
        return 2
    print(f"geomap benchmarks on {machine()}, {time.strftime('%Y-%m-%d %H:%M')}")
    with nanchang_database() as url:
        for name in names or BENCHMARKS:
            module = importlib.import_module(f"bench.{name}")
            print(f"\n[{name}] {module.__doc__.strip().splitlines()[0]}", flush=True)
            module.run(url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

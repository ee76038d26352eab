"""``python -m geomap.cli``: the ``geomap`` command, as the tests and benchmarks start it."""

from geomap.cli import main

main()

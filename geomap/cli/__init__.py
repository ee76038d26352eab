"""The ``geomap`` command: a thin layer over the package's functions.

One module per command group (``db``, ``seed``, ``load``, ``network``, ``nearest``,
``report``, ``circles``, ``keys``, ``serve``, ``plan``, ``map``, ``cases``, ``stations``,
``settings``); what they share (the settings, errors as messages, JSON out) is in
:mod:`geomap.cli._common`. Every command reads the settings (``GEOMAP_*``) when it runs;
errors of the :class:`~geomap.errors.GeomapError` family print their message and exit with
status 1 (2 for configuration problems).
"""

from __future__ import annotations

import click

from geomap.cli.cases import cases_group
from geomap.cli.circles import circles_group
from geomap.cli.db import db
from geomap.cli.keys import keys
from geomap.cli.load import load
from geomap.cli.map import map_group
from geomap.cli.nearest import nearest_cmd
from geomap.cli.network import network
from geomap.cli.plan import plan_group
from geomap.cli.report import report
from geomap.cli.seed import provenance_cmd, seed
from geomap.cli.serve import serve
from geomap.cli.settings import settings_cmd
from geomap.cli.stations import stations_group

__all__ = ["main"]


@click.group()
@click.version_option(package_name="geomap")
@click.pass_context
def main(ctx: click.Context) -> None:
    """geomap: the battle map (作战图) service for grid-governance emergency teams."""
    ctx.ensure_object(dict)


for _command in (
    db, seed, provenance_cmd, load, network, nearest_cmd, report, circles_group, keys, serve,
    plan_group, map_group, cases_group, stations_group, settings_cmd,
):  # fmt: skip
    main.add_command(_command)

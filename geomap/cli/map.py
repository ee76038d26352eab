"""``geomap map ...``: maps as self-contained HTML files, for a command post with no network.

``geomap map battle --out battle.html`` reads every layer of the battle map through the
analysis functions (:func:`geomap.analysis.features.iter_features`), inlines the data and
every asset (Leaflet, plugins, fonts, our module) and writes ONE file that opens from disk
with no network and no server. Searching, layers, legend and popups work offline; the
nearest-teams panel says that it needs the service.

The click group is :data:`map_group` (command name ``map``); ``geomap.cli`` attaches it.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from geomap import config, db
from geomap.cli._common import handle_errors
from geomap.cli._common import settings as cli_settings
from geomap.maps import basemaps, entries


@click.group("map")
def map_group() -> None:
    """Maps as self-contained HTML files (open offline, no server needed)."""


def export_battle_data(
    settings: config.Settings, names: list[str] | None = None
) -> tuple[dict[str, dict], dict]:
    """Read the battle map's layers from the database, in the compact form.

    Parameters
    ----------
    settings : Settings
        Which database.
    names : list of str, optional
        Layer ids (default: every battle-map layer of the catalog).

    Returns
    -------
    (dict, dict)
        ``geomap-compact/1`` documents by layer id, and the initial view (the gridded
        area, as the served page has it).
    """
    from geomap.analysis import features
    from geomap.layers import load_catalog
    from geomap.maps import battle, compact

    catalog = load_catalog()
    names = names or battle.battle_layers(catalog)
    data: dict[str, dict] = {}
    view: dict = {}
    with db.session_scope(settings) as session:
        for name in names:
            layer = catalog[name]
            # No limit: a file is not a request; it holds the whole city.
            selection = features.Selection()
            matched = features.count(session, layer, selection)
            data[name] = compact.encode_layer(
                layer, features.iter_features(session, layer, selection, personal=False),
                matched=matched, credited=features.derived_sources(session, layer),
            )  # fmt: skip
        for name in ("grids", "districts"):
            if name in catalog:
                box = features.extent(session, catalog[name])
                if box:
                    view = {"bounds": [[box[1], box[0]], [box[3], box[2]]]}
                    break
    return data, view


@map_group.command("battle")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write.",
)  # fmt: skip
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="Language of labels and legend.")  # fmt: skip
@click.option(
    "--layers", default=None,
    help="Comma-separated layers (default: all of the battle map's layers).",
)  # fmt: skip
@click.option(
    "--basemap", type=click.Choice(["none", "osm", "tianditu", "amap"]), default="none",
    show_default=True, help="Tiles from the network: only 'none' works offline.",
)  # fmt: skip
@click.pass_context
@handle_errors
def battle_command(
    ctx: click.Context, out: Path, lang: str, layers: str | None, basemap: str
) -> None:
    """Write the battle map (作战图) with all its data as ONE offline HTML file."""
    from geomap.layers import load_catalog
    from geomap.maps import battle, page

    settings = cli_settings(ctx)
    catalog = load_catalog()
    names = None
    if layers:
        names = entries.check_layer_names(
            [n.strip() for n in layers.split(",") if n.strip()],
            battle.battle_layers(catalog),
            "battle",
        )
    started = time.perf_counter()
    data, view = export_battle_data(settings, names)
    spec = page.PageSpec(
        lang=lang,
        basemap=basemaps.basemap(basemap, lang=lang, tianditu_key=settings.tianditu_key),
        view=view,
        service_url=None,  # no service behind a file: the nearest-teams panel says so
    )
    m = battle.battle_map(catalog, spec, data=data, layers=names)
    html = page.page_html(m, "standalone")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    counts = ", ".join(f"{name} {doc['count']:,}" for name, doc in data.items())
    click.echo(
        f"wrote {out} ({len(html.encode('utf-8')) / 1e6:.1f} MB, "
        f"{time.perf_counter() - started:.1f} s): {counts}"
    )
    if "circles" in data and data["circles"]["count"] == 0:
        click.echo("note: no 15-minute circles are built yet: `geomap circles build` first")

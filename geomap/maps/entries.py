"""The layer entries of a map page's configuration: what the browser module draws and from where.

:func:`catalog_layer` turns a catalog layer (``layers/*.toml``) into the entry the page
reads (title, styles, fields, kinds, and its source: a compact document, inlined data or
vector tiles); :func:`check_layer_names` checks a page's ``?layers=``.
"""

from __future__ import annotations

from typing import Any

from geomap.errors import InvalidInput
from geomap.layers import Layer
from geomap.maps import compact, text

#: Where a layer's vector tiles are (``/tiles/<layer>/{z}/{x}/{y}.pbf``).
TILES_PATH = "/tiles/{layer}/{{z}}/{{x}}/{{y}}.pbf"


def catalog_layer(
    layer: Layer,
    lang: str,
    *,
    source: dict[str, str],
    visible: bool | None = None,
    zoom: int | None = None,
    tiled: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A catalog layer as the browser module draws it.

    Parameters
    ----------
    layer : Layer
        From the catalog (``layers/*.toml``).
    lang : str
        ``zh`` or ``en``: the title, description and kind labels.
    source : dict
        Where the data is: ``{"url": ...}`` (a ``geomap-compact/1`` document) or
        ``{"inline": element_id}``.
    visible : bool, optional
        Shown at start (default: the catalog's ``visible``).
    zoom : int, optional
        The zoom the page opens at (:func:`geomap.maps.page.detail_zoom`): a layer with a catalog
        ``detail_zoom`` above it is loaded generalised for it (``?zoom=``).
    tiled : dict, optional
        For a layer drawn from vector tiles instead (a served page, the layer above the
        ``map_tiles_above`` setting): its ``count``, ``sources`` and class ``breaks``
        (:func:`geomap.analysis.features.tiled_summary`); ``source`` becomes its tiles.

    Returns
    -------
    dict
        ``id``, ``title``, ``description``, ``geometry``, ``minZoom``, ``detailZoom``,
        ``visible``, ``cluster``, ``idField``, ``fields``, ``label``, ``search``,
        ``kindColumn``, ``statusColumn``, ``choropleth``, ``style``, ``kinds`` (labels),
        ``source``.
    """
    kinds = text.strings(lang)["kinds"].get(layer.id, {})
    source = dict(source)
    if tiled is not None:
        source = {"tiles": TILES_PATH.format(layer=layer.id)}
    if "url" in source and zoom is not None and zoom < layer.detail_zoom:
        source["url"] = source["url"] + ("&" if "?" in source["url"] else "?") + f"zoom={zoom}"
    return {
        "id": layer.id,
        "type": "catalog",
        "title": layer.title.get(lang) or layer.title.get("zh") or layer.id,
        "description": layer.description.get(lang) or "",
        "geometry": layer.geometry,
        "minZoom": layer.min_zoom,
        "detailZoom": layer.detail_zoom,
        "visible": layer.visible if visible is None else visible,
        "cluster": layer.cluster,
        "idField": layer.id_column,
        "fields": list(compact.map_fields(layer)),
        "label": layer.label,
        "search": list(layer.search),
        "kindColumn": layer.kind_column,
        "statusColumn": layer.status_column,
        "choropleth": list(layer.choropleth),
        "style": layer.style,
        "kinds": kinds,
        "source": source,
        **(
            {"count": tiled["count"], "sources": tiled["sources"], "breaks": tiled["breaks"]}
            if tiled is not None
            else {}
        ),
    }


def check_layer_names(names: list[str] | None, allowed: list[str], page: str) -> list[str] | None:
    """The layer names asked for (``?layers=``), or InvalidInput naming the unknown ones.

    Parameters
    ----------
    names : list of str or None
        As given; None: the page's default layers.
    allowed : list of str
        The layers this map can show.
    page : str
        The map's name, for the message.

    Returns
    -------
    list of str or None
        The names, without repeats, in the order given.

    Raises
    ------
    InvalidInput
        When a name is not a layer of this map, or none is given.
    """
    if names is None:
        return None
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise InvalidInput(
            f"unknown layer(s) {', '.join(unknown)} for the {page} map; "
            f"layers: {', '.join(allowed)}",
            field="layers",
        )
    if not names:
        raise InvalidInput(f"layers is empty; layers: {', '.join(allowed)}", field="layers")
    return list(dict.fromkeys(names))

"""The layer catalog as the faces serve it: read once per process, filtered per caller.

The API's layers, the maps, the OGC API and ``/openapi.json`` all read the same catalog
(``layers/*.toml``, :mod:`geomap.layers`) through here.
"""

from __future__ import annotations

import functools
from pathlib import Path

from geomap import layers
from geomap.web import access


@functools.cache
def _catalog_cached(folder: str) -> dict[str, layers.Layer]:
    return layers.load_catalog(Path(folder))


def catalog() -> dict[str, layers.Layer]:
    """The catalog, read once per process (the files do not change while serving)."""
    return _catalog_cached(str(layers.CATALOG_DIR))


def visible_catalog() -> dict[str, layers.Layer]:
    """The layers this request's caller may see (an embed token opens only its own)."""
    who = access.current()
    return {key: layer for key, layer in catalog().items() if who.may_see_layer(key)}


def may_see_personal() -> bool:
    """Whether this request's caller may see personal fields (commanders only)."""
    return access.current().may("personal")

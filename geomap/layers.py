"""The map-layer catalog: ``layers/*.toml``, one file per layer, read and checked here.

A layer is data, not code: where its features come from (a table, fixed filters, each a
value or a list of values, the columns offered as properties), how they look (style,
per-kind styles, legend), and how they behave (default visibility, minimum zoom, simplification,
clustering). The maps and the feature service read the same catalog.

Every name a layer gives (table, columns) is checked against :mod:`geomap.models`, so the
SQL built from a layer never contains anything but known identifiers.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geomap import models
from geomap.config import PROJECT_DIR
from geomap.errors import ConfigError, NotFound

CATALOG_DIR = PROJECT_DIR / "layers"
GEOMETRIES = ("point", "polygon", "line")
_KEYS = {
    "id", "title", "description", "table", "where", "geometry", "id_column", "properties",
    "personal", "time_column", "label", "search", "visible", "min_zoom", "simplify_m",
    "cluster", "kind_column", "status_column", "choropleth", "style", "derived_from",
    "detail_zoom",
}  # fmt: skip


@dataclass(frozen=True)
class Layer:
    """One layer of the catalog (see the module docstring and ``layers/*.toml``)."""

    id: str
    title: dict[str, str]
    description: dict[str, str]
    table: str
    geometry: str
    id_column: str
    properties: tuple[str, ...]
    where: dict[str, Any] = field(default_factory=dict)
    personal: tuple[str, ...] = ()
    time_column: str | None = None
    label: str | None = None
    search: tuple[str, ...] = ()
    visible: bool = True
    min_zoom: int = 0
    simplify_m: float = 0.0
    cluster: bool = False
    kind_column: str | None = None
    status_column: str | None = None
    choropleth: tuple[str, ...] = ()
    style: dict[str, Any] = field(default_factory=dict)
    #: Tables the features are computed from (circles: the road network): their sources
    #: are credited wherever the layer is shown (see ``geomap.provenance``).
    derived_from: tuple[str, ...] = ()
    #: Maps draw the layer in full detail (``simplify_m``) from this zoom on; below it,
    #: generalised for the zoom shown, loaded again finer as the user zooms in. 0: always
    #: in full (layers whose every feature is simple).
    detail_zoom: int = 0

    def where_sql(self, i: int, column: str, prefix: str = "") -> str:
        """The SQL of the ``i``-th fixed filter (``where`` in sorted order), on ``column``
        (qualified with ``prefix``): equality, or membership when the catalog gives a
        list. Its value is bound as ``where_<i>``."""
        if isinstance(self.where[column], list):
            return f"{prefix}{column} = ANY(:where_{i})"
        return f"{prefix}{column} = :where_{i}"

    def public_properties(self, personal: bool) -> tuple[str, ...]:
        """The property columns a reader may see (without personal ones unless allowed)."""
        if personal:
            return self.properties
        return tuple(p for p in self.properties if p not in self.personal)

    def to_dict(self) -> dict[str, Any]:
        """The layer as JSON-ready data (for the maps' configuration and the catalog API)."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "geometry": self.geometry,
            "properties": list(self.properties),
            "personal": list(self.personal),
            "label": self.label,
            "search": list(self.search),
            "visible": self.visible,
            "min_zoom": self.min_zoom,
            "cluster": self.cluster,
            "kind_column": self.kind_column,
            "status_column": self.status_column,
            "time_column": self.time_column,
            "choropleth": list(self.choropleth),
            "style": self.style,
            "detail_zoom": self.detail_zoom,
        }


def _check(layer: Layer, path: Path) -> None:
    table = models.metadata.tables.get(layer.table)
    if table is None:
        raise ConfigError(f"{path.name}: unknown table {layer.table!r}")
    columns = set(table.columns.keys())
    named = {
        layer.id_column, *layer.properties, *layer.personal, *layer.search, *layer.where,
        *(c for c in (layer.time_column, layer.label, layer.kind_column, layer.status_column)
          if c),
    }  # fmt: skip
    unknown = sorted(named - columns)
    if unknown:
        raise ConfigError(f"{path.name}: columns not in table {layer.table}: {unknown}")
    if layer.geometry not in GEOMETRIES:
        raise ConfigError(f"{path.name}: geometry must be one of {GEOMETRIES}")
    if not set(layer.personal) <= set(layer.properties):
        raise ConfigError(f"{path.name}: personal columns must be among the properties")
    unknown_tables = sorted(set(layer.derived_from) - set(models.metadata.tables))
    if unknown_tables:
        raise ConfigError(f"{path.name}: derived_from names unknown tables {unknown_tables}")
    if path.stem != layer.id:
        raise ConfigError(f"{path.name}: the file must be named after its id ({layer.id})")


def load_layer(path: Path) -> Layer:
    """Read and check one ``layers/<id>.toml``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path.name}: {exc}") from exc
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{path.name}: unknown keys {unknown}")
    try:
        layer = Layer(
            **{
                key: tuple(value) if isinstance(value, list) and key != "style" else value
                for key, value in data.items()
            }
        )
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{path.name}: {exc}") from exc
    _check(layer, path)
    return layer


def load_catalog(folder: Path = CATALOG_DIR) -> dict[str, Layer]:
    """Every layer of the catalog, by id, in a stable order (the files' names)."""
    layers = {}
    for path in sorted(folder.glob("*.toml")):
        layer = load_layer(path)
        layers[layer.id] = layer
    if not layers:
        raise ConfigError(f"no layer files in {folder}")
    return layers


def get_layer(catalog: dict[str, Layer], layer_id: str) -> Layer:
    """A layer by id, or NotFound naming the ones there are."""
    try:
        return catalog[layer_id]
    except KeyError:
        raise NotFound(
            f"no layer {layer_id!r}; layers: {', '.join(catalog)}", field="layer"
        ) from None

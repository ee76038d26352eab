"""The basemaps a map page may draw under its data: none, OpenStreetMap, Tianditu, Amap.

A :class:`Basemap` names its tile layers, the coordinate system they are drawn in
(Amap's are GCJ-02: the browser shifts the features onto them) and a notice for the
page. :func:`basemap` makes one from its name; nothing here sends a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geomap.errors import InvalidInput
from geomap.maps import text

#: Basemaps: ``none`` draws on a plain background and sends no request anywhere.
BASEMAPS = ("none", "osm", "tianditu", "amap")


@dataclass(frozen=True)
class Basemap:
    """A basemap: tile layers, the coordinate system they are drawn in, a notice."""

    id: str
    crs: str = "wgs84"  # or "gcj02": features are shifted to match the tiles
    tiles: tuple[dict[str, Any], ...] = ()
    notice: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """For the page configuration."""
        # A basemap asked for but not drawn (Tianditu without a key) is an error worth
        # showing even on an embed; the GCJ-02 note is for the full page only.
        missing = not self.tiles and self.id != "none"
        return {
            "id": self.id,
            "crs": self.crs,
            "notice": self.notice,
            "noticeKind": "error" if missing else "notice",
        }


def basemap(name: str | None, *, lang: str, tianditu_key: str | None = None) -> Basemap:
    """The basemap called ``name`` (``none`` by default).

    Parameters
    ----------
    name : str or None
        ``none``, ``osm``, ``tianditu`` or ``amap``.
    lang : str
        Page language (Amap labels its tiles in Chinese or English).
    tianditu_key : str, optional
        The Tianditu token (setting ``tianditu_key``); without it the Tianditu basemap
        shows nothing and says why.

    Returns
    -------
    Basemap

    Raises
    ------
    InvalidInput
        For an unknown basemap, naming the ones there are.
    """
    name = name or "none"
    if name not in BASEMAPS:
        raise InvalidInput(f"unknown basemap {name!r}; choose one of {', '.join(BASEMAPS)}",
                           field="basemap")  # fmt: skip
    if name == "osm":
        return Basemap(
            "osm",
            tiles=(
                {
                    "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                    "attr": "&copy; OpenStreetMap contributors",
                    "max_native_zoom": 19,
                },
            ),
        )
    if name == "tianditu":
        if not tianditu_key:
            return Basemap("tianditu", notice=text.ui("basemap_needs_key", lang))
        # Tianditu's Web Mercator tiles (TILEMATRIXSET=w) are CGCS2000, i.e. WGS84 to
        # within centimetres: no shift. Roads, then labels (Chinese or English).
        labels = "eva" if lang == "en" else "cva"
        wmts = (
            "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
            "&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
            "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=" + tianditu_key
        )
        return Basemap(
            "tianditu",
            tiles=tuple(
                {
                    "url": wmts.replace("{layer}", layer),
                    "attr": "&copy; 天地图 Tianditu",
                    "subdomains": "01234567",
                    "max_native_zoom": 18,
                }
                for layer in ("vec", labels)
            ),
        )
    if name == "amap":
        amap_lang = "en" if lang == "en" else "zh_cn"
        return Basemap(
            "amap",
            crs="gcj02",
            tiles=(
                {
                    "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang="
                    + amap_lang
                    + "&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
                    "attr": "&copy; 高德地图 AutoNavi",
                    "subdomains": "1234",
                    "max_native_zoom": 18,
                },
            ),
            notice=text.ui("gcj_note", lang),
        )
    return Basemap("none")

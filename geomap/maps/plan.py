"""The planning map ``/map/plan``: suggest sites, see what they gain, try scenarios.

The page is the common shell (:func:`geomap.maps.page.shell`: districts and townships
from the catalog) plus ``planmap.js``, which adds the planners' panel: provider set and
kind, candidates, area, reach (minutes or metres), mode, model and number of sites; a run
(``POST /api/plans``) with its progress and a cancel button; the suggested sites with
their new circles and the grids they newly cover; downloads (CSV with a BOM, GeoPackage,
HTML report in zh or en); saving the answer as a scenario; and a scenario picker showing
a scenario's coverage against the baseline at a chosen level.

A builder like the others: it takes the catalog, the page spec and plain data (the
districts to choose from); it never reads the database.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import folium

from geomap.layers import Layer
from geomap.maps import page
from geomap.maps.battle import DATA_PATH
from geomap.maps.entries import catalog_layer

PLAN_JS = page.MODULE_DIR / "planmap.js"
PLAN_LAYERS = ("districts", "townships")

STRINGS = {
    "zh": {
        "title": "选址规划", "of": "场馆集合", "red": "红色文化场馆（阵地+驿站）",
        "sites": "红色文化阵地", "stations": "服务站", "kind": "类型（逗号分隔，可空）",
        "candidates": "候选", "candidate_kind": "候选站点类型（逗号分隔，可空）",
        "area": "范围（区域编码，可空）", "all_city": "全市", "reach": "可达范围",
        "minutes": "分钟", "metres": "米", "mode": "方式", "walk": "步行", "drive": "驾车",
        "model": "模型", "coverage": "最大覆盖（新增 N 个）", "covering": "最少站点（覆盖目标）",
        "median": "p-中位（总时间最短）", "n": "新增站点数", "target": "目标覆盖率",
        "level": "层级", "grid": "网格", "community": "社区", "township": "街道",
        "district": "区县", "run": "计算建议", "cancel": "取消", "progress": "进度",
        "queued": "排队中", "running": "计算中", "done": "完成", "failed": "失败",
        "cancelling": "正在取消", "cancelled": "已取消", "result": "建议站点",
        "gain": "新增覆盖居民",
        "before": "之前", "after": "之后", "status": "求解状态", "gap": "最优性差距",
        "greedy": "贪心算法", "newly": "新覆盖网格", "download": "下载",
        "save": "另存为方案", "scenario": "方案", "none": "（无）",
        "scenario_coverage": "方案覆盖", "baseline": "基线", "saved": "已保存方案",
        "residents": "居民", "share_note": "覆盖率为居民占比；“覆盖网格”指面积≥50%的网格。",
        "phases": "耗时", "name_prompt": "方案名称",
    },
    "en": {
        "title": "Site planning", "of": "Venue set", "red": "red culture venues (sites + stations)",
        "sites": "red culture sites", "stations": "stations", "kind": "kinds (comma-separated)",
        "candidates": "Candidates", "candidate_kind": "candidate station kinds (comma-separated)",
        "area": "area (region code, optional)", "all_city": "whole city", "reach": "Reach",
        "minutes": "minutes", "metres": "metres", "mode": "Mode", "walk": "walk",
        "drive": "drive", "model": "Model", "coverage": "maximal coverage (add N)",
        "covering": "set covering (fewest sites)", "median": "p-median (least total time)",
        "n": "sites to add", "target": "target share", "level": "Level", "grid": "grid",
        "community": "community", "township": "township", "district": "district",
        "run": "Suggest sites", "cancel": "Cancel", "progress": "Progress",
        "queued": "queued", "running": "running", "done": "done", "failed": "failed",
        "cancelling": "cancelling", "cancelled": "cancelled", "result": "Suggested sites",
        "gain": "residents gained",
        "before": "before", "after": "after", "status": "solver status",
        "gap": "optimality gap", "greedy": "greedy", "newly": "grids newly covered",
        "download": "Download", "save": "Save as scenario", "scenario": "Scenario",
        "none": "(none)", "scenario_coverage": "Scenario coverage", "baseline": "baseline",
        "saved": "scenario saved", "residents": "residents",
        "share_note": "Shares are of residents; a covered grid has ≥ 50 % of its area in reach.",
        "phases": "time", "name_prompt": "Scenario name",
    },
}


@functools.cache
def _version() -> str:
    return hashlib.sha256(PLAN_JS.read_bytes()).hexdigest()[:12]


def plan_map(
    catalog: Mapping[str, Layer],
    spec: page.PageSpec,
    *,
    districts: Sequence[dict[str, Any]],
    defaults: Mapping[str, Any],
) -> folium.Map:
    """The planning map.

    Parameters
    ----------
    catalog : mapping
        The layer catalog (district and township outlines, grid styles).
    spec : PageSpec
        Language, basemap, view.
    districts : sequence of dict
        ``{"code", "name"}`` of the areas a run may be restricted to.
    defaults : mapping
        The controls' initial values (``of``, ``minutes``, ``mode``, ``n``, ...).
    """
    lang = spec.lang
    entries = [
        catalog_layer(catalog[name], lang, source={"url": DATA_PATH.format(layer=name)},
                      visible=True)
        for name in PLAN_LAYERS if name in catalog
    ]  # fmt: skip
    config = {
        "page": "plan",
        "layers": entries,
        "urls": {
            "plans": "/api/plans", "jobs": "/api/jobs", "scenarios": "/api/scenarios",
            "grids": DATA_PATH.format(layer="grids"),
        },
        "plan": {"strings": STRINGS[lang], "districts": list(districts),
                 "defaults": dict(defaults)},
    }
    m = page.shell(spec, config, title=STRINGS[lang]["title"])
    module = page._module_of(m)
    base = spec.static_url.rstrip("/") + "/geomap"
    module.default_js.append(("geomap_plan_js", f"{base}/planmap.js?v={_version()}"))
    return m

"""Reports as files, in Chinese or English: coverage (by level) and site suggestions.

* HTML: the definitions of every figure, a summary, a **map image** (inline SVG of the
  grids), **coverage by district as a chart**, and the **full** gap table (every grid
  with residents left outside, most first); for a suggestion, the sites in order of
  marginal gain, the greedy answer beside them, the solver's status and gap, and coverage
  before/after per district. No network needed.
* CSV: UTF-8 **with a BOM**, so that Excel reads the Chinese names.
* GeoPackage: a layer per level (coverage), or sites, their circles and the grids gained
  (suggestions).

A face like the API: it takes plain data (answers of :mod:`geomap.analysis.coverage` and
:mod:`geomap.planning.suggest`) and writes it; :func:`grid_geometry` is the one reader,
for callers that need the grids' shapes.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from geomap import tabular
from geomap.errors import InvalidInput

FORMATS = {".html": "html", ".csv": "csv", ".gpkg": "gpkg"}
LANGS = ("zh", "en")
_COLUMNS = (
    "code", "name", "level", "grids", "population", "covered_population",
    "uncovered_population", "covered_share_area", "covered_share_population", "nearest_m",
    "covered",
)  # fmt: skip
SITE_COLUMNS = ("rank", "name", "kind", "venue_table", "venue_id", "lon", "lat", "gain",
                "reach_population", "newly_covered_grids")  # fmt: skip
GRID_COLUMNS = ("code", "name", "population", "share_before", "share_after", "gained",
                "newly_covered")  # fmt: skip

TEXT = {
    "zh": {
        "coverage_title": "覆盖分析报告", "plan_title": "选址建议报告", "summary": "概况",
        "definitions": "口径说明", "map": "地图", "by_district": "各区覆盖率（居民）",
        "gaps": "全部缺口网格（覆盖范围外居民从多到少）", "level": "层级", "units": "单元数",
        "covered_units": "覆盖单元数（面积≥50%）", "population": "常住人口",
        "covered_population": "覆盖居民", "covered_share": "居民覆盖率",
        "uncovered_population": "覆盖范围外居民", "share_area": "面积覆盖率",
        "nearest_m": "最近设施（米）", "code": "编码", "name": "名称", "reach": "可达范围",
        "query": "查询", "sites": "建议站点（按边际增益排序）", "rank": "序号",
        "gain": "新增覆盖居民", "reach_population": "可达居民", "newly": "新覆盖网格数",
        "greedy": "贪心算法（同一次运行）", "model": "模型", "status": "求解状态",
        "gap": "最优性差距", "before": "之前", "after": "之后", "gained": "新增",
        "grids_gained": "覆盖增加的网格", "share_before": "之前覆盖率",
        "share_after": "之后覆盖率", "newly_covered": "新覆盖", "yes": "是", "no": "否",
        "phases": "各阶段耗时（秒）", "min": "分钟", "m": "米", "walk": "步行",
        "drive": "驾车", "distance": "直线距离", "legend_gap": "红色：未覆盖网格",
        "legend_plan": "绿色：新覆盖网格；浅绿：覆盖增加；圆点：建议站点",
        "kind": "类型",
    },
    "en": {
        "coverage_title": "Coverage report", "plan_title": "Site suggestion report",
        "summary": "Summary", "definitions": "Definitions", "map": "Map",
        "by_district": "Covered share of residents by district",
        "gaps": "Every grid with residents left outside (most first)", "level": "level",
        "units": "units", "covered_units": "covered units (≥ 50 % of area)",
        "population": "residents", "covered_population": "covered residents",
        "covered_share": "covered share of residents",
        "uncovered_population": "residents outside", "share_area": "covered share of area",
        "nearest_m": "nearest provider (m)", "code": "code", "name": "name",
        "reach": "Reach", "query": "Query", "sites": "Suggested sites (by marginal gain)",
        "rank": "rank", "gain": "residents gained", "reach_population": "residents in reach",
        "newly": "grids newly covered", "greedy": "Greedy heuristic (same run)",
        "model": "model", "status": "solver status", "gap": "optimality gap",
        "before": "before", "after": "after", "gained": "gained",
        "grids_gained": "Grids whose coverage rises", "share_before": "share before",
        "share_after": "share after", "newly_covered": "newly covered", "yes": "yes",
        "no": "no", "phases": "Phase times (s)", "min": "min", "m": "m", "walk": "walk",
        "drive": "drive", "distance": "straight line", "legend_gap": "red: grids not covered",
        "legend_plan": "green: newly covered grids; light green: coverage rises; "
        "dots: suggested sites", "kind": "kind",
    },
}
DEFINITIONS = {
    "zh": [
        "居民覆盖率：可达范围内居民占全部居民的比例"
        "（假设居民在网格内均匀分布，网格覆盖居民 = 网格人口 × 网格覆盖面积比例）。",
        "面积覆盖率：单元（其网格）面积在可达范围内的比例。",
        "覆盖单元：面积覆盖率不低于 50% 的单元；是单元个数，不是居民人数。",
        "两个数字为何不同：居民在网格间分布不均时，居民覆盖率与面积覆盖率不同；覆盖单元数又与两者都不同；"
        "“红色文化场馆”（of=red：全部红色文化阵地与红色驿站）比只算红色驿站覆盖的居民多。",
    ],
    "en": [
        "Covered share of residents: residents within reach over all residents (residents "
        "are spread evenly over their grid: a grid's covered residents are its residents "
        "times its covered share of area).",
        "Covered share of area: share of the unit's (grids') area within reach.",
        "Covered unit: a unit with at least 50 % of its area within reach; a count of "
        "units, not of residents.",
        "Why figures differ: shares of residents and of area differ where residents are "
        "unevenly spread between grids; a count of covered units differs from both; and the "
        "red culture venues (of=red: every red culture site and red station) cover more "
        "residents than the red stations alone.",
    ],
}

GEOMETRY_SQL = sa.text(
    "SELECT code, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, 0.0001), 5) "
    "FROM grids WHERE code = ANY(CAST(:codes AS text[]))"
)


def grid_geometry(session: Any, codes: list[str]) -> dict[str, dict]:
    """GeoJSON geometry (simplified) of the grids with these codes."""
    if not codes:
        return {}
    rows = session.execute(GEOMETRY_SQL, {"codes": list(codes)}).all()
    return {code: json.loads(text) for code, text in rows if text}


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"cannot write {path.name}: the report format follows the suffix, one of "
            f"{', '.join(FORMATS)}",
            field="out",
        )
    return fmt


def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise InvalidInput(f"unknown language {lang!r}; one of {', '.join(LANGS)}", field="lang")
    return lang


def write(path: Path, by_level: dict[str, dict], query: dict[str, Any], *,
          lang: str = "zh") -> Path:  # fmt: skip
    """Write a coverage report; the format follows the file's suffix (.html, .csv, .gpkg).

    Parameters
    ----------
    by_level : dict
        Coverage answers keyed by level (``grid``, ``community``, ...), each as returned by
        :func:`geomap.analysis.coverage.coverage` (the GeoPackage and the HTML map need
        ``geometry`` on the grid level's units).
    query : dict
        The normalised query, printed in the report.
    lang : {"zh", "en"}
    """
    fmt = _format(path)
    lang = _check_lang(lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8-sig") as out:
            writer = csv.DictWriter(out, fieldnames=_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for answer in by_level.values():
                writer.writerows(tabular.record(unit) for unit in answer["units"])
    elif fmt == "gpkg":
        _write_gpkg(path, by_level)
    else:
        path.write_text(_coverage_html(by_level, query, lang), encoding="utf-8")
    return path


def _write_gpkg(path: Path, by_level: dict[str, dict]) -> None:
    import geopandas as gpd
    from shapely.geometry import shape

    path.unlink(missing_ok=True)
    for level, answer in by_level.items():
        units = answer["units"]
        frame = gpd.GeoDataFrame(
            [{k: u[k] for k in _COLUMNS} for u in units],
            geometry=[shape(u["geometry"]) if u.get("geometry") else None for u in units],
            crs="EPSG:4326",
        )
        frame.to_file(path, layer=f"coverage_{level}", driver="GPKG")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _bar_chart(rows: list[tuple[str, float, float | None]], label: str) -> str:
    """Horizontal bars of a share per unit (and a second, lighter one: before), inline SVG."""
    row_h, label_w, bar_w = 26, 150, 420
    height = row_h * len(rows) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 120}" '
        f'height="{height}" role="img" aria-label="{html.escape(label)}">'
    ]
    for i, (name, share, before) in enumerate(rows):
        y = 5 + i * row_h
        share = share or 0.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="13">'
            f"{html.escape(name)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="16" fill="#eee"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w * share:.1f}" height="16" '
            f'fill="#c0392b"/>'
        )
        text = _pct(share)
        if before is not None:
            parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar_w * before:.1f}" '
                         f'height="16" fill="#e6a19a"/>')  # fmt: skip
            text = f"{_pct(before)} → {_pct(share)}"
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 17}" font-size="13">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rings(geometry: dict) -> list[list]:
    if geometry["type"] == "Polygon":
        return geometry["coordinates"]
    if geometry["type"] == "MultiPolygon":
        return [ring for polygon in geometry["coordinates"] for ring in polygon]
    return []


def svg_map(shapes: list[tuple[dict, str]], points: list[tuple[float, float, str]] = (),
            width: int = 800) -> str:  # fmt: skip
    """An SVG map of polygons (GeoJSON geometry, fill colour) and points (lon, lat, label)."""
    coords = [c for g, _ in shapes for ring in _rings(g) for c in ring]
    coords += [(lon, lat) for lon, lat, _ in points]
    if not coords:
        return ""
    lons = [c[0] for c in coords]
    lats = [c[1] for c in coords]
    x0, x1, y0, y1 = min(lons), max(lons), min(lats), max(lats)
    k = math.cos(math.radians((y0 + y1) / 2))
    span = max((x1 - x0) * k, y1 - y0, 1e-9)
    scale = (width - 20) / span
    height = int((y1 - y0) * scale) + 20

    def xy(lon: float, lat: float) -> str:
        return f"{10 + (lon - x0) * k * scale:.1f},{10 + (y1 - lat) * scale:.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'role="img" aria-label="map" style="background:#f8fafc;border:1px solid #ccc">']
    for geometry, fill in shapes:
        d = " ".join("M" + " L".join(xy(*c[:2]) for c in ring) + "Z" for ring in _rings(geometry))
        parts.append(f'<path d="{d}" fill="{fill}" stroke="#64748b" stroke-width="0.3"/>')
    for i, (lon, lat, label) in enumerate(points, start=1):
        x, y = xy(lon, lat).split(",")
        parts.append(f'<circle cx="{x}" cy="{y}" r="5" fill="#1d4ed8" stroke="#fff">'
                     f"<title>{html.escape(label)}</title></circle>"
                     f'<text x="{float(x) + 6:.1f}" y="{float(y) - 6:.1f}" font-size="11">{i}'
                     "</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[dict], columns: tuple[str, ...], labels: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(labels.get(c, c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if column.startswith(("covered_share", "share_")) and value is not None:
                value = _pct(value)
            elif isinstance(value, bool):
                value = labels["yes"] if value else labels["no"]
            elif isinstance(value, int):
                value = f"{value:,}"
            elif isinstance(value, list):
                value = len(value)
            cells.append(f"<td>{html.escape('' if value is None else str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _page(title: str, lang: str, body: str) -> str:
    html_lang = "zh-CN" if lang == "zh" else "en"
    return f"""<!doctype html>
<html lang="{html_lang}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f4f4f4; }} td:nth-child(2) {{ text-align: left; }}
.defs li {{ margin: .3em 0; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def _definitions(lang: str) -> str:
    items = "".join(f"<li>{html.escape(d)}</li>" for d in DEFINITIONS[lang])
    return f'<h2>{TEXT[lang]["definitions"]}</h2><ul class="defs">{items}</ul>'


def _reach_text(query: dict, t: dict) -> str:
    by = query.get("by") or query.get("mode") or "walk"
    if query.get("within_m") or query.get("distance_m"):
        amount = f"{query.get('within_m') or query.get('distance_m'):g} {t['m']}"
    else:
        amount = f"{query.get('within_min') or query.get('minutes'):g} {t['min']}"
    return f"{amount} ({t.get(by, by)})"


def _coverage_html(by_level: dict[str, dict], query: dict[str, Any], lang: str) -> str:
    t = TEXT[lang]
    summaries = [{**a["summary"], "name": a["summary"].get("level") or level,
                  "covered_share_population": a["summary"]["covered_share"]}
                 for level, a in by_level.items()]  # fmt: skip
    summary = _table(summaries, ("name", "units", "covered_units", "population",
                                 "covered_population", "covered_share_population"),
                     {**t, "name": t["level"], "covered_share_population": t["covered_share"]})
    districts = by_level.get("district", {}).get("units", [])
    grids = by_level.get("grid", {}).get("units", [])
    gaps = sorted((g for g in grids if g["uncovered_population"] > 0),
                  key=lambda u: (-u["uncovered_population"], u["code"]))  # fmt: skip
    shapes = [(g["geometry"], "#dc2626" if not g["covered"] else "#86efac")
              for g in grids if g.get("geometry")]  # fmt: skip
    chart = _bar_chart([(d["name"], d["covered_share_population"], None) for d in districts],
                       t["by_district"])  # fmt: skip
    labels = {**t, "covered_share_population": t["covered_share"],
              "covered_share_area": t["share_area"]}  # fmt: skip
    body = (
        f"<p>{t['reach']}: {html.escape(_reach_text(query, t))}. {t['query']}: "
        f"<code>{html.escape(json.dumps(query, ensure_ascii=False))}</code></p>"
        f"{_definitions(lang)}<h2>{t['summary']}</h2>{summary}"
        + (f"<h2>{t['map']}</h2><p>{t['legend_gap']}</p>{svg_map(shapes)}" if shapes else "")
        + f"<h2>{t['by_district']}</h2>{chart}"
        f"<h2>{t['gaps']} ({len(gaps):,})</h2>"
        + _table(gaps, ("code", "name", "population", "uncovered_population",
                        "covered_share_population", "covered_share_area", "nearest_m"), labels)
    )  # fmt: skip
    return _page(t["coverage_title"], lang, body)


# -- site suggestions ----------------------------------------------------------------------
def write_plan(path: Path, answer: dict, *, geometry: dict[str, dict] | None = None,
               lang: str = "zh") -> Path:  # fmt: skip
    """Write a suggestion's answer (:func:`geomap.planning.suggest.run`) as a file.

    CSV: the sites (BOM, so Excel reads Chinese); GeoPackage: ``sites``, ``circles`` and
    ``grids`` (the grids gained, with ``geometry``); HTML: the full report.
    """
    fmt = _format(path)
    lang = _check_lang(lang)
    geometry = geometry or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8-sig") as out:
            writer = csv.DictWriter(out, fieldnames=SITE_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for site in answer["sites"]:
                writer.writerow(tabular.record(
                    {**site, "newly_covered_grids": len(site["newly_covered_grids"])}))
    elif fmt == "gpkg":
        import geopandas as gpd
        from shapely.geometry import Point, shape

        path.unlink(missing_ok=True)
        sites = answer["sites"]
        rows = [{k: (len(s[k]) if k == "newly_covered_grids" else s[k]) for k in SITE_COLUMNS}
                for s in sites]  # fmt: skip
        gpd.GeoDataFrame(rows, geometry=[Point(s["lon"], s["lat"]) for s in sites],
                         crs="EPSG:4326").to_file(path, layer="sites", driver="GPKG")  # fmt: skip
        circled = [s for s in sites if s.get("circle")]
        if circled:
            gpd.GeoDataFrame([{"rank": s["rank"], "name": s["name"]} for s in circled],
                             geometry=[shape(s["circle"]) for s in circled],
                             crs="EPSG:4326").to_file(path, layer="circles", driver="GPKG")
        grids = [g for g in answer["grids"] if g["code"] in geometry]
        if grids:
            gpd.GeoDataFrame([{k: g[k] for k in GRID_COLUMNS} for g in grids],
                             geometry=[shape(geometry[g["code"]]) for g in grids],
                             crs="EPSG:4326").to_file(path, layer="grids", driver="GPKG")
    else:
        path.write_text(_plan_html(answer, geometry, lang), encoding="utf-8")
    return path


def _plan_html(answer: dict, geometry: dict[str, dict], lang: str) -> str:
    t = TEXT[lang]
    q = answer["query"]
    shapes = [(geometry[g["code"]], "#16a34a" if g["newly_covered"] else "#bbf7d0")
              for g in answer["grids"] if g["code"] in geometry]  # fmt: skip
    points = [(s["lon"], s["lat"], s["name"]) for s in answer["sites"]]
    summary_rows = [
        {"name": t["before"], **answer["before"]},
        {"name": t["after"], **answer["after"]},
        {"name": t["greedy"], "population": answer["after"]["population"],
         "covered_population": answer["greedy"]["covered_population"]},
    ]  # fmt: skip
    chart = _bar_chart([(d["name"], d["share_after"], d["share_before"])
                        for d in answer["by_district"]], t["by_district"])  # fmt: skip
    phases = ", ".join(f"{k.removesuffix('_s')} {v:g}" for k, v in answer["phases"].items())
    site_labels = {**t, "newly_covered_grids": t["newly"]}
    body = (
        f"<p>{t['reach']}: {html.escape(_reach_text(q, t))}. {t['model']}: "
        f"{html.escape(answer['model'])}; {t['status']}: {html.escape(answer['status'])}; "
        f"{t['gap']}: {answer['gap'] * 100:.3f}%. {t['phases']}: {html.escape(phases)}</p>"
        f"<p>{t['query']}: <code>{html.escape(json.dumps(q, ensure_ascii=False))}</code></p>"
        f"{_definitions(lang)}<h2>{t['summary']}</h2>"
        + _table(summary_rows, ("name", "population", "covered_population", "covered_share"),
                 {**t, "name": ""})
        + f"<h2>{t['sites']}</h2>"
        + _table(answer["sites"], ("rank", "name", "kind", "gain", "reach_population",
                                   "newly_covered_grids"), site_labels)
        + f"<h2>{t['greedy']}</h2>" + _table(answer["greedy"]["sites"], ("rank", "name", "gain"), t)
        + (f"<h2>{t['map']}</h2><p>{t['legend_plan']}</p>{svg_map(shapes, points)}"
           if shapes or points else "")
        + f"<h2>{t['by_district']}</h2>{chart}"
        + _table(answer["by_district"], ("code", "name", "population", "covered_before",
                                         "covered_after", "share_before", "share_after",
                                         "gained"),
                 {**t, "covered_before": t["before"], "covered_after": t["after"]})
        + f"<h2>{t['grids_gained']} ({len(answer['grids']):,})</h2>"
        + _table(answer["grids"], GRID_COLUMNS, t)
    )  # fmt: skip
    return _page(t["plan_title"], lang, body)

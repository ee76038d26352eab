"""Coverage reports as files: HTML (summary, chart by district, worst grids), CSV, GeoPackage.

A face like the API: it takes the plain data of :mod:`geomap.analysis.coverage` and writes
it; it never queries the database. The HTML needs no network (the chart is inline SVG).
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

from geomap.errors import InvalidInput

FORMATS = {".html": "html", ".csv": "csv", ".gpkg": "gpkg"}
WORST_GRIDS = 50
_COLUMNS = (
    "code", "name", "level", "grids", "population", "covered_population",
    "uncovered_population", "covered_share_area", "covered_share_population", "nearest_m",
    "covered",
)  # fmt: skip


def write(path: Path, by_level: dict[str, dict], query: dict[str, Any]) -> Path:
    """Write a report; the format follows the file's suffix (.html, .csv or .gpkg).

    Parameters
    ----------
    by_level : dict
        Coverage answers keyed by level (``grid``, ``community``, ...), each as returned by
        :func:`geomap.analysis.coverage.coverage` (the GeoPackage needs ``geometry``).
    query : dict
        The normalised query, printed in the report.
    """
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"cannot write {path.name}: the report format follows the suffix, one of "
            f"{', '.join(FORMATS)}",
            field="out",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        _write_csv(path, by_level)
    elif fmt == "gpkg":
        _write_gpkg(path, by_level)
    else:
        path.write_text(_html(by_level, query), encoding="utf-8")
    return path


def _write_csv(path: Path, by_level: dict[str, dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for answer in by_level.values():
            writer.writerows(answer["units"])


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


def _bar_chart(units: list[dict]) -> str:
    """Horizontal bars of covered population share, one per unit, as inline SVG."""
    row_h, label_w, bar_w = 26, 150, 420
    height = row_h * len(units) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 80}" '
        f'height="{height}" role="img" aria-label="covered share by district">'
    ]
    for i, unit in enumerate(units):
        y = 5 + i * row_h
        share = unit["covered_share_population"] or 0.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="13">'
            f"{html.escape(unit['name'])}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="16" fill="#eee"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w * share:.1f}" height="16" '
            f'fill="#c0392b"/>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 17}" font-size="13">{_pct(share)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(units: list[dict], columns: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for unit in units:
        cells = []
        for column in columns:
            value = unit.get(column)
            if column.startswith("covered_share"):
                value = _pct(value)
            elif isinstance(value, int) and not isinstance(value, bool):
                value = f"{value:,}"
            cells.append(f"<td>{html.escape('' if value is None else str(value))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html(by_level: dict[str, dict], query: dict[str, Any]) -> str:
    summaries = [answer["summary"] for answer in by_level.values()]
    summary_rows = _table(
        [
            {**s, "name": s["level"], "covered_share_population": s["covered_share"]}
            for s in summaries
        ],
        ("name", "units", "covered_units", "population", "covered_population",
         "covered_share_population"),
    )  # fmt: skip
    districts = by_level.get("district", {}).get("units", [])
    grids = by_level.get("grid", {}).get("units", [])
    worst = sorted(grids, key=lambda u: (-u["uncovered_population"], u["code"]))[:WORST_GRIDS]
    reach = f"{query['within_m']:g} m" if query.get("within_m") else f"{query['within_min']:g} min"
    title = f"Coverage of {query['of']} ({', '.join(query.get('kind') or ['all kinds'])})"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f4f4f4; }} td:nth-child(2) {{ text-align: left; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Reach: {html.escape(reach)} by {html.escape(query["by"])}.
Query: <code>{html.escape(json.dumps(query, ensure_ascii=False))}</code></p>
<h2>Summary</h2>{summary_rows}
<h2>Covered share of residents by district</h2>{_bar_chart(districts)}
<h2>The {len(worst)} grids with the most residents left outside</h2>
{
        _table(
            worst,
            (
                "code",
                "name",
                "population",
                "uncovered_population",
                "covered_share_population",
                "nearest_m",
            ),
        )
    }
</body></html>
"""

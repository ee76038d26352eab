"""Coverage reports as files: CSV with a BOM, HTML in zh and en with definitions, a map
image, the chart by district and the full gap table (plain data, no database)."""

from __future__ import annotations

from geomap import reports


def _unit(code: str, name: str, level: str, population: int, covered: int) -> dict:
    return {"code": code, "name": name, "level": level, "grids": 1, "population": population,
            "covered_population": covered, "uncovered_population": population - covered,
            "covered_share_area": covered / population, "covered_share_population":
            covered / population, "nearest_m": 120.0, "covered": covered * 2 >= population,
            "geometry": {"type": "Polygon", "coordinates": [[[115.9, 28.6], [115.91, 28.6],
                                                             [115.91, 28.61], [115.9, 28.6]]]}}


def _by_level() -> dict:
    grids = [_unit(f"G{i}", f"第{i}网格", "grid", 1000, 10 * i) for i in range(1, 61)]
    summary = {"level": "grid", "units": 60, "covered_units": 56, "population": 60000,
               "covered_population": 30000, "covered_share": 0.5}
    district = [_unit("D1", "东湖区", "district", 60000, 30000)]
    return {"grid": {"summary": summary, "units": grids},
            "district": {"summary": {**summary, "level": "district"}, "units": district}}


def test_csv_has_a_bom_and_the_html_speaks_both_languages(tmp_path):
    query = {"of": "stations", "kind": ["red_station"], "by": "walk", "within_min": 15}
    path = reports.write(tmp_path / "r.csv", _by_level(), query)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "第1网格" in raw.decode("utf-8-sig")
    zh = reports.write(tmp_path / "zh.html", _by_level(), query).read_text("utf-8")
    en = reports.write(tmp_path / "en.html", _by_level(), query, lang="en").read_text("utf-8")
    assert "覆盖分析报告" in zh and "口径说明" in zh and "居民覆盖率" in zh
    assert "Coverage report" in en and "Covered share of residents" in en
    for page in (zh, en):
        assert page.count("<svg") == 2  # the map image and the chart by district
        assert "第60网格" in page  # the full gap table (60 grids with gaps), not the top 50
        assert "东湖区" in page


# -- formula cells (issue 25): a name a spreadsheet would run is written as inert text ---
FORMULA = '=HYPERLINK("http://x","y")'


def _read_csv(text: str) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def test_every_csv_writer_neutralises_formula_cells_and_keeps_negative_numbers(tmp_path):
    from flask import Flask

    from geomap import tabular
    from geomap.api import coverage as coverage_api
    from geomap.ops import stats

    assert tabular.cell(-3) == -3 and tabular.cell(-0.5) == -0.5 and tabular.cell(None) is None
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert tabular.cell(start + "1") == "'" + start + "1"
    texts = {}
    by_level = _by_level()
    by_level["grid"]["units"][0]["name"] = FORMULA
    by_level["grid"]["units"][0]["nearest_m"] = -12.5
    texts["coverage report"] = reports.write(tmp_path / "r.csv", by_level, {}).read_text(
        "utf-8-sig")  # fmt: skip
    site = {"rank": 1, "name": FORMULA, "kind": "-red", "venue_table": "stations",
            "venue_id": 1, "lon": 115.9, "lat": 28.6, "gain": -12.5, "reach_population": 10,
            "newly_covered_grids": ["G1"]}  # fmt: skip
    texts["plan sites"] = reports.write_plan(tmp_path / "p.csv", {"sites": [site]}).read_text(
        "utf-8-sig")  # fmt: skip
    unit = {c: 0 for c in stats.COLUMNS} | {"code": "G1", "name": FORMULA,
                                              "median_accept_min": -12.5}  # fmt: skip
    answer = {"query": {"level": "grid"}, "units": [unit], "summary": dict(unit)}
    texts["cases stats"] = stats.to_csv(answer)
    with Flask(__name__).app_context():
        response = coverage_api.render({"units": by_level["grid"]["units"]}, "csv")
    texts["coverage api"] = response.get_data(as_text=True)
    for writer, text in texts.items():
        rows = _read_csv(text)
        named = [r for r in rows if r["name"].endswith(FORMULA)]
        assert named and all(r["name"] == "'" + FORMULA for r in named), (writer, rows[:1])
        negative = [v for r in rows for v in r.values() if v == "-12.5"]
        assert negative, (writer, "a negative number stays a number")
    assert _read_csv(texts["plan sites"])[0]["kind"] == "'-red"

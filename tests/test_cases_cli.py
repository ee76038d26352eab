"""`geomap cases`: import registers (CSV, XLSX; four coordinate systems), list, show, stats."""

from __future__ import annotations

import datetime as dt
import json

import openpyxl
import pytest
import sqlalchemy as sa

from geomap import config, crs, db
from geomap.cli import main
from tests import casesworld


@pytest.fixture
def cli_world(runner, db_url):
    settings = config.load({"database_url": db_url}, environ={})
    with db.get_engine(settings).begin() as conn:
        casesworld.build(conn, with_network=False)
    return runner


def _count(db_url: str, sql: str = "SELECT count(*) FROM cases") -> int:
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar()
    engine.dispose()
    return value


def _points(n: int) -> list[tuple[float, float]]:
    return [casesworld.point(1 + i % 8, 1 + i // 8) for i in range(n)]


def test_import_a_gcj02_csv_register(cli_world, db_url, tmp_path):
    rows = ["隐患名称,类型,隐患等级,经度,纬度,发现时间,上报人,联系电话,地址"]
    for i, (lon, lat) in enumerate(_points(5)):
        g_lon, g_lat = crs.wgs84_to_gcj02(lon, lat)
        rows.append(
            f"井盖破损{i},安全隐患,重大,{g_lon:.8f},{g_lat:.8f},2026-11-20 09:{i:02d},"
            f"张三,13800000000,测试路{i}号"
        )
    path = tmp_path / "台账.csv"
    path.write_text("\n".join(rows), encoding="gb18030")
    result = cli_world.invoke(main, ["cases", "import", str(path), "--crs", "GCJ02"])
    assert result.exit_code == 0, result.output
    assert "imported 5 cases" in result.output and "GCJ02" in result.output
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT kind, severity, ST_X(geom), ST_Y(geom), reported_at, reporter_name, "
                "grid_code, source FROM cases ORDER BY id"
            )
        ).all()
        audit = conn.execute(sa.text("SELECT action, key_role FROM audit_log ORDER BY id")).all()
    engine.dispose()
    lon, lat = _points(1)[0]
    assert rows[0][:2] == ("hazard", "high")
    assert rows[0][2] == pytest.approx(lon, abs=1e-6) and rows[0][3] == pytest.approx(lat, abs=1e-6)
    # No zone in the file: China Standard Time.
    assert rows[0][4] == dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)
    assert rows[0][5] == "张三" and rows[0][6] == "G-WEST" and rows[0][7] == "real: 台账.csv"
    assert audit.count(("case.create", "cli")) == 5 and audit[-1] == ("cases.import", "cli")


def test_import_an_xlsx_register_in_cgcs2000(cli_world, db_url, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["title", "kind", "severity", "lon", "lat", "reported_at"])
    for i, (lon, lat) in enumerate(_points(3)):
        sheet.append([f"诉求{i}", "request", "low", lon, lat, dt.datetime(2026, 11, 21, 10, i)])
    path = tmp_path / "register.xlsx"
    book.save(path)
    result = cli_world.invoke(main, ["cases", "import", str(path), "--crs", "CGCS2000"])
    assert result.exit_code == 0, result.output
    assert _count(db_url, "SELECT count(*) FROM cases WHERE kind = 'request'") == 3


def test_a_register_with_bad_rows_imports_nothing_and_names_them(cli_world, db_url, tmp_path):
    good = _points(1)[0]
    # The CLI reads the wall clock: "in the future" is a year from now, whatever the date.
    next_year = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).isoformat(timespec="seconds")
    rows = [
        "title,lon,lat,severity,reported_at",
        f"ok,{good[0]},{good[1]},low,2026-11-20T08:00:00+08:00",
        f",{good[0]},{good[1]},low,",  # no title
        f"bad lon,east,{good[1]},low,",
        f"bad severity,{good[0]},{good[1]},huge,",
        f"future,{good[0]},{good[1]},low,{next_year}",
        f"nul\x00,{good[0]},{good[1]},low,",
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    result = cli_world.invoke(main, ["cases", "import", str(path)])
    assert result.exit_code == 1
    message = result.output
    for fragment in (
        "5 bad row(s)",
        "row 2, column 'title'",
        "row 3, column 'lon'",
        "row 4, column 'severity'",
        "row 5, column 'reported_at'",
        "row 6, column 'title'",
        "nothing imported",
    ):
        assert fragment in message, (fragment, message)
    assert _count(db_url) == 0
    outside = tmp_path / "outside.csv"
    outside.write_text(f"title,lon,lat\nok,{good[0]},{good[1]}\nfar,117.5,30.0\n")
    result = cli_world.invoke(main, ["cases", "import", str(outside)])
    assert result.exit_code == 1 and "row 2: (117.500000, 30.000000) lies outside the city" in (
        result.output
    )
    assert _count(db_url) == 0
    for name, content, expected in (
        ("none.csv", "title,kind\nx,hazard\n", "no lon column"),
        ("empty.csv", "", "empty"),
        ("cases.json", "{}", "unsupported file type"),
    ):
        path = tmp_path / name
        path.write_text(content)
        result = cli_world.invoke(main, ["cases", "import", str(path)])
        assert result.exit_code == 1 and expected in result.output, result.output
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    result = cli_world.invoke(main, ["cases", "import", str(broken)])
    assert result.exit_code == 1 and "cannot read the file as XLSX" in result.output


def test_list_show_and_stats(cli_world, tmp_path):
    lon, lat = _points(1)[0]
    path = tmp_path / "one.csv"
    path.write_text(f"title,kind,lon,lat\n积水,incident,{lon},{lat}\n")
    assert cli_world.invoke(main, ["cases", "import", str(path)]).exit_code == 0
    listed = cli_world.invoke(main, ["cases", "list", "--open"])
    assert listed.exit_code == 0 and "积水" in listed.output and "incident" in listed.output
    shown = cli_world.invoke(main, ["cases", "show", "1"])
    case = json.loads(shown.output)
    assert case["units"]["grid"]["code"] == "G-WEST" and case["status"] == "reported"
    assert cli_world.invoke(main, ["cases", "show", "99"]).exit_code == 1
    table = cli_world.invoke(main, ["cases", "stats", "--level", "grid"])
    assert table.exit_code == 0 and "西网格" in table.output and "total" in table.output
    csv_out = cli_world.invoke(main, ["cases", "stats", "--format", "csv", "--level", "community"])
    assert csv_out.output.splitlines()[1].startswith("community,360198001001,西社区,1,0,")
    bad = cli_world.invoke(main, ["cases", "stats", "--from", "last week"])
    assert bad.exit_code == 1 and "from" in bad.output


def test_key_management_is_audited(runner, db_url):
    created = runner.invoke(main, ["keys", "create", "--role", "viewer", "--name", "门户"])
    assert created.exit_code == 0
    prefix = created.stdout.strip().split("_")[1]
    assert runner.invoke(main, ["keys", "revoke", prefix]).exit_code == 0
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT action, key_role, changes->>'prefix' FROM audit_log ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("key.create", "cli", prefix),
        ("key.revoke", "cli", prefix),
    ]

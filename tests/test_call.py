"""One-click calls (一键呼叫): the public call page, its guards, and the printable QR codes.

The world is tests/casesworld.py (synthetic) plus synthetic stations: coded ones in the
test district 360198, one in a second district 360197, and one without a code.
"""

from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa

from geomap import config, create_app, db
from geomap.cli import main
from tests import casesworld
from tests.browser import at_once, launch_browser, open_page, requires_chromium, serve_app

SOURCE = "synthetic: tests/test_call.py"
WEST = "CALL-W1"
PHONE = (390, 844)
#: The second district, east of the test city (its stations are in no grid of the world).
OTHER_DISTRICT = ("360197", "另一区", (116.0, 28.60, 116.1, 28.75))


def _add_stations(conn, extra: int = 0) -> dict[str, tuple[float, float]]:
    """Stations: WEST and CALL-E1 in the world's grids, ``extra`` more (CALL-Xnn) in the
    test district, CALL-O1 in the other district and one without a code."""
    code, name, box = OTHER_DISTRICT
    conn.execute(
        sa.text(
            "INSERT INTO regions (code, parent_code, level, name, geom, source) VALUES "
            "(:code, '360199', 'district', :name, ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1,"
            " 4326)), :source)"
        ),
        {"code": code, "name": name, "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3],
         "source": SOURCE},
    )  # fmt: skip
    stations = {
        WEST: ("西街红色驿站", "测试路1号", casesworld.point(2, 5)),
        "CALL-E1": ("东街党群服务中心", None, casesworld.point(7, 5)),
        "CALL-O1": ("另一区驿站", "另一路9号", (116.05, 28.70)),
        **{
            f"CALL-X{i:02d}": (f"驿站{i}", f"测试路{i}号", casesworld.point(1 + i % 8, 1 + i // 8))
            for i in range(extra)
        },
        None: ("无编码驿站", None, casesworld.point(4, 4)),
    }
    for code, (name, address, (lon, lat)) in stations.items():
        conn.execute(
            sa.text(
                "INSERT INTO stations (code, name, kind, address, geom, source) VALUES "
                "(:code, :name, 'red_station', :address, ST_SetSRID(ST_MakePoint(:lon, :lat), "
                "4326), :source)"
            ),
            {"code": code, "name": name, "address": address, "lon": lon, "lat": lat,
             "source": SOURCE},
        )  # fmt: skip
    return {c: v[2] for c, v in stations.items() if c}


@pytest.fixture
def call_client(shared_url, connection, world):
    from tests.conftest import _app_on

    _add_stations(connection)
    return _app_on(shared_url, connection).test_client()


@pytest.fixture
def committed(db_url):
    """The world and its stations committed (for a real server and other processes)."""
    settings = config.load({"database_url": db_url}, environ={})
    with db.get_engine(settings).begin() as conn:
        casesworld.build(conn)
        _add_stations(conn)
    return db_url


def _query(url: str, sql: str, **params):
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).mappings().all()
    engine.dispose()
    return rows


HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


# -- the page ----------------------------------------------------------------------------------
def test_the_page_shows_the_station_under_the_strict_policy(call_client):
    page = call_client.get(f"/call/{WEST}", headers=HTML)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for text in ("西街红色驿站", "测试路1号", WEST, "一键呼叫", 'maxlength="200"', 'lang="zh-CN"'):
        assert text in html
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'self'" in policy
    # Nothing inline: no style attribute, no handler, no inline script or style element.
    assert not re.search(r"\sstyle=|\son[a-z]+=|<script(?![^>]*\ssrc=)|<style", html)
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # local assets only
    english = call_client.get(f"/call/{WEST}?lang=en", headers=HTML).get_data(as_text=True)
    assert "Call for help" in english and 'lang="en"' in english


def test_unknown_station_is_a_404_page_for_browsers_and_json_for_scripts(call_client):
    page = call_client.get("/call/NO-SUCH", headers=HTML)
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "未找到该站点" in page.get_data(as_text=True)
    api = call_client.get("/call/NO-SUCH")
    assert api.status_code == 404 and api.get_json()["error"]["field"] == "code"
    posted = call_client.post("/call/NO-SUCH", json={})
    assert posted.status_code == 404 and posted.get_json()["error"]["code"] == "not_found"


def test_a_call_makes_a_request_case_at_the_station(call_client, connection):
    answer = call_client.post(
        f"/call/{WEST}", json={"text": "老人摔倒了，需要帮助", "phone": "138 0000 0002"}
    )
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["number"] == str(body["case_id"]) and body["status"] == "reported"
    assert body["station"] == {"code": WEST, "name": "西街红色驿站"}
    assert "已收到" in body["message"]
    case = connection.execute(
        sa.text(
            "SELECT c.*, ST_Distance(c.geom::geography, s.geom::geography) AS off_m "
            "FROM cases c JOIN stations s ON s.code = :code WHERE c.id = :id"
        ),
        {"code": WEST, "id": body["case_id"]},
    ).mappings().one()
    assert case["kind"] == "request" and case["status"] == "reported"
    assert case["off_m"] < 0.01  # at the station
    assert WEST in case["title"] and "西街红色驿站" in case["title"]
    assert case["description"] == "老人摔倒了，需要帮助"
    assert case["reporter_phone"] == "138 0000 0002"
    assert case["address"] == "测试路1号"
    assert case["created_by"] == f"call:{WEST}"
    assert case["source"] == f"real: one-click call (一键呼叫) at station {WEST}"
    assert case["grid_code"] == "G-WEST" and case["level"] == "grid"
    audit = connection.execute(
        sa.text("SELECT key_name, key_role FROM audit_log WHERE case_id = :id"),
        {"id": body["case_id"]},
    ).one()
    assert tuple(audit) == (f"call:{WEST}", "public")
    # Announced like any case, so a commander's live queue shows it; the phone stays
    # personal (commanders only).
    event = connection.execute(
        sa.text("SELECT payload, personal FROM events WHERE kind = 'case.created' "
                "AND case_id = :id"), {"id": body["case_id"]},
    ).one()  # fmt: skip
    assert event.payload["kind"] == "request" and "reporter_phone" not in event.payload
    assert event.personal == {"reporter_phone": "138 0000 0002"}


def test_a_bare_press_needs_no_text_and_english_answers_in_english(call_client):
    answer = call_client.post(f"/call/{WEST}?lang=en")
    assert answer.status_code == 201
    assert answer.get_json()["message"] == "Received: help is on the way."


def test_a_plain_form_post_works_without_scripts(call_client, connection):
    answer = call_client.post(
        f"/call/{WEST}", data={"text": "门口有积水", "phone": ""}, headers=HTML
    )
    assert answer.status_code == 201 and answer.mimetype == "text/html"
    number = re.search(r'id="call-number">(\d+)<', answer.get_data(as_text=True))[1]
    text = connection.execute(
        sa.text("SELECT description FROM cases WHERE id = :id"), {"id": int(number)}
    ).scalar_one()
    assert text == "门口有积水"
    bad = call_client.post(f"/call/{WEST}", data={"text": "x" * 201}, headers=HTML)
    assert bad.status_code == 400 and "情况说明" in bad.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "a\x00b"}, "text"),
        ({"text": "长" * 10_000}, "text"),
        ({"text": "x" * 201}, "text"),
        ({"text": "bell\x07"}, "text"),
        ({"phone": "call me maybe"}, "phone"),
        ({"phone": 13800000000}, "phone"),
        ({"text": "ok", "name": "张三"}, "name"),
    ],
)
def test_hostile_text_is_a_400_naming_the_field(call_client, connection, body, field):
    before = connection.execute(sa.text("SELECT count(*) FROM cases")).scalar()
    answer = call_client.post(f"/call/{WEST}", json=body)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["field"].endswith(field), answer.get_json()
    assert connection.execute(sa.text("SELECT count(*) FROM cases")).scalar() == before


def test_a_call_from_another_site_is_refused(call_client):
    for headers in (
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.localhost"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        answer = call_client.post(f"/call/{WEST}", json={}, headers=headers)
        assert answer.status_code == 403, headers
        assert answer.get_json()["error"]["code"] == "csrf"
    own = call_client.post(
        f"/call/{WEST}", json={},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    )  # fmt: skip
    assert own.status_code == 201


def test_calls_are_limited_per_station_and_per_client(shared_url, connection, world):
    from tests.conftest import _app_on

    _add_stations(connection)
    client = _app_on(shared_url, connection, call_per_station_per_hour=2,
                     call_per_client_per_hour=0).test_client()  # fmt: skip
    assert [client.post(f"/call/{WEST}").status_code for _ in range(2)] == [201, 201]
    limited = client.post(f"/call/{WEST}")
    assert limited.status_code == 429
    error = limited.get_json()["error"]
    assert error["field"] == "station" and "too many calls from this station" in error["message"]
    assert "at most 2 an hour" in error["message"]
    assert int(limited.headers["Retry-After"]) > 60  # 2 an hour: the next in 30 min
    assert client.post("/call/CALL-E1").status_code == 201  # another station is not held
    page = client.post(f"/call/{WEST}", data={"text": "x"}, headers=HTML)
    assert page.status_code == 429 and "Retry-After" in page.headers
    per_client = _app_on(shared_url, connection, call_per_client_per_hour=1).test_client()
    # The limits are counted in the database, so this app sees the calls 127.0.0.1 made
    # above: this caller is another address.
    other = {"REMOTE_ADDR": "192.0.2.7"}
    assert per_client.post(f"/call/{WEST}", environ_base=other).status_code == 201
    again = per_client.post("/call/CALL-E1", environ_base=other)  # another station, same caller
    assert again.status_code == 429 and again.get_json()["error"]["field"] == "client"


# -- in a real browser on a phone ------------------------------------------------------------
@requires_chromium
def test_a_phone_calls_from_the_page_and_gets_a_number(committed):
    app = create_app({"database_url": committed, "log_level": "WARNING",
                      "call_per_station_per_hour": 2})  # fmt: skip
    with serve_app(app) as url, launch_browser() as browser:
        with open_page(f"{url}/call/{WEST}", offline=True, browser=browser, viewport=PHONE,
                       wait_for_map=False) as report:  # fmt: skip
            page = report.page
            box = page.locator("#call-button").bounding_box()
            # One big button, on the first screen of a 390×844 phone.
            assert box["width"] >= 300 and box["height"] >= 120
            assert box["y"] + box["height"] <= PHONE[1]
            report.screenshot("call-phone.png")
            page.fill("#call-text", "楼道里有人晕倒")
            page.fill("#call-phone", "13800000003")
            page.click("#call-button")
            number = page.locator("#call-number").text_content(timeout=10_000)
            assert "已收到" in page.locator("#call-result").text_content()
            report.screenshot("call-phone-done.png")
            report.assert_clean()  # no external request, no CSP violation, no JS error
        cases = _query(committed, "SELECT id, kind, description, reporter_phone, created_by "
                       "FROM cases")  # fmt: skip
        assert len(cases) == 1
        assert dict(cases[0]) == {
            "id": int(number), "kind": "request", "description": "楼道里有人晕倒",
            "reporter_phone": "13800000003", "created_by": f"call:{WEST}",
        }  # fmt: skip
        # Two more presses: the station's second call of the hour goes through, the third
        # is limited and the page says so.
        with open_page(f"{url}/call/{WEST}?lang=en", offline=True, browser=browser,
                       viewport=PHONE, wait_for_map=False) as report:  # fmt: skip
            report.page.click("#call-button")
            report.page.locator("#call-number").wait_for()
        with open_page(f"{url}/call/{WEST}?lang=en", offline=True, browser=browser,
                       viewport=PHONE, wait_for_map=False) as report:  # fmt: skip
            report.page.click("#call-button")
            message = report.page.locator("#call-error").text_content(timeout=10_000)
            assert "Too many calls" in message
            report.screenshot("call-phone-limited.png")
            assert not report.external_requests
        with open_page(f"{url}/call/NO-SUCH", offline=True, browser=browser, viewport=PHONE,
                       wait_for_map=False) as report:  # fmt: skip
            navigation = next(r for r in report.requests if r.url.endswith("/call/NO-SUCH"))
            assert navigation.status == 404
            assert "未找到该站点" in report.page.locator("h1").text_content()
            assert not report.external_requests
    assert len(_query(committed, "SELECT id FROM cases")) == 2


# -- two calls at once -----------------------------------------------------------------------
def _simultaneous(port: int, paths: list[str]) -> list[int]:
    """POST a call to each path at once; their statuses."""
    calls = [("POST", path, {}, {"text": f"第{i}位"}) for i, path in enumerate(paths)]
    return [status for status, _, _ in at_once(port, calls)]


def test_two_calls_at_once_from_one_station(committed):
    """Both are recorded; with a limit of one call an hour, exactly one is."""
    app = create_app({"database_url": committed, "log_level": "WARNING"})
    with serve_app(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(3):
            assert _simultaneous(port, [f"/call/{WEST}"] * 2) == [201, 201]
    assert len(_query(committed, "SELECT id FROM cases")) == 6
    limited = create_app({"database_url": committed, "log_level": "WARNING",
                          "call_per_station_per_hour": 1})  # fmt: skip
    with serve_app(limited) as url:
        statuses = _simultaneous(int(url.rsplit(":", 1)[1]), ["/call/CALL-E1"] * 2)
    assert sorted(statuses) == [201, 429]
    made = _query(committed, "SELECT count(*) AS n FROM cases WHERE created_by = 'call:CALL-E1'")
    assert made[0]["n"] == 1


# -- the printable QR codes ------------------------------------------------------------------
@pytest.fixture
def qr_world(runner, db_url):
    settings = config.load({"database_url": db_url}, environ={})
    with db.get_engine(settings).begin() as conn:
        casesworld.build(conn, with_network=False)
        codes = _add_stations(conn, extra=11)  # 13 coded stations in district 360198
    return runner, codes


def _decode_svgs(html_path, count: int) -> list[str]:
    """Open the page in Chromium and decode the first ``count`` codes from screenshots."""
    import zxingcpp
    from PIL import Image

    found = []
    with launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.goto(html_path.as_uri())
        for i in range(count):
            png = page.locator("svg.qr").nth(i).screenshot()
            results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
            found += [r.text for r in results]
        page.close()
    return found


@requires_chromium
def test_qr_html_for_a_district_holds_one_decodable_code_per_station(qr_world, tmp_path):
    runner, codes = qr_world
    out = tmp_path / "codes.html"
    base = "https://call.example.gov.cn/geomap"
    result = runner.invoke(main, ["stations", "qr", "--out", str(out), "--district", "360198",
                                  "--base-url", base + "/"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote 13 QR codes" in result.output and "1 station(s) without a code" in result.output
    html = out.read_text(encoding="utf-8")
    expected = sorted(f"{base}/call/{c}" for c in codes if c != "CALL-O1")
    assert sorted(re.findall(r'<svg class="qr"[^>]*data-url="([^"]+)"', html)) == expected
    assert "西街红色驿站" in html and "CALL-O1" not in html and "无编码驿站" not in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained
    decoded = _decode_svgs(out, 2)
    first_two = re.findall(r'data-url="([^"]+)"', html)[:2]
    assert decoded == first_two


def test_qr_pdf_for_all_stations_has_the_right_pages(qr_world, tmp_path):
    from pypdf import PdfReader

    runner, codes = qr_world
    out = tmp_path / "codes.pdf"
    result = runner.invoke(main, ["stations", "qr", "--out", str(out),
                                  "--base-url", "https://call.example.gov.cn"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote 14 QR codes" in result.output and "(3 pages)" in result.output
    assert out.read_bytes().startswith(b"%PDF-")
    reader = PdfReader(out)
    assert len(reader.pages) == 3  # 14 cards, six a page
    text = "".join(page.extract_text() for page in reader.pages)
    assert "西街红色驿站" in text and "https://call.example.gov.cn/call/CALL-O1" in text
    # The printed codes read back (rendered by PDFium, decoded by ZXing): the first page's
    # six cards, in order.
    import pypdfium2
    import zxingcpp

    document = pypdfium2.PdfDocument(str(out))
    try:
        image = document[0].render(scale=1.2).to_pil()
    finally:
        document.close()
    decoded = sorted(r.text for r in zxingcpp.read_barcodes(image))
    assert decoded == sorted(f"https://call.example.gov.cn/call/{c}" for c in sorted(codes)[:6])


def test_qr_matrix_holds_the_url(qr_world):
    """segno's own reading of the module matrix: the version fits the URL's length."""
    import segno

    from geomap import qrcodes

    url = qrcodes.call_url("https://call.example.gov.cn", "站点/1")
    assert url.endswith("/call/%E7%AB%99%E7%82%B9%2F1")
    rows = qrcodes.matrix(url)
    made = segno.make(url, error="m")
    assert len(rows) == made.symbol_size(border=qrcodes.QUIET_ZONE)[0]
    assert not any(rows[0]) and not any(rows[-1])  # the quiet zone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "codes.png"], "--out must end with .pdf or .html"),
        (["--out", "codes.html", "--district", "999999"], "no district '999999'; districts: "),
        (["--out", "codes.html", "--base-url", "ftp://x"], "--base-url must be http(s)://"),
        (["--out", "codes.pdf", "--district", "360197", "--base-url", "https://x.cn"],
         None),
    ],
)
def test_qr_errors_are_clear(qr_world, tmp_path, monkeypatch, args, message):
    runner, _ = qr_world
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["stations", "qr", *args])
    if message is None:  # the other district: its one station, one page
        assert result.exit_code == 0, result.output
        assert "wrote 1 QR codes" in result.output
        return
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert not list(tmp_path.iterdir())  # nothing written


def test_qr_default_base_url_warns_that_phones_cannot_reach_it(qr_world, tmp_path):
    runner, _ = qr_world
    # The service's own address (GEOMAP_HOST/GEOMAP_PORT, here fixed whatever the machine's
    # environment says) is the default, with a warning.
    env = {"GEOMAP_HOST": "127.0.0.1", "GEOMAP_PORT": "5000"}
    result = runner.invoke(main, ["stations", "qr", "--out", str(tmp_path / "c.html")], env=env)
    assert result.exit_code == 0, result.output
    assert "phones cannot reach" in result.output
    assert "http://127.0.0.1:5000/call/CALL-W1" in (tmp_path / "c.html").read_text("utf-8")


@pytest.mark.slow
def test_qr_for_a_nanchang_district_covers_exactly_its_coded_stations(nanchang_url, tmp_path):
    """On the default data: the district's stations, counted independently (a point in the
    district's whole outline rather than its indexed pieces)."""
    from click.testing import CliRunner

    district = _query(nanchang_url, "SELECT code FROM regions WHERE level = 'district' "
                      "ORDER BY code LIMIT 1")[0]["code"]  # fmt: skip
    expected = _query(
        nanchang_url,
        "SELECT s.code FROM stations s JOIN regions r ON r.code = :d "
        "WHERE s.code IS NOT NULL AND ST_Intersects(r.geom, s.geom) ORDER BY s.code",
        d=district,
    )
    assert len(expected) > 50
    out = tmp_path / "codes.html"
    result = CliRunner().invoke(
        main, ["stations", "qr", "--out", str(out), "--district", district,
               "--base-url", "https://call.example.gov.cn"],
        env={"GEOMAP_DATABASE_URL": nanchang_url},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    urls = re.findall(r'<svg class="qr"[^>]*data-url="([^"]+)"', out.read_text("utf-8"))
    assert sorted(urls) == sorted(
        f"https://call.example.gov.cn/call/{row['code']}" for row in expected
    )

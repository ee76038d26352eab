"""/healthz: versions and counts when up, 503 with a clear message when the database is down."""

from geomap import create_app


def test_healthz_reports_versions_and_counts(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["versions"]["postgis"].startswith("3.")
    assert body["versions"]["pgrouting"].startswith("3.")
    for key in (
        "districts",
        "townships",
        "communities",
        "grids",
        "stations",
        "red_stations",
        "sites",
        "teams",
        "team_members",
        "road_edges",
    ):
        assert body["counts"][key] == 0


def test_healthz_is_503_when_the_database_is_down(tmp_path):
    # A socket folder with no server in it: the connection is refused at once.
    app = create_app({"database_url": f"postgresql+psycopg://postgres@/geomap?host={tmp_path}"})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert "not reachable" in body["error"]["message"]


def test_unknown_path_is_a_json_404(client):
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"

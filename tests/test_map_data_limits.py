"""The planners' map data ask what the API asks, and are refused what the API refuses.

``/map/circles/data`` and ``/map/coverage/data`` build their question with the same checked
builders as ``/api/circles`` and ``/api/coverage`` (``geomap.web.queries``): the same cost
limits (``geomap.web.costs``), the same 4xx naming the same field, and the answer computed
inside the same analysis slots (``geomap.web.guard.heavy``).
"""

from __future__ import annotations

import pytest

PAIRS = [
    ("/map/circles/data", "/api/circles", {"minutes": "120"}, "minutes"),
    ("/map/circles/data", "/api/circles", {"distance_m": "5000"}, "distance_m"),
    ("/map/circles/data", "/api/circles", {"minutes": "10", "distance_m": "500"}, "minutes"),
    ("/map/coverage/data", "/api/coverage", {"of": "stations", "within_m": "50000"}, "within_m"),
    ("/map/coverage/data", "/api/coverage",
     {"of": "stations", "by": "distance", "within_m": "2500"}, "within_m"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "api", "query", "field"), PAIRS)
def test_map_data_refuse_what_the_api_refuses(client, data, api, query, field):
    from_api = client.get(api, query_string=query)
    from_map = client.get(data, query_string=query)
    assert 400 <= from_api.status_code < 500, from_api.get_data(as_text=True)
    assert from_map.status_code == from_api.status_code, from_map.get_data(as_text=True)
    assert from_map.get_json()["error"]["field"] == from_api.get_json()["error"]["field"] == field
    assert from_map.get_json()["error"]["code"] == from_api.get_json()["error"]["code"]


@pytest.mark.parametrize(
    ("data", "api", "query"),
    [
        ("/map/circles/data", "/api/circles", {"minutes": "15"}),
        ("/map/coverage/data", "/api/coverage", {"of": "stations", "within_m": "1000"}),
    ],
)
def test_map_data_run_in_the_analysis_slots(app, client, data, api, query):
    """With every analysis slot taken, the map data get the API's 503 busy at once."""
    slots = app.extensions["geomap_heavy"]
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    try:
        answers = [client.get(path, query_string=query) for path in (api, data)]
    finally:
        for _ in range(taken):
            slots.release()
    assert [a.status_code for a in answers] == [503, 503], [a.get_data(as_text=True)
                                                             for a in answers]  # fmt: skip
    assert all(a.get_json()["error"]["code"] == "busy" for a in answers)
    assert all(a.headers["Retry-After"] for a in answers)

"""The planning map in real Chromium, on a committed copy of Nanchang served by a real
threaded server: a suggestion runs as a job in a worker thread with its own session."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy.orm import Session

from geomap import auth, create_app, db
from geomap.cli import main
from geomap.routing import index
from tests.browser import launch_browser, open_page, requires_chromium, serve_app
from tests.test_planning import busy_township


@pytest.fixture(scope="module")
def planning_server(cluster, template_url) -> Iterator[tuple[str, str, str]]:
    from tests.conftest import _clone, owner_url

    url = _clone(cluster, "geomap_template", "geomap_plan_map")
    # The seed replaces every table: the owner's work, as `make run` does it.
    env = {"GEOMAP_DATABASE_URL": url, "GEOMAP_MIGRATE_URL": owner_url(url)}
    result = CliRunner().invoke(main, ["seed", "nanchang"], env=env)
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with Session(engine) as session:
        township = busy_township(session, most_candidates=60)
        session.commit()  # the reach sets computed on the way are kept
    engine.dispose()
    app = create_app({"database_url": url, "log_level": "WARNING", "open_read": True})
    try:
        with serve_app(app) as base:
            yield base, township, url
    finally:
        db.dispose_engines()
        index.clear()
        cluster.drop_database("geomap_plan_map")


def _download(page: Any, selector: str) -> Any:
    """Click a download link as a planner does, and once more if nothing came.

    In some full-suite runs the first click on the report link made no request at all (no
    GET reached the server in 180 s; never seen when the file runs alone; cause not found
    yet): a person clicks again, and so does this, once. Both clicks stay inside the
    180 s the report always had.
    """
    try:
        with page.expect_download(timeout=60_000) as info:  # the report is built on request
            page.click(selector)
        return info.value
    except PlaywrightTimeout:
        warnings.warn("the first click on the report link brought no download", stacklevel=2)
    with page.expect_download(timeout=120_000) as info:
        page.click(selector)
    return info.value


@pytest.mark.slow
@requires_chromium
def test_plan_map_runs_a_suggestion_and_downloads_the_csv(planning_server, tmp_path: Path):
    base, township, url = planning_server
    with launch_browser() as browser, open_page(
        f"{base}/map/plan?n=3&area={township}", offline=True, browser=browser, timeout_s=60
    ) as report:
        report.assert_clean()
        page: Any = report.page
        # The demo's open reads show the page; starting a job is a write: a planner signs in.
        with Session(sa.create_engine(url, poolclass=sa.NullPool)) as session:
            key, _ = auth.create_key(session, "planner of the demo", "planner")
            session.commit()
        signed_in = page.evaluate(
            """async (key) => (await fetch('/api/session', {method: 'POST',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({key})})).status""",
            key,
        )
        assert signed_in == 200
        page.reload()
        page.wait_for_selector(".gm-plan-run", timeout=60_000)
        page.click(".gm-plan-run")
        # Progress is shown while the job runs in the server's worker thread.
        page.wait_for_selector(".gm-plan-progress progress", state="visible", timeout=10_000)
        try:
            page.wait_for_selector(".gm-plan[data-plan-ready='true']", timeout=120_000)
        except Exception:
            raise AssertionError((report.page_errors, report.console_errors)) from None
        state = page.evaluate("() => window.geomapPlan.state()")
        result = state["result"]
        assert state["job"]["id"]
        assert page.locator(".gm-plan").get_attribute("data-job-status") == "done"
        assert len(result["sites"]) == 3 and result["status"] == "optimal"
        assert state["sites"] == 3 and state["circles"] == 3
        newly = [g for g in result["grids"] if g["newly_covered"]]
        assert state["newlyDrawn"] == len(newly) > 0
        rows = page.locator(".gm-plan-sites tbody tr")
        assert rows.count() == 3
        assert result["sites"][0]["name"] in rows.nth(0).inner_text()
        report.screenshot("maps_plan.png")
        download = _download(page, ".gm-plan-download[data-format='csv']")
        path = tmp_path / "plan.csv"
        download.save_as(path)
        raw = path.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
        text = raw.decode("utf-8-sig")
        assert result["sites"][0]["name"] in text  # Chinese intact
        assert "网格" in text or "社区" in text
        assert not report.external_requests


@pytest.mark.slow
@requires_chromium
def test_a_signed_in_planner_runs_and_cancels_a_job_with_the_sessions_csrf_token(
    planning_server,
):
    """No open reads: the browser holds only a session cookie; the page's writes (start a
    job, cancel it) carry the session's CSRF token, or the service would refuse them."""
    _, township, url = planning_server
    with Session(sa.create_engine(url, poolclass=sa.NullPool)) as session:
        key, _ = auth.create_key(session, "planner of the plan map", "planner")
        session.commit()
    app = create_app({"database_url": url, "log_level": "WARNING", "open_read": False})
    with serve_app(app) as base, launch_browser() as browser:
        page: Any = browser.new_page()
        page.goto(f"{base}/map/plan?n=3&area={township}")
        status = page.evaluate(
            """async (key) => (await fetch('/api/session', {method: 'POST',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({key})})).status""",
            key,
        )
        assert status == 200
        page.reload()
        page.wait_for_selector(".gm-plan-run", timeout=60_000)
        with page.expect_response(lambda r: r.request.method == "POST", timeout=60_000) as made:
            page.click(".gm-plan-run")
        assert made.value.status == 202 or made.value.status == 201, made.value.text()
        assert made.value.request.headers.get("x-csrf-token")
        page.wait_for_selector(".gm-plan-cancel:not([disabled])", timeout=30_000)
        with page.expect_response(lambda r: r.request.method == "DELETE", timeout=60_000) as gone:
            page.click(".gm-plan-cancel")
        assert gone.value.status == 200, gone.value.text()
        page.close()

"""The REST faces: one blueprint per resource family (the shared machinery is ``geomap.web``)."""

from __future__ import annotations

from typing import Any


def init_app(app: Any) -> None:
    """Register every API blueprint on ``app`` (after ``geomap.web.init_app``)."""
    from geomap.api import (
        audit,
        call,
        cases,
        circles,
        coverage,
        docs,
        events,
        health,
        layers,
        plans,
        session,
        teams,
    )

    app.register_blueprint(health.bp)
    app.register_blueprint(docs.bp)
    app.register_blueprint(teams.bp)
    app.register_blueprint(cases.bp)
    call.init_app(app)
    app.register_blueprint(audit.bp)
    app.register_blueprint(session.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(coverage.bp)
    app.register_blueprint(circles.bp)
    app.register_blueprint(layers.bp)
    app.register_blueprint(plans.bp)

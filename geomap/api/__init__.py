"""The HTTP faces: one blueprint per resource family, errors mapped in one place."""

from __future__ import annotations

from typing import Any


def init_app(app: Any) -> None:
    """Register every blueprint and the error handlers on ``app``."""
    from geomap import auth
    from geomap.api import (
        audit,
        call,
        cases,
        circles,
        compression,
        coverage,
        docs,
        errors,
        events,
        guard,
        headers,
        health,
        layers,
        plans,
        session,
        teams,
    )
    from geomap.maps import views as maps_views
    from geomap.ogc import views as ogc_views

    # First: Flask runs after_request hooks in reverse, so compression runs last and adds
    # to the headers the others set (Vary).
    compression.init_app(app)
    errors.init_app(app)
    guard.init_app(app)  # host, input and body checks first: before anything reads them
    auth.init_app(app)
    guard.after_auth(app)  # the rate limit needs to know who calls
    headers.init_app(app)
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
    app.register_blueprint(ogc_views.bp)
    app.register_blueprint(maps_views.bp)

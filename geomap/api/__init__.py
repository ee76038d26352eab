"""The HTTP faces: one blueprint per resource family, errors mapped in one place."""

from __future__ import annotations

from typing import Any


def init_app(app: Any) -> None:
    """Register every blueprint and the error handlers on ``app``."""
    from geomap.api import circles, coverage, errors, health, layers, teams

    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(teams.bp)
    app.register_blueprint(coverage.bp)
    app.register_blueprint(circles.bp)
    app.register_blueprint(layers.bp)

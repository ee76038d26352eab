"""geomap: a geospatial battle map (作战图) for the emergency teams of urban grid governance.

:func:`create_app` is the Flask app factory; nothing is built at import time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from geomap.version import __version__

__all__ = ["__version__", "create_app"]


def create_app(test_config: Mapping[str, Any] | None = None):  # -> flask.Flask
    """Build the Flask app.

    Parameters
    ----------
    test_config : mapping, optional
        Setting values by name (see ``geomap.config.SETTINGS``) that override the
        environment, e.g. ``{"database_url": ...}`` in tests.
    """
    from flask import Flask

    from geomap import api, config, db, web
    from geomap.maps import views as maps_views
    from geomap.ogc import views as ogc_views

    settings = config.load(test_config)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _redact_request_lines()
    app = Flask(__name__)
    app.config["GEOMAP"] = settings
    db.init_app(app)
    web.init_app(app)  # the machinery every face shares: before any face's views
    api.init_app(app)
    app.register_blueprint(ogc_views.bp)
    app.register_blueprint(maps_views.bp)
    return app


class _Redact(logging.Filter):
    """Blanks credentials in logged request lines (an embed token travels in ``?token=``).

    gunicorn writes no access log (``geomap.serving``); the development server's request
    lines go through the ``werkzeug`` logger, and pass here first.
    """

    PATTERN = re.compile(r"((?:token|key|api_key)=)[^&\s\"]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self.PATTERN.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1[redacted]", record.msg)
        return True


def _redact_request_lines() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _Redact) for f in logger.filters):
        logger.addFilter(_Redact())

"""geomap: a geospatial battle map (作战图) for the emergency teams of urban grid governance.

:func:`create_app` is the Flask app factory; nothing is built at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__version__ = "0.1.0"


def create_app(test_config: Mapping[str, Any] | None = None):  # -> flask.Flask
    """Build the Flask app.

    Parameters
    ----------
    test_config : mapping, optional
        Setting values by name (see ``geomap.config.SETTINGS``) that override the
        environment, e.g. ``{"database_url": ...}`` in tests.
    """
    from flask import Flask

    from geomap import api, config, db
    from geomap.jsonio import OrjsonProvider

    settings = config.load(test_config)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = Flask(__name__)
    app.config["GEOMAP"] = settings
    app.json = OrjsonProvider(app)  # UTF-8 (Chinese names readable), key order kept
    db.init_app(app)
    api.init_app(app)
    return app

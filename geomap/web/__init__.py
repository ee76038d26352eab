"""The web machinery every face shares (the API, the maps, the OGC API, ``/openapi.json``).

One module per job: request arguments (:mod:`~geomap.web.args`), the access check
(:mod:`~geomap.web.access`), host/input checks and the cost guard
(:mod:`~geomap.web.guard`, :mod:`~geomap.web.costs`), the checked analysis questions
(:mod:`~geomap.web.queries`), gzip and ETags (:mod:`~geomap.web.compression`), payloads
kept between requests (:mod:`~geomap.web.keep`), headers and the pages' CSP
(:mod:`~geomap.web.headers`, :mod:`~geomap.web.security`), declarations and body schemas
(:mod:`~geomap.web.spec`, :mod:`~geomap.web.schemas`), errors as JSON problems
(:mod:`~geomap.web.problems`), the JSON provider (:mod:`~geomap.web.jsonio`) and the
layer catalog as served (:mod:`~geomap.web.catalog`).

The faces import it; it imports none of them.
"""

from __future__ import annotations

from typing import Any


def init_app(app: Any) -> None:
    """Install the shared machinery on ``app``, before any face registers its views.

    Parameters
    ----------
    app : flask.Flask
    """
    from geomap.web import access, compression, guard, headers, problems
    from geomap.web.jsonio import OrjsonProvider

    app.json = OrjsonProvider(app)  # UTF-8 (Chinese names readable), key order kept
    # First: Flask runs after_request hooks in reverse, so compression runs last and adds
    # to the headers the others set (Vary).
    compression.init_app(app)
    problems.init_app(app)
    guard.init_app(app)  # host, input and body checks first: before anything reads them
    access.init_app(app)
    guard.after_auth(app)  # the rate limit needs to know who calls
    headers.init_app(app)

"""``/openapi.json`` (generated from the declarations) and ``/docs`` (rendered locally)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, url_for

from geomap import openapi
from geomap.web import security, spec
from geomap.web.spec import endpoint

bp = Blueprint("docs", __name__)

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>geomap API</title>
<link rel="stylesheet" href="{css}"></head>
<body><div id="ui"></div>
<script src="{js}"></script>
<script nonce="{nonce}">
SwaggerUIBundle({{url: "{spec}", dom_id: "#ui", validatorUrl: null}});
</script>
</body></html>
"""


def _document() -> dict:
    """The app's document, built on first request (the routes are all registered then)."""
    app = current_app._get_current_object()
    if "geomap_openapi" not in app.extensions:
        app.extensions["geomap_openapi"] = openapi.build(app)
    return app.extensions["geomap_openapi"]


@bp.get("/openapi.json")
@endpoint("This API's OpenAPI 3.0 document", permission="public", tags=("service",))
def openapi_json():
    """The OpenAPI document."""
    spec.args()
    response = jsonify(_document())
    response.mimetype = "application/vnd.oai.openapi+json"
    return response


@bp.get("/docs")
@endpoint("The API documentation, rendered from /openapi.json (no CDN)", permission="public",
          tags=("service",), media_type="text/html")  # fmt: skip
def docs():
    """Swagger UI, served from our own static files."""
    spec.args()
    page = DOCS_PAGE.format(
        css=url_for("static", filename="vendor/swagger-ui/swagger-ui.css"),
        js=url_for("static", filename="vendor/swagger-ui/swagger-ui-bundle.js"),
        spec=url_for("docs.openapi_json"),
        nonce=security.nonce(),
    )
    return Response(page, mimetype="text/html")

"""OGC API - Features (Part 1: Core; GeoJSON and HTML) over the layer catalog, under ``/ogc``.

* :mod:`geomap.ogc.core`: the documents (landing page, conformance, collections, items,
  item) as plain data, from the catalog (``layers/*.toml``) and
  :mod:`geomap.analysis.features`; no web framework.
* :mod:`geomap.ogc.views`: the Flask blueprint, a thin adapter (negotiation, streaming).
* ``templates/ogc/``: the HTML representation (plain HTML, no script, nothing remote).

GDAL/OGR's OAPIF driver and QGIS read it: ``ogrinfo OAPIF:http://HOST/ogc``.
"""

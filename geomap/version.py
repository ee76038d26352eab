"""The version of geomap (``geomap.__version__``; the OpenAPI document states it)."""

__version__ = "0.1.0"

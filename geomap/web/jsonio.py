"""JSON for the service: orjson behind Flask's JSON provider.

Answers are mostly numbers and short strings; the standard library's encoder spends more
time on a nearest-teams answer than the routing does. orjson writes UTF-8 (Chinese names
stay readable, as with ``ensure_ascii=False``), keeps key order, and serialises numpy
scalars and arrays; anything else it does not know is written as ``str()``.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import JSONProvider

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def dumps_bytes(value: Any) -> bytes:
    """``value`` as UTF-8 JSON bytes."""
    return orjson.dumps(value, default=_fallback, option=_OPTIONS)


class OrjsonProvider(JSONProvider):
    """Flask's JSON provider on orjson (``app.json = OrjsonProvider(app)``)."""

    mimetype = "application/json"

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps_bytes(obj).decode("utf-8")

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(dumps_bytes(obj), mimetype=self.mimetype)

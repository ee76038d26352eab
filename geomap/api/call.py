"""The one-click call page (一键呼叫): ``/call/<station code>``, public, for phones.

A printed QR code at a station (``geomap stations qr``) opens ``GET /call/<code>``: the
station's name and address, one big button, an optional short text and callback phone.
Pressing it sends ``POST /call/<code>`` (JSON from the page's script; a plain form post
works too when scripts are off) and makes a ``request`` case at the station
(:mod:`geomap.ops.calls`), answered with its number.

* **No credential**, so three guards instead: the POST must come from this service's own
  page (``Sec-Fetch-Site``/``Origin``, else 403 ``csrf``); calls are limited per client
  address per station, counted in the database across workers and nodes
  (:mod:`geomap.ops.call_limits`: ``GEOMAP_CALL_PER_CLIENT_PER_HOUR``,
  ``GEOMAP_CALL_PER_STATION_PER_HOUR``), and a crowd or a flood at one station is counted
  on one case, never refused for a new resident; only a repeat from one address beyond
  its limit is a 429 with ``Retry-After``; the text is short and checked.
* **Idempotency-Key**: the page sends one per press and the same again when it retries;
  the same key within 24 h answers the first answer (:mod:`geomap.ops.idempotency`). The
  key is the station's (a random key from a phone that changed network is still known).
* **Pages and errors.** A browser navigating (``Accept`` prefers HTML) gets HTML pages,
  errors included (an unknown station is a 404 page); the page's script and any other
  client get JSON problems as everywhere else in the API.
* The page runs under the strict nonce CSP (``geomap.web.security``): no inline style or
  handler, its CSS and JS from ``/static/geomap/``, no request leaves the origin.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, render_template, request

from geomap import db
from geomap.api import _ops
from geomap.errors import Forbidden, GeomapError
from geomap.ops import calls, idempotency
from geomap.web import guard, security, spec
from geomap.web.spec import Param, endpoint

bp = Blueprint("call", __name__)

LANGS = ("zh", "en")
LANG = Param("lang", "string", "Language of the page and its messages.", enum=LANGS,
             default="zh")  # fmt: skip
IDEMPOTENCY_KEY = Param(
    idempotency.HEADER, "string",
    "A key of the client's choosing (a UUID) for this press; sent again with a retry, the "
    "same key within 24 h answers the first answer instead of calling twice.",
    location="header",
)  # fmt: skip

#: The page's words: key → (Chinese, English).
TEXT: dict[str, tuple[str, str]] = {
    "title": ("一键呼叫", "One-click call"),
    "station_code": ("站点编码", "Station code"),
    "button": ("一键呼叫", "Call for help"),
    "text_label": (
        "情况说明（选填，最多200字）",
        "What happened (optional, at most 200 characters)",
    ),
    "phone_label": ("回拨电话（选填）", "Callback phone (optional)"),
    "sending": ("正在呼叫…", "Calling…"),
    "done": ("已收到，工作人员正在赶来。", "Received: help is on the way."),
    "number": ("呼叫编号", "Call number"),
    "keep_number": ("请记下编号，以便查询。", "Keep this number to ask about your call."),
    "limited": (
        "呼叫过于频繁，请约 {minutes} 分钟后再试。",
        "Too many calls; please try again in about {minutes} min.",
    ),
    "failed": ("呼叫未成功：{message}", "The call did not go through: {message}"),
    "offline": (
        "网络不通，呼叫未发出，请稍后重试。",
        "No connection: the call was not sent. Please try again.",
    ),
    "emergency": (
        "如遇危及生命的紧急情况，请直接拨打 110、120 或 119。",
        "In a life-threatening emergency, dial 110, 120 or 119 directly.",
    ),
    "not_found_title": ("未找到该站点", "No such station"),
    "not_found": (
        "没有编码为 {code} 的站点，请核对二维码或链接。",
        "No station has the code {code}; check the QR code or the link.",
    ),
    "error_title": ("出错了", "Something went wrong"),
    "other_lang": ("English", "中文"),
    "back": ("返回", "Back"),
}
#: What the fields are called on the page, for errors that name them.
FIELDS: dict[str, tuple[str, str]] = {
    "text": ("情况说明", "What happened"),
    "phone": ("回拨电话", "Callback phone"),
}


def _lang() -> str:
    value = request.args.get("lang") or "zh"
    return value if value in LANGS else "zh"


def _words(lang: str) -> dict[str, str]:
    i = LANGS.index(lang)
    return {key: pair[i] for key, pair in TEXT.items()}


def wants_html() -> bool:
    """Whether the caller is a browser navigating (it prefers HTML to JSON)."""
    accept = request.accept_mimetypes
    return accept["text/html"] > accept["application/json"]


def init_app(app: Any) -> None:
    """Register the blueprint (its limits are read from the settings at each call)."""
    app.register_blueprint(bp)


@bp.after_request
def _page_headers(response: Response) -> Response:
    # The strict page policy on every answer of this blueprint, HTML or not.
    response.headers["Cache-Control"] = "no-store"
    return security.page_headers(response, nonce=security.nonce())


# -- guards ----------------------------------------------------------------------------------
def check_same_origin(req: Any) -> None:
    """Refuse a call that another site's page makes (CSRF on a public form).

    Browsers say who sends a request: ``Sec-Fetch-Site`` must be ``same-origin`` when
    present, and ``Origin``, when present, must be this service's own. A client that is
    not a browser sends neither and is no cross-site forgery; the rate limits hold it.
    """
    site = req.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        raise Forbidden(
            f"a call is made from this service's own call page, not from another site "
            f"(Sec-Fetch-Site: {site})",
            field="Origin",
            code="csrf",
        )
    origin = req.headers.get("Origin")
    if origin is not None:
        own = req.host_url.rstrip("/").lower()
        parts = urlsplit(origin.lower())
        if f"{parts.scheme}://{parts.netloc}" != own:
            raise Forbidden(
                f"a call is made from this service's own call page, not from {origin}",
                field="Origin",
                code="csrf",
            )


# -- views -----------------------------------------------------------------------------------
def _page(template: str, status: int = 200, **values: Any) -> Response:
    lang = _lang()
    html = render_template(
        template,
        lang=lang,
        t=_words(lang),
        other_lang="en" if lang == "zh" else "zh",
        **values,
    )
    return Response(html, status=status, mimetype="text/html")


def _error_page(exc: GeomapError, code: str) -> Response:
    lang = _lang()
    words = _words(lang)
    if exc.status == 404:
        title, message = words["not_found_title"], words["not_found"].format(code=code)
    else:
        title, message = words["error_title"], exc.message
        label = FIELDS.get(exc.field or "")
        if label is not None:
            message = f"{label[LANGS.index(lang)]}：{exc.message}"
    response = _page("call/error.html", exc.status, title=title, message=message, code=code)
    retry = getattr(exc, "retry_after_s", None)
    if retry is not None:
        response.headers["Retry-After"] = str(max(1, round(retry)))
    return response


@bp.get("/call/<code>")
@endpoint(
    "A station's one-click call page (一键呼叫), for phones: a big button, optional text",
    permission="public",
    params=(LANG,),
    media_type="text/html",
    tags=("call",),
    statuses=(400, 404),
)
def call_page(code: str) -> Response:
    """The page a station's QR code opens."""
    try:
        spec.args()
        found = calls.station(db.get_session(), code)
    except GeomapError as exc:
        if wants_html():
            return _error_page(exc, code)
        raise
    return _page("call/page.html", station=found, text_max=calls.TEXT_MAX,
                 phone_max=calls.PHONE_MAX)  # fmt: skip


@bp.post("/call/<code>")
@endpoint(
    "Call for help at a station: makes a `request` case there, or is counted on the "
    "station's open call case, and answers its number (public; same-origin pages only; "
    "a repeat from one address beyond its limit is refused)",
    permission="public",
    params=(LANG, IDEMPOTENCY_KEY),
    body="CallNew",
    response="CallMade",
    tags=("call",),
    statuses=(400, 403, 404, 422, 429),
)
def make_call(code: str):
    """Record the call; JSON for scripts, a page for a plain form post."""
    form = request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
    try:
        spec.args()
        check_same_origin(request)
        key = idempotency.check_key(request.headers.get(idempotency.HEADER))
        session = db.get_session()
        found = calls.station(session, code)
        if form:
            call = calls.parse_call({k: v for k, v in request.form.items() if v != ""})
        else:
            call = calls.parse_call(spec.body() if request.content_length else None)
        now = _ops.now()
        scope = f"call:{found['code']}"
        if key is not None:
            sha = idempotency.digest("POST", f"/call/{found['code']}", call)
            first = idempotency.claim(session, scope, key, sha, now=now)
            if first is not None:
                session.rollback()
                return _answer(json.loads(first.body), first.status, found, form,
                               replayed=True)  # fmt: skip
        settings = _ops.settings()
        made = calls.place(
            session, found, call, now=now, rules=_ops.dispatch_rules(),
            client=guard.client_address(request),
            per_client=settings.call_per_client_per_hour,
            per_station=settings.call_per_station_per_hour,
        )  # fmt: skip
        answer = {
            "case_id": made["case_id"],
            "number": str(made["case_id"]),
            "status": "reported",
            "duplicate": made["duplicate"],
            "station": {"code": found["code"], "name": found["name"]},
            "message": _words(_lang())["done"],
            "reported_at": now.isoformat(),
        }
        if key is not None:
            idempotency.keep(session, scope, key, 201, json.dumps(answer, ensure_ascii=False))
        session.commit()
    except GeomapError as exc:
        if form:
            return _error_page(exc, code)
        raise
    return _answer(answer, 201, found, form)


def _answer(answer: dict, status: int, found: dict, form: bool, *, replayed: bool = False):
    if form:
        response = _page("call/done.html", status, station=found, answer=answer)
    else:
        response = jsonify(answer)
        response.status_code = status
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response

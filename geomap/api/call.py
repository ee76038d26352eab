"""The one-click call page (一键呼叫): ``/call/<station code>``, public, for phones.

A printed QR code at a station (``geomap stations qr``) opens ``GET /call/<code>``: the
station's name and address, one big button, an optional short text and callback phone.
Pressing it sends ``POST /call/<code>`` (JSON from the page's script; a plain form post
works too when scripts are off) and makes a ``request`` case at the station
(:mod:`geomap.ops.calls`), answered with its number.

* **No credential**, so three guards instead: the POST must come from this service's own
  page (``Sec-Fetch-Site``/``Origin``, else 403 ``csrf``); calls are rate limited per
  station and per client address (``GEOMAP_CALL_PER_STATION_PER_HOUR``,
  ``GEOMAP_CALL_PER_CLIENT_PER_HOUR``: token buckets of :mod:`geomap.web.guard`, per
  service process, 429 with ``Retry-After``); the text is short and checked.
* **Pages and errors.** A browser navigating (``Accept`` prefers HTML) gets HTML pages,
  errors included (an unknown station is a 404 page); the page's script and any other
  client get JSON problems as everywhere else in the API.
* The page runs under the strict nonce CSP (``geomap.web.security``): no inline style or
  handler, its CSS and JS from ``/static/geomap/``, no request leaves the origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from geomap import db
from geomap.api import _ops
from geomap.errors import Forbidden, GeomapError, RateLimited
from geomap.ops import calls
from geomap.web import guard, security, spec
from geomap.web.spec import Param, endpoint

bp = Blueprint("call", __name__)

LANGS = ("zh", "en")
LANG = Param("lang", "string", "Language of the page and its messages.", enum=LANGS,
             default="zh")  # fmt: skip
BUCKETS = "geomap_call_rate"

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
    """Register the blueprint and its two rate limits (0 turns one off)."""
    settings = app.config["GEOMAP"]
    limits = {}
    for name, per_hour in (
        ("station", settings.call_per_station_per_hour),
        ("client", settings.call_per_client_per_hour),
    ):
        if per_hour > 0:
            limits[name] = guard.TokenBuckets(per_hour / 3600.0, int(per_hour))
    app.extensions[BUCKETS] = limits
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


def check_limits(code: str, client: str) -> None:
    """Take a token from the client's and the station's buckets (429 when either is empty)."""
    limits: dict[str, guard.TokenBuckets] = current_app.extensions.get(BUCKETS, {})
    for name, caller in (("client", f"client:{client}"), ("station", f"station:{code}")):
        buckets = limits.get(name)
        if buckets is None:
            continue
        wait = buckets.take(caller)
        if wait > 0:
            who = "this station" if name == "station" else "this device (address)"
            raise RateLimited(
                f"too many calls from {who}: at most {buckets.burst:g} an hour; "
                f"retry in {max(1, round(wait / 60))} min (in an emergency dial 110, 120 "
                f"or 119)",
                retry_after_s=wait,
                field=name,
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
    "Call for help at a station: makes a `request` case there and answers its number "
    "(public; same-origin pages only; rate limited per station and per client)",
    permission="public",
    params=(LANG,),
    body="CallNew",
    response="CallMade",
    tags=("call",),
    statuses=(400, 403, 404, 422),
)
def make_call(code: str):
    """Record the call as a case; JSON for scripts, a page for a plain form post."""
    form = request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
    try:
        spec.args()
        check_same_origin(request)
        session = db.get_session()
        found = calls.station(session, code)
        if form:
            call = calls.parse_call({k: v for k, v in request.form.items() if v != ""})
        else:
            call = calls.parse_call(spec.body() if request.content_length else None)
        check_limits(found["code"], guard.client_address(request))
        now = _ops.now()
        case_id = calls.place(session, found, call, now=now, rules=_ops.dispatch_rules())
        session.commit()
    except GeomapError as exc:
        if form:
            return _error_page(exc, code)
        raise
    words = _words(_lang())
    answer = {
        "case_id": case_id,
        "number": str(case_id),
        "status": "reported",
        "station": {"code": found["code"], "name": found["name"]},
        "message": words["done"],
        "reported_at": now.isoformat(),
    }
    if form:
        return _page("call/done.html", 201, station=found, answer=answer)
    return jsonify(answer), 201

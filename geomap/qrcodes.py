"""Printable QR codes for the stations' one-click call pages (``geomap stations qr``).

Each code holds ``<base-url>/call/<station code>`` (the page of ``geomap.api.call``) and
is printed with the station's name, code and address: a self-contained HTML file (inline
SVG codes, print styles, no external asset) or an A4 PDF, six cards a page, the codes
drawn as vector squares and the names in a CJK font from the system
(``fonts-wqy-microhei``, installed by ``make``). Codes are made by ``segno`` (pure
Python) at error-correction level M, with the 4-module quiet zone the standard asks for.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa

from geomap.errors import ConfigError, InvalidInput

#: Output formats by file extension.
FORMATS = (".pdf", ".html")
#: Cards on one PDF page: columns × rows on A4 portrait.
PDF_COLUMNS, PDF_ROWS = 2, 3
PER_PAGE = PDF_COLUMNS * PDF_ROWS
#: CJK fonts looked for, in order (Debian's paths); the first found is used.
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)
QUIET_ZONE = 4

STATIONS_SQL = sa.text(
    """
    SELECT s.code, s.name, s.kind, s.address, d.code AS district_code, d.name AS district_name
    FROM stations s
    LEFT JOIN LATERAL (
        SELECT r.code, r.name FROM region_pieces p JOIN regions r ON r.code = p.code
        WHERE p.level = 'district' AND ST_Intersects(p.geom, s.geom)
        ORDER BY r.code LIMIT 1
    ) d ON true
    WHERE s.code IS NOT NULL
      AND (CAST(:district AS text) IS NULL OR d.code = :district)
    ORDER BY d.code NULLS LAST, s.code
    """
)
UNCODED_SQL = sa.text(
    """
    SELECT count(*) FROM stations s
    WHERE s.code IS NULL AND (CAST(:district AS text) IS NULL OR EXISTS (
        SELECT 1 FROM region_pieces p WHERE p.code = :district AND ST_Intersects(p.geom, s.geom)))
    """
)
DISTRICTS_SQL = sa.text("SELECT code, name FROM regions WHERE level = 'district' ORDER BY code")


def check_out(path: Path) -> str:
    """The output format of ``path`` (``.pdf`` or ``.html``), else an error naming it."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(
            f"--out must end with .pdf or .html, got {path.name!r}", field="out"
        )
    return suffix


def check_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, if it is an http(s) address a phone can open."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise InvalidInput(
            f"--base-url must be http(s)://host[:port][/path] with no query, got {base_url!r}",
            field="base-url",
        )
    return base_url.rstrip("/")


def call_url(base_url: str, code: str) -> str:
    """The address of a station's call page."""
    return f"{base_url}/call/{quote(code, safe='')}"


def stations(conn: Any, district: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """The stations that get a code (those with a station code), by district then code,
    and how many stations were left out for having no code.

    Raises
    ------
    InvalidInput
        ``district`` is not a district's code (the message lists them).
    """
    if district is not None:
        known = {row.code: row.name for row in conn.execute(DISTRICTS_SQL)}
        if district not in known:
            listed = ", ".join(f"{c} {n}" for c, n in known.items()) or "none loaded"
            raise InvalidInput(f"no district {district!r}; districts: {listed}",
                               field="district")  # fmt: skip
    rows = [dict(r) for r in conn.execute(STATIONS_SQL, {"district": district}).mappings()]
    uncoded = int(conn.execute(UNCODED_SQL, {"district": district}).scalar_one())
    return rows, uncoded


def matrix(url: str) -> list[list[bool]]:
    """The QR code of ``url`` as rows of dark (True) modules, quiet zone included."""
    import segno

    code = segno.make(url, error="m", micro=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=QUIET_ZONE)]


def _svg(url: str) -> str:
    rows = matrix(url)
    size = len(rows)
    runs = []
    for y, row in enumerate(rows):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    label = html.escape(url, quote=True)
    return (
        f'<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'shape-rendering="crispEdges" role="img" aria-label="{label}" data-url="{label}">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )


_WORDS = {
    "zh": {"title": "一键呼叫二维码", "scan": "扫码一键呼叫", "code": "站点编码",
           "count": "共 {n} 个站点", "synthetic": ""},
    "en": {"title": "One-click call QR codes", "scan": "Scan to call for help",
           "code": "Station code", "count": "{n} stations", "synthetic": ""},
}  # fmt: skip

_CSS = """
body { font-family: "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 1rem; color: #111; }
h1 { font-size: 1.25rem; margin: 0 0 .25rem; }
.meta { color: #555; margin: 0 0 1rem; font-size: .9rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr));
         gap: 1rem; }
.card { border: 1px dashed #999; padding: .75rem; text-align: center;
        break-inside: avoid; page-break-inside: avoid; }
.card .scan { color: #b91c1c; font-weight: 700; margin: 0 0 .25rem; font-size: 1.1rem; }
.card svg.qr { width: 12rem; height: 12rem; display: block; margin: 0 auto; }
.card .name { font-weight: 700; margin: .25rem 0 0; font-size: 1.05rem; }
.card .code, .card .address, .card .url { margin: .1rem 0; font-size: .8rem; color: #333;
                                           word-break: break-all; }
@media print { body { margin: 0; } .meta { display: none; }
               .cards { grid-template-columns: repeat(3, 1fr); } }
"""


def write_html(
    path: Path, rows: Sequence[dict[str, Any]], base_url: str, *, lang: str = "zh",
    title: str | None = None,
) -> None:
    """A printable, self-contained page: one card (QR, name, code, address) per station."""
    words = _WORDS[lang]
    esc = html.escape
    cards = []
    for row in rows:
        url = call_url(base_url, row["code"])
        cards.append(
            f'<section class="card" data-code="{esc(row["code"])}">'
            f'<p class="scan">{words["scan"]}</p>{_svg(url)}'
            f'<p class="name">{esc(row["name"])}</p>'
            f'<p class="code">{words["code"]} {esc(row["code"])}</p>'
            + (f'<p class="address">{esc(row["address"])}</p>' if row.get("address") else "")
            + f'<p class="url">{esc(url)}</p></section>'
        )
    heading = esc(title or words["title"])
    document = (
        f'<!doctype html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}"><head>'
        f'<meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{heading}</title><style>{_CSS}</style></head><body>'
        f'<h1>{heading}</h1><p class="meta">{words["count"].format(n=len(rows))} · '
        f'{esc(base_url)}/call/…</p><div class="cards">{"".join(cards)}</div></body></html>\n'
    )
    path.write_text(document, encoding="utf-8")


def cjk_font() -> str:
    """The path of a CJK font on this machine (names print in Chinese)."""
    for candidate in CJK_FONTS:
        if Path(candidate).exists():
            return candidate
    raise ConfigError(
        "no CJK font found for the PDF (looked for "
        + ", ".join(CJK_FONTS)
        + "); install one: apt-get install fonts-wqy-microhei (make does it)"
    )


def write_pdf(
    path: Path, rows: Sequence[dict[str, Any]], base_url: str, *, lang: str = "zh",
    title: str | None = None,
) -> int:
    """An A4 PDF, :data:`PER_PAGE` cards a page (cut along the dashed lines); returns the
    number of pages."""
    from fpdf import FPDF

    words = _WORDS[lang]
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(title or words["title"])
    pdf.set_creator("geomap stations qr")
    pdf.add_font("cjk", fname=cjk_font())
    margin = 10.0
    card_w = (pdf.w - 2 * margin) / PDF_COLUMNS
    card_h = (pdf.h - 2 * margin) / PDF_ROWS
    qr_mm = min(card_w, card_h) - 36
    for i, row in enumerate(rows):
        if i % PER_PAGE == 0:
            pdf.add_page()
        col, line = (i % PER_PAGE) % PDF_COLUMNS, (i % PER_PAGE) // PDF_COLUMNS
        x0, y0 = margin + col * card_w, margin + line * card_h
        pdf.set_draw_color(160, 160, 160)
        pdf.set_dash_pattern(dash=1.5, gap=1.5)
        pdf.rect(x0, y0, card_w, card_h)
        pdf.set_dash_pattern()
        pdf.set_text_color(185, 28, 28)
        pdf.set_font("cjk", size=13)
        pdf.set_xy(x0, y0 + 3)
        pdf.cell(card_w, 6, words["scan"], align="C")
        url = call_url(base_url, row["code"])
        modules = matrix(url)
        cell = qr_mm / len(modules)
        qx, qy = x0 + (card_w - qr_mm) / 2, y0 + 10
        pdf.set_fill_color(0, 0, 0)
        for y, mrow in enumerate(modules):
            x = 0
            while x < len(mrow):
                if mrow[x]:
                    start = x
                    while x < len(mrow) and mrow[x]:
                        x += 1
                    pdf.rect(qx + start * cell, qy + y * cell, (x - start) * cell, cell, style="F")
                else:
                    x += 1
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("cjk", size=12)
        pdf.set_xy(x0 + 2, qy + qr_mm + 1)
        pdf.cell(card_w - 4, 6, _fit(pdf, row["name"], card_w - 4), align="C")
        pdf.set_font("cjk", size=8)
        pdf.set_xy(x0 + 2, qy + qr_mm + 7)
        pdf.cell(card_w - 4, 4, _fit(pdf, f"{words['code']} {row['code']}", card_w - 4),
                 align="C")  # fmt: skip
        if row.get("address"):
            pdf.set_xy(x0 + 2, qy + qr_mm + 11)
            pdf.cell(card_w - 4, 4, _fit(pdf, row["address"], card_w - 4), align="C")
        pdf.set_xy(x0 + 2, qy + qr_mm + 15)
        pdf.cell(card_w - 4, 4, _fit(pdf, url, card_w - 4), align="C")
    if not rows:
        pdf.add_page()
    pdf.output(str(path))
    return max(1, math.ceil(len(rows) / PER_PAGE))


def _fit(pdf: Any, text: str, width_mm: float) -> str:
    """``text`` shortened with an ellipsis to fit ``width_mm`` in the current font."""
    if pdf.get_string_width(text) <= width_mm:
        return text
    while text and pdf.get_string_width(text + "…") > width_mm:
        text = text[:-1]
    return text + "…"

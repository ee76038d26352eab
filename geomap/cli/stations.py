"""``geomap stations``: the stations' printable QR codes for one-click calls (一键呼叫)."""

from __future__ import annotations

from pathlib import Path

import click

from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings


@click.group("stations")
def stations_group() -> None:
    """Service stations (党群服务中心, 红色驿站, …)."""


@stations_group.command("qr")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="codes.pdf (A4, six cards a page) or codes.html (printable page).",
)
@click.option("--district", default=None, help="Only the stations of this district (its code).")
@click.option(
    "--base-url",
    default=None,
    help="Where phones reach the service, e.g. https://geomap.example.gov.cn "
    "(default: http://GEOMAP_HOST:GEOMAP_PORT, which only this machine can open).",
)
@click.option("--lang", default="zh", show_default=True, type=click.Choice(["zh", "en"]),
              help="Language of the printed words.")  # fmt: skip
@click.pass_context
@handle_errors
def stations_qr(
    ctx: click.Context, out: Path, district: str | None, base_url: str | None, lang: str
) -> None:
    """Printable QR codes, each opening a station's call page (<base-url>/call/<code>)."""
    from geomap import db as dbmod
    from geomap import qrcodes
    from geomap.auth.permissions import is_loopback

    settings = _settings(ctx)
    fmt = qrcodes.check_out(out)
    base = qrcodes.check_base_url(base_url or f"http://{settings.host}:{settings.port}")
    if base_url is None or is_loopback(_host(base)) or _host(base) == "localhost":
        click.secho(
            f"warning: the codes point at {base}, which phones cannot reach; "
            "pass --base-url with the service's public address",
            fg="yellow",
            err=True,
        )
    with dbmod.session_scope(settings) as session:
        rows, uncoded = qrcodes.stations(session, district)
    if not rows:
        where = f"district {district}" if district else "the database"
        raise click.ClickException(f"no station with a code in {where}: nothing to print")
    title = None
    if district:
        name = rows[0].get("district_name") or district
        title = f"{name} · " + ("一键呼叫二维码" if lang == "zh" else "one-click call QR codes")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ".pdf":
        pages = qrcodes.write_pdf(out, rows, base, lang=lang, title=title)
        made = f"{pages} page{'s' if pages != 1 else ''}"
    else:
        qrcodes.write_html(out, rows, base, lang=lang, title=title)
        made = "one page"
    skipped = f"; {uncoded} station(s) without a code skipped" if uncoded else ""
    click.echo(f"wrote {len(rows)} QR codes to {out} ({made}){skipped}", err=True)


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""

"""``geomap cases``: list, show, count and import cases from the command line.

Reads first record the escalations that fell due, as the API's reads do. Writes (import)
are audited under the operating-system user's name (role ``cli``).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from geomap import vocab
from geomap.cli._common import echo_json, handle_errors
from geomap.cli._common import settings as _settings


@click.group("cases")
def cases_group() -> None:
    """Cases (事件): incidents, hazards and residents' requests."""


def _when(text: str | None, name: str) -> dt.datetime | None:
    from geomap.params import CST, check_datetime

    return None if text is None else check_datetime(text, name, default_tz=CST)


@cases_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(list(vocab.CASE_STATUSES)),
    help="Status (repeatable).",
)
@click.option("--open", "only_open", is_flag=True, help="Only cases not closed nor cancelled.")
@click.option("--kind", type=click.Choice(list(vocab.CASE_KINDS)), default=None)
@click.option("--unit", default=None, help="A grid, community, township or district code.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_context
@handle_errors
def cases_list(
    ctx: click.Context,
    statuses: tuple[str, ...],
    only_open: bool,
    kind: str | None,
    unit: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Cases, latest reported first."""
    from geomap import db
    from geomap.ops import casereads, casesteps, escalation, utc_now

    now = utc_now()
    chosen = list(statuses) or None
    if only_open:
        chosen = [s for s in (chosen or casesteps.OPEN) if s in casesteps.OPEN]
    with db.session_scope(_settings(ctx)) as session:
        escalation.materialize_due(session, now)
        answer = casereads.list_cases(
            session, now=now, personal=True, statuses=chosen, kind=kind, unit=unit, limit=limit
        )
    if as_json:
        echo_json(answer)
        return
    for case in answer["cases"]:
        unit_name = (case["level_unit"] or {}).get("name") or "-"
        flag = " OVERDUE" if case["overdue"] else ""
        click.echo(
            f"{case['id']:>6}  {case['reported_at'][:16]}  {case['kind']:<8} "
            f"{case['severity']:<8} {case['status']:<10} {case['level']:<9} "
            f"{unit_name}  {case['title']}{flag}"
        )
    click.echo(f"({len(answer['cases'])} of {answer['total']} cases)", err=True)


@cases_group.command("show")
@click.argument("case_id", type=click.IntRange(1, 2**31 - 1))
@click.pass_context
@handle_errors
def cases_show(ctx: click.Context, case_id: int) -> None:
    """One case as JSON: its units, level, dispatches and the steps allowed."""
    from geomap import db
    from geomap.ops import casereads, escalation, utc_now

    now = utc_now()
    with db.session_scope(_settings(ctx)) as session:
        escalation.materialize_due(session, now)
        case = casereads.get(session, case_id, now=now, personal=True)
    echo_json(case)


@cases_group.command("stats")
@click.option(
    "--level", type=click.Choice(list(vocab.CASE_LEVELS)), default="district", show_default=True
)
@click.option("--kind", type=click.Choice(list(vocab.CASE_KINDS)), default=None)
@click.option(
    "--from",
    "since",
    default=None,
    help="Reported at or after (default: 30 days before --to); no zone: UTC+8.",
)
@click.option("--to", "until", default=None, help="Reported before (default: now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.pass_context
@handle_errors
def cases_stats(
    ctx: click.Context, level: str, kind: str | None, since: str | None, until: str | None, fmt: str
) -> None:
    """Found, closed, closure rate, median minutes to accept and close, open and overdue."""
    from geomap import db
    from geomap.ops import escalation, stats, utc_now

    now = utc_now()
    end = _when(until, "to") or now
    start = _when(since, "from") or end - dt.timedelta(days=30)
    with db.session_scope(_settings(ctx)) as session:
        escalation.materialize_due(session, now)
        answer = stats.stats(session, level=level, kind=kind, since=start, until=end, now=now)
    if fmt == "json":
        echo_json(answer)
    elif fmt == "csv":
        click.echo(stats.to_csv(answer), nl=False)
    else:

        def cell(value: object) -> str:
            return "-" if value is None else str(value)

        click.echo(
            f"{'unit':<24} {'found':>6} {'closed':>6} {'rate':>6} {'accept':>7} "
            f"{'close':>8} {'open':>5} {'overdue':>7}"
        )
        total = {"name": "total", **answer["summary"]}
        for unit in [*answer["units"], total]:
            name = unit.get("name") or unit.get("code") or "(none)"
            rate = unit["closure_rate"]
            click.echo(
                f"{name[:24]:<24} {unit['found']:>6} {unit['closed']:>6} "
                f"{cell(None if rate is None else f'{rate:.0%}'):>6} "
                f"{cell(unit['median_accept_min']):>7} {cell(unit['median_close_min']):>8} "
                f"{unit['open']:>5} {unit['overdue']:>7}"
            )


@cases_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--crs",
    "crs_name",
    default=None,
    help="Coordinates' system: WGS84 (default), CGCS2000, GCJ02 or BD09.",
)
@click.option(
    "--kind",
    type=click.Choice(list(vocab.CASE_KINDS)),
    default="hazard",
    show_default=True,
    help="Kind of the rows that do not say.",
)
@click.option("--source", default=None, help="Provenance, 'real: ...' (default: the file name).")
@click.pass_context
@handle_errors
def cases_import(
    ctx: click.Context, path: Path, crs_name: str | None, kind: str, source: str | None
) -> None:
    """Import a register of cases (CSV or XLSX), all-or-nothing."""
    from geomap import db
    from geomap.ops import audit, registers, rules, utc_now

    settings = _settings(ctx)
    with db.session_scope(settings) as session:
        report = registers.import_file(
            session,
            path,
            actor=audit.Actor.cli(),
            now=utc_now(),
            rules=rules.rules(settings.dispatch_rules),
            crs_name=crs_name,
            default_kind=kind,
            source=source,
        )
    click.echo(
        f"imported {report.rows:,} cases from {path} (coordinates read as {report.crs}; "
        f"ids {report.case_ids[0]}-{report.case_ids[-1]})"
    )
    sys.stdout.flush()

"""``geomap seed`` and ``geomap provenance``: the default dataset and the files that describe it."""

from __future__ import annotations

import sys

import click

from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings


@click.command("seed")
@click.argument("dataset", type=click.Choice(["nanchang"]))
@click.option("--seed", "seed_value", type=int, default=None, help="Random seed (default: fixed).")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database already holds grids.")
@click.pass_context
@handle_errors
def seed(ctx: click.Context, dataset: str, seed_value: int | None, if_empty: bool) -> None:
    """Generate the default dataset (real where real data exists) and load it.

    Replaces every table's content, all-or-nothing.
    """
    import sqlalchemy as sa
    from tqdm import tqdm

    from geomap import db as dbmod
    from geomap import storage
    from geomap.analysis import inventory
    from geomap.ops import audit, escalation, utc_now
    from geomap.seed import nanchang

    # As the schema owner: replacing the dataset truncates every table and moves the
    # sequences, which the service's role may not do.
    settings = dbmod.as_owner(_settings(ctx))
    with dbmod.session_scope(settings) as session:
        if if_empty and inventory.counts(session)["grids"] > 0:
            click.echo("the database already holds a dataset; nothing to do (--if-empty)")
            return
    kwargs = {} if seed_value is None else {"seed": seed_value}
    with tqdm(desc=f"generating {dataset}", unit="step", file=sys.stderr) as bar:

        def step(name: str, rows: int) -> None:
            bar.set_postfix_str(f"{name}: {rows:,}")
            bar.update(1)

        frames = nanchang.generate(settings.data_dir / "nanchang", progress=step, **kwargs)
    with (
        dbmod.session_scope(settings) as session,
        tqdm(total=len(frames), desc="loading", unit="table", file=sys.stderr) as bar,
    ):

        def loaded(name: str, rows: int) -> None:
            bar.set_postfix_str(f"{name}: {rows:,}")
            bar.update(1)

        storage.replace_all(session.connection(), frames, progress=loaded)
        counts = inventory.counts(session)
        escalation.ensure_partitions(session, utc_now())  # position history months ahead
        change = {"dataset": dataset, "seed": seed_value, "counts": counts}
        audit.record(session, audit.Actor.cli(), "dataset.replace", at=utc_now(), changes=change)
    with dbmod.session_scope(settings) as session:
        session.execute(sa.text("ANALYZE"))  # fresh planner statistics for the new rows
    click.echo(", ".join(f"{k} {v:,}" for k, v in counts.items()))


@click.command("provenance")
@click.option("--check", is_flag=True, help="Only compare; exit 1 when a file is out of date.")
@click.option("--seed", "seed_value", type=int, default=None, help="Random seed (default: fixed).")
@click.pass_context
@handle_errors
def provenance_cmd(ctx: click.Context, check: bool, seed_value: int | None) -> None:
    """Write data/nanchang/PROVENANCE.md and community_matching.csv from the dataset.

    Both are generated from the default dataset (what is real, what synthetic, row counts,
    credits; how each real community was attached to a township polygon). With --check,
    say which file differs instead of writing.
    """
    from geomap.seed import nanchang
    from geomap.seed import provenance as seed_provenance

    settings = _settings(ctx)
    seed = nanchang.DEFAULT_SEED if seed_value is None else seed_value
    stale = []
    for path, text in seed_provenance.outputs(settings.data_dir / "nanchang", seed).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            click.echo(f"{path}: up to date")
        elif check:
            stale.append(path)
            click.echo(f"{path}: out of date (run: geomap provenance)")
        else:
            path.write_text(text, encoding="utf-8")
            click.echo(f"{path}: written")
    if stale:
        sys.exit(1)

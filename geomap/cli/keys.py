"""``geomap keys``: API keys (hashed at rest, with a role) and embed tokens."""

from __future__ import annotations

import click

from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings


@click.group()
def keys() -> None:
    """API keys (hashed at rest, with a role) and embed tokens."""


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(["commander", "planner", "viewer"]))
@click.option("--name", required=True, help="Who or what uses the key.")
@click.pass_context
@handle_errors
def keys_create(ctx: click.Context, role: str, name: str) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    from geomap import auth
    from geomap import db as dbmod
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(_settings(ctx)) as session:
        key, prefix = auth.create_key(session.connection(), name, role)
        audit.record(session, audit.Actor.cli(), "key.create", at=utc_now(),
                     changes={"name": name.strip(), "role": role, "prefix": prefix})  # fmt: skip
    click.echo(key)
    click.echo(f"({role} key {prefix} for {name}; keep it safe, it is not shown again)",
               err=True)  # fmt: skip


@keys.command("list")
@click.pass_context
@handle_errors
def keys_list(ctx: click.Context) -> None:
    """List keys and embed tokens (names, roles or portals, ids, dates; never the secrets)."""
    import datetime as dt

    from geomap import auth
    from geomap import db as dbmod

    now = dt.datetime.now(dt.UTC)
    with dbmod.session_scope(_settings(ctx)) as session:
        for row in auth.list_keys(session.connection()):
            state = "revoked" if row["revoked_at"] else "active"
            click.echo(f"{row['prefix']}  {row['role']:<9}  {state:<7}  {row['name']}")
        for row in auth.list_embed_tokens(session.connection()):
            state = (
                "revoked" if row["revoked_at"] else "expired" if row["expires_at"] < now
                else "active"
            )  # fmt: skip
            click.echo(
                f"{row['id']}  {'embed':<9}  {state:<7}  {row['name']}  "
                f"(for {row['origin']}: {','.join(row['layers'])}; "
                f"until {row['expires_at']:%Y-%m-%d})"
            )


@keys.command("revoke")
@click.argument("prefix")
@click.pass_context
@handle_errors
def keys_revoke(ctx: click.Context, prefix: str) -> None:
    """Revoke the key with this prefix (the 8 characters after `gm_`) or the embed token
    with this id (see `geomap keys list`)."""
    from geomap import auth
    from geomap import db as dbmod
    from geomap.errors import NotFound
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(_settings(ctx)) as session:
        try:
            closed = auth.revoke_key(session.connection(), prefix)
            what, changes = "key", {"prefix": prefix, "sessions_closed": closed}
        except NotFound:  # not a key: an embed token, or nothing (revoke says which)
            what, changes = auth.revoke(session.connection(), prefix), {"prefix": prefix}
        audit.record(session, audit.Actor.cli(), f"{what.replace(' ', '_')}.revoke", at=utc_now(),
                     changes=changes)  # fmt: skip
    click.echo(f"revoked {what} {prefix}")


@keys.command("embed")
@click.option("--layers", "layer_list", required=True,
              help="Comma-separated layers the token opens, e.g. grids,teams,circles.")
@click.option("--origin", required=True, help="Origin of the portal, e.g. https://portal.example")
@click.option("--days", type=float, default=30, show_default=True, help="Validity.")
@click.option("--name", default="", help="Which portal or page it is for (shown in `keys list`).")
@click.pass_context
@handle_errors
def keys_embed(ctx: click.Context, layer_list: str, origin: str, days: float, name: str) -> None:
    """Create an embed token: read-only, those layers, frames of that portal, so many days."""
    from geomap import auth, layers
    from geomap import db as dbmod

    catalog = layers.load_catalog()
    wanted = [x.strip() for x in layer_list.split(",") if x.strip()]
    for layer_id in wanted:
        layers.get_layer(catalog, layer_id)
    settings = _settings(ctx)
    from geomap.ops import audit, utc_now

    with dbmod.session_scope(settings) as session:
        token, token_id = auth.create_embed_token(
            session.connection(), auth.secret_key(settings), wanted, origin, days, name
        )
        audit.record(session, audit.Actor.cli(), "embed_token.create", at=utc_now(),
                     changes={"id": token_id, "origin": origin, "layers": wanted,
                              "days": days})  # fmt: skip
    click.echo(token)
    click.echo(f"(embed token {token_id} for {origin}; revoke it with "
               f"`geomap keys revoke {token_id}`)", err=True)  # fmt: skip

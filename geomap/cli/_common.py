"""What every click command of geomap shares: the settings, errors as CLI messages, JSON out."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from geomap import config
from geomap.errors import ConfigError, GeomapError


def settings(ctx: click.Context) -> config.Settings:
    """The settings of this invocation, read once and kept on the root context."""
    return ctx.find_root().ensure_object(dict).setdefault("settings", config.load())


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print GeomapError messages as CLI errors (exit 1; 2 for configuration)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GeomapError as exc:
            click.secho(f"error: {exc.message}", fg="red", err=True)
            sys.exit(2 if isinstance(exc, ConfigError) else 1)

    return wrapper


def echo_json(value: Any, *, indent: int = 2) -> None:
    """Print an answer as JSON on stdout.

    Parameters
    ----------
    value : Any
        Plain data; values JSON lacks (dates, decimals) are written as their ``str``.
    indent : int, default 2
        Spaces per level.
    """
    click.echo(json.dumps(value, ensure_ascii=False, indent=indent, default=str))

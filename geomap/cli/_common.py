"""What every click command of geomap shares: the settings, and errors as CLI messages."""

from __future__ import annotations

import functools
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

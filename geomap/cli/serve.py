"""``geomap serve``: the battle map and the API, under gunicorn or Flask's development server."""

from __future__ import annotations

import sys

import click

from geomap.cli._common import handle_errors
from geomap.cli._common import settings as _settings


@click.command("serve")
@click.option("--host", default=None, help="Bind address (default: GEOMAP_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: GEOMAP_PORT).")
@click.option("--workers", type=int, default=None,
              help="gunicorn worker processes (default: GEOMAP_WORKERS); 0: Flask's "
                   "development server.")  # fmt: skip
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the battle map and the API (gunicorn threaded workers, see geomap.serving)."""
    import os

    from geomap import auth

    settings = _settings(ctx)
    host = host or settings.host
    port = port or settings.port
    workers = settings.workers if workers is None else workers
    auth.check_bind(host, settings)
    if workers > 0:
        click.echo(f"serving on http://{host}:{port} ({workers} workers)", err=True)
        # The settings module geomap.serving reads them from the environment.
        env = {**os.environ, "GEOMAP_HOST": host, "GEOMAP_PORT": str(port),
               "GEOMAP_WORKERS": str(workers)}  # fmt: skip
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "gunicorn", "-c", "python:geomap.serving", "geomap.wsgi:app"],
            env,
        )
    from geomap import create_app
    from geomap.api._ops import start_loop

    app = create_app({"host": host, "port": port})
    start_loop(app)  # escalations recorded as they fall due (GEOMAP_ESCALATION_INTERVAL_S)
    click.echo(f"serving on http://{host}:{port}", err=True)
    app.run(host=host, port=port, threaded=True)

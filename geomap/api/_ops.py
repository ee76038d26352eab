"""What the command-loop views share: the clock, the caller as an audit actor, the rules,
and the background escalation loop of a serving process."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app

from geomap import config, db
from geomap.ops import audit, escalation, rules, utc_now
from geomap.web import access

CLOCK = "geomap_clock"
LOOP = "geomap_escalation_loop"


def now() -> dt.datetime:
    """The app's clock (tests set ``app.extensions["geomap_clock"]`` to one of theirs)."""
    return current_app.extensions.get(CLOCK, utc_now)()


def actor() -> audit.Actor:
    """The caller of this request, as the audit log names it."""
    return audit.Actor.of(access.current())


def settings() -> config.Settings:
    return current_app.config["GEOMAP"]


def dispatch_rules() -> rules.Rules:
    return rules.rules(settings().dispatch_rules)


def may_see_personal() -> bool:
    return access.current().may("personal")


def start_loop(app: Any) -> escalation.Loop | None:
    """Start the serving process's escalation loop (``GEOMAP_ESCALATION_INTERVAL_S``)."""
    interval = app.config["GEOMAP"].escalation_interval_s
    if interval <= 0 or LOOP in app.extensions:
        return app.extensions.get(LOOP)
    engine = db.get_engine(app.config["GEOMAP"])
    loop = escalation.Loop(engine, lambda: app.extensions.get(CLOCK, utc_now)(), interval)
    app.extensions[LOOP] = loop.start()
    return loop

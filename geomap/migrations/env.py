"""Alembic environment: runs the migrations against the URL in the Alembic config.

``geomap.db.alembic_config`` sets that URL from the settings; there is no alembic.ini.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

config = context.config


def run_migrations_online() -> None:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"), poolclass=sa.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("geomap migrations run online only (they need PostGIS)")
run_migrations_online()

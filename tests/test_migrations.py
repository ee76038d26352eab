"""The schema's only writer is Alembic: up, down, up again, and models agree with it."""

import sqlalchemy as sa

from geomap import config, db, models
from tests.conftest import owner_url


def _tables(url: str) -> set[str]:
    """Tables and materialized views (the streets layer is one)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        inspector = sa.inspect(engine)
        names = set(inspector.get_table_names()) | set(inspector.get_materialized_view_names())
        return names - {"spatial_ref_sys", "alembic_version"}
    finally:
        engine.dispose()


def test_migrations_up_down_up(db_url):
    # Migrations run as the schema owner; db_url is the service's role.
    settings = config.load({"database_url": db_url, "migrate_url": owner_url(db_url)}, environ={})
    assert _tables(db_url) == set(models.metadata.tables)
    db.migrate(settings, "base", down=True)
    assert _tables(db_url) == set()
    db.migrate(settings)
    assert _tables(db_url) == set(models.metadata.tables)


def test_models_match_the_migrated_columns(db_url):
    engine = sa.create_engine(db_url, poolclass=sa.NullPool)
    inspector = sa.inspect(engine)
    for name, table in models.metadata.tables.items():
        reflected = {c["name"]: c for c in inspector.get_columns(name)}
        assert list(reflected) == [c.name for c in table.columns], name
        for column in table.columns:
            assert reflected[column.name]["nullable"] == column.nullable, (name, column.name)
    engine.dispose()


def test_constraints_reject_nonsense(connection):
    bad_rows = [
        # unknown kind
        "INSERT INTO stations (name, kind, geom, source) VALUES "
        "('x', 'castle', ST_GeomFromText('POINT(115.9 28.7)', 4326), 'real: test')",
        # provenance must say real or synthetic
        "INSERT INTO sites (name, kind, geom, source) VALUES "
        "('x', 'memorial_hall', ST_GeomFromText('POINT(115.9 28.7)', 4326), 'somewhere')",
        # negative headcount
        "INSERT INTO teams (code, name, kind, headcount, geom, source) VALUES "
        "('t1', 'x', 'medical', -3, ST_GeomFromText('POINT(115.9 28.7)', 4326), 'real: t')",
        # self-intersecting polygon (a bow tie)
        "INSERT INTO grids (code, name, geom, source) VALUES ('g1', 'x', "
        "ST_Multi(ST_GeomFromText('POLYGON((0 0,1 1,1 0,0 1,0 0))', 4326)), 'real: t')",
        # wrong SRID
        "INSERT INTO stations (name, kind, geom, source) VALUES "
        "('x', 'red_station', ST_GeomFromText('POINT(115.9 28.7)', 3857), 'real: t')",
    ]
    for statement in bad_rows:
        savepoint = connection.begin_nested()
        try:
            connection.execute(sa.text(statement))
        except sa.exc.DBAPIError:
            savepoint.rollback()
        else:  # pragma: no cover - the assertion below reports it
            savepoint.rollback()
            raise AssertionError(f"accepted: {statement}")

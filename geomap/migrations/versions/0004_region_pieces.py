"""Region pieces: region outlines cut into small indexed pieces, kept in sync by trigger.

Revision ID: 0004_region_pieces
Revises: 0003_api_keys
Create Date: 2026-11-23

Testing a point against a whole city outline (thousands of vertices) took 1.6 ms per
nearest-teams request. Cut into pieces of at most 64 vertices behind a GiST index, the
same test reads one or two small pieces. The pieces follow their region through a
trigger, whatever writes the regions.
"""

from __future__ import annotations

from alembic import op

revision = "0004_region_pieces"
down_revision = "0003_api_keys"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE region_pieces (
    id    bigserial PRIMARY KEY,
    code  text NOT NULL REFERENCES regions (code) ON DELETE CASCADE,
    level text NOT NULL,
    geom  geometry(Polygon, 4326) NOT NULL
);
CREATE INDEX region_pieces_geom_gist ON region_pieces USING gist (geom);
CREATE INDEX region_pieces_code_idx ON region_pieces (code);
CREATE INDEX regions_level_idx ON regions (level);

CREATE FUNCTION region_pieces_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM region_pieces WHERE code = NEW.code;
    INSERT INTO region_pieces (code, level, geom)
    SELECT NEW.code, NEW.level, (ST_Dump(ST_Subdivide(NEW.geom, 64))).geom;
    RETURN NULL;
END $$;

CREATE TRIGGER regions_refresh_pieces
    AFTER INSERT OR UPDATE OF geom, level ON regions
    FOR EACH ROW EXECUTE FUNCTION region_pieces_refresh();

INSERT INTO region_pieces (code, level, geom)
SELECT code, level, (ST_Dump(ST_Subdivide(geom, 64))).geom FROM regions;
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS regions_refresh_pieces ON regions;
DROP FUNCTION IF EXISTS region_pieces_refresh();
DROP TABLE IF EXISTS region_pieces;
DROP INDEX IF EXISTS regions_level_idx;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

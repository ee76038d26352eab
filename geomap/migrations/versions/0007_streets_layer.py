"""Streets: the road network merged into a light map layer, kept in sync by trigger.

Revision ID: 0007_streets_layer
Revises: 0006_embed_tokens
Create Date: 2026-11-25

``road_edges`` holds tens of thousands of short segments (the real network split where
synthetic lanes meet it, the lanes, the synthetic roads around it): far too many to draw
one by one on a map. ``streets`` keeps every real road and the synthetic main roads
(trunk to tertiary; the synthetic local streets and walking lanes, two thirds of the
vertices, stay in the routing tables only) and merges them by road class and provenance
(the exact ``source`` label) in cells of 0.05 degrees (about 5 km): the map and the
feature service serve about a thousand lines, major roads first (``rank``), each saying
whether it is real. A statement trigger refreshes it whenever the network changes, whatever writes
it (an OSM import, ``geomap seed``, a manual edit); the refresh locks the view until the
writing transaction ends, so readers of this layer wait for an import to finish.
"""

from __future__ import annotations

from alembic import op

revision = "0007_streets_layer"
down_revision = "0006_embed_tokens"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE MATERIALIZED VIEW streets AS
WITH classed AS (
    SELECT road_class, source, geom, length_m,
           CASE WHEN source LIKE 'real:%' THEN 'real' ELSE 'synthetic' END AS provenance,
           CASE road_class
               WHEN 'motorway' THEN 1 WHEN 'trunk' THEN 1 WHEN 'primary' THEN 2
               WHEN 'secondary' THEN 3 WHEN 'tertiary' THEN 4 ELSE 5 END AS rank,
           floor(ST_X(ST_StartPoint(geom)) / 0.05)::int AS cell_x,
           floor(ST_Y(ST_StartPoint(geom)) / 0.05)::int AS cell_y
    FROM road_edges
    WHERE source LIKE 'real:%'
       OR road_class IN ('motorway', 'trunk', 'primary', 'secondary', 'tertiary')
)
SELECT (row_number() OVER (ORDER BY rank, provenance, road_class, source, cell_y, cell_x))::int
           AS id,
       road_class,
       provenance,
       rank,
       (sum(length_m) / 1000.0)::float8 AS length_km,
       count(*)::int AS edges,
       source,
       ST_Multi(ST_LineMerge(ST_Collect(geom)))::geometry(MultiLineString, 4326) AS geom
FROM classed
GROUP BY rank, provenance, road_class, source, cell_y, cell_x;

CREATE UNIQUE INDEX streets_id_idx ON streets (id);
CREATE INDEX streets_geom_gist ON streets USING gist (geom);

CREATE FUNCTION streets_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    REFRESH MATERIALIZED VIEW streets;
    RETURN NULL;
END $$;

CREATE TRIGGER road_edges_refresh_streets
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road_edges
    FOR EACH STATEMENT EXECUTE FUNCTION streets_refresh();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS road_edges_refresh_streets ON road_edges;
DROP FUNCTION IF EXISTS streets_refresh();
DROP MATERIALIZED VIEW IF EXISTS streets;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

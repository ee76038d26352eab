"""Maps: data versions for stations and sites, so the maps' payloads are kept until they change.

Revision ID: 0010_maps
Revises: 0009_planning
Create Date: 2026-11-25

The map pages load each layer as one document (``/map/data/<layer>``); building it takes
0.1-0.3 s per layer, so the service keeps it until the layer's data changes
(:mod:`geomap.analysis.versions`). Grids, regions and the road network already bump their
row of ``data_versions`` (migration 0005); this adds the same statement triggers to the
stations and sites, which are written in bulk (imports, seeds), never row by row in live
operations. Teams, which move all day, keep their per-row ``sync_xid`` instead.
"""

from __future__ import annotations

from alembic import op

revision = "0010_maps"
down_revision = "0009_planning"
branch_labels = None
depends_on = None

UPGRADE = """
INSERT INTO data_versions (name, version)
SELECT name, nextval('data_version_seq')
FROM (VALUES ('stations'), ('sites')) v(name)
ON CONFLICT (name) DO NOTHING;

CREATE TRIGGER stations_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON stations
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_bump('stations');
CREATE TRIGGER sites_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION data_versions_bump('sites');
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS sites_version ON sites;
DROP TRIGGER IF EXISTS stations_version ON stations;
DELETE FROM data_versions WHERE name IN ('stations', 'sites');
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

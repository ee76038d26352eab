"""Coverage of the 4,418 grids by the ~2,000 party-mass service centres within 1,000 m.

Baseline, measured in the same run: geopandas the usual way (read grids and stations,
project to UTM 50N, buffer, dissolve, overlay, nearest join).
"""

from __future__ import annotations

import geopandas as gpd

from bench._env import line, p50, settings_for, timings_ms
from geomap import db
from geomap.analysis import coverage

CENTRES = ["centre_district", "centre_township", "centre_community"]


def run(url: str) -> None:
    engine = db.get_engine(settings_for(url))
    query = coverage.make_query(of="stations", kinds=CENTRES, within_m=1000, level="grid")
    with engine.connect() as conn:
        answer = coverage.coverage(conn, query)
        ours = timings_ms(lambda: coverage.coverage(conn, query), repeat=5, warmup=1)

    def geopandas_way() -> float:
        with engine.connect() as conn:
            grids = gpd.read_postgis("SELECT code, population, geom FROM grids", conn,
                                     geom_col="geom").to_crs(32650)  # fmt: skip
            stations = gpd.read_postgis(
                "SELECT id, geom FROM stations WHERE kind = ANY(%(k)s)", conn,
                geom_col="geom", params={"k": CENTRES}).to_crs(32650)  # fmt: skip
        discs = gpd.GeoDataFrame(geometry=stations.buffer(1000, 8), crs=32650).dissolve()
        covered = gpd.overlay(grids, discs, how="intersection")
        covered["covered_m2"] = covered.area
        nearest = gpd.sjoin_nearest(grids.set_geometry(grids.representative_point()), stations,
                                    distance_col="nearest_m")  # fmt: skip
        return float(covered["covered_m2"].sum() + nearest["nearest_m"].sum())

    theirs = timings_ms(geopandas_way, repeat=2, warmup=0)
    summary = answer["summary"]
    line(f"coverage of {summary['units']:,} grids by {_count(engine):,} centres within "
         f"1,000 m (covered share {summary['covered_share']:.1%})", p50(ours), "ms",
         p50(theirs), "geopandas buffer/dissolve/overlay", "≤ 500 ms")  # fmt: skip


def _count(engine) -> int:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT count(*) FROM stations WHERE kind = ANY(:k)"), {"k": CENTRES}
        ).scalar()

"""The tables, as SQLAlchemy Core objects with GeoAlchemy2 geometry columns.

The schema's only writer is Alembic (``geomap/migrations``); these objects describe what the
migrations build, for reading and bulk writing. ``tests/test_migrations.py`` fails when the
two disagree.

Conventions
-----------
* Every geometry is stored in EPSG:4326 (WGS84, lon/lat); distances are measured with
  ``geography`` casts (metres). Point tables also carry a GiST index on ``geom::geography``
  so that ``ORDER BY geom::geography <-> :pt`` ranks in metres with the index.
* Every table has ``source``: ``real: <where from>`` or ``synthetic: <generator>``.
* ``road_edges`` names its topology columns ``source_node``/``target_node`` (``source`` is
  the provenance); SQL for pgRouting aliases them to ``source``/``target``.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.types import UserDefinedType

SRID = 4326


class XID8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id (``xid8``), read as text."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


# Reflection (tests/test_migrations.py, alembic autogenerate) then knows the type too.
postgresql_base.ischema_names.setdefault("xid8", XID8)

metadata = MetaData()


def _geom(kind: str, nullable: bool = False, name: str = "geom") -> Column:
    # spatial_index=False: the migrations create the GiST indexes explicitly, by name.
    return Column(name, Geometry(kind, srid=SRID, spatial_index=False), nullable=nullable)


def _source() -> Column:
    return Column("source", Text, nullable=False)


regions = Table(
    "regions",
    metadata,
    Column("code", Text, primary_key=True),
    Column("parent_code", Text, ForeignKey("regions.code"), nullable=True),
    Column("level", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("name_en", Text),
    _geom("MULTIPOLYGON"),
    _source(),
)

grids = Table(
    "grids",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("community_code", Text, ForeignKey("regions.code"), nullable=True),
    Column("population", Integer, nullable=False),
    Column("households", Integer, nullable=False),
    _geom("MULTIPOLYGON"),
    _source(),
)

stations = Table(
    "stations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", Text, unique=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("region_code", Text, ForeignKey("regions.code")),
    Column("grid_code", Text, ForeignKey("grids.code")),
    Column("address", Text),
    _geom("POINT"),
    _source(),
)

sites = Table(
    "sites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", Text, unique=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("region_code", Text, ForeignKey("regions.code")),
    Column("address", Text),
    Column("coord_quality", Text),
    _geom("POINT"),
    _source(),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("unit", Text),
    Column("headcount", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("capabilities", ARRAY(Text), nullable=False),
    Column("home_grid_code", Text, ForeignKey("grids.code")),
    Column("base_station_id", Integer, ForeignKey("stations.id")),
    _geom("POINT", nullable=True, name="base_geom"),
    _geom("POINT"),
    Column("position_at", DateTime(timezone=True)),
    Column("leader_name", Text),
    Column("leader_phone", Text),
    _source(),
    # The transaction that last wrote the row (stamped by trigger): the routing engine's
    # team mirror fetches only rows written since its previous look (0005_routing_sync).
    Column("sync_xid", XID8, nullable=False, info={"server_set": True}),
)

team_positions = Table(
    "team_positions",
    metadata,
    # Partitioned by month of recorded_at (0011_cases): the key is (id, recorded_at).
    Column("id", BigInteger, primary_key=True, info={"server_set": True}),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("recorded_at", DateTime(timezone=True), primary_key=True),
    _geom("POINT"),
    Column("accuracy_m", Float),
    Column("received_at", DateTime(timezone=True), nullable=False),
    _source(),
)

cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text),
    Column("address", Text),
    Column("status", Text, nullable=False),
    _geom("POINT"),
    # How the unit chain was found: the smallest unit holding the point, else the nearest
    # grid ("nearest_grid"), else nothing ("none").
    Column("located", Text, nullable=False),
    Column("grid_code", Text),
    Column("community_code", Text),
    Column("township_code", Text),
    Column("district_code", Text),
    # The escalation level as last materialized; reads compute it from the clock.
    Column("level", Text, nullable=False),
    Column("level_since", DateTime(timezone=True), nullable=False),
    Column("escalate_at", DateTime(timezone=True)),
    Column("accept_minutes", ARRAY(Integer), nullable=False),
    Column("resolve_by", DateTime(timezone=True), nullable=False),
    Column("reporter_name", Text),
    Column("reporter_phone", Text),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("resolved_by", Text),
    Column("resolved_key_id", Integer),
    Column("created_by", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    _source(),
)

case_escalations = Table(
    "case_escalations",
    metadata,
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("level", Text, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

dispatches = Table(
    "dispatches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("team_id", Integer, ForeignKey("teams.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Column("en_route_at", DateTime(timezone=True)),
    Column("on_scene_at", DateTime(timezone=True)),
    Column("released_at", DateTime(timezone=True)),
    Column("eta_min", Float),
    _geom("POINT", nullable=True, name="origin"),
    Column("assigned_by", Text, nullable=False),
    Column("note", Text),
    _source(),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("personal", JSONB),
    Column("case_id", Integer),
    Column("team_id", Integer),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("key_id", Integer),
    Column("key_name", Text, nullable=False),
    Column("key_role", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("case_id", Integer),
    Column("dispatch_id", Integer),
    Column("team_id", Integer),
    Column("changes", JSONB, nullable=False),
)

road_nodes = Table(
    "road_nodes",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("osm_id", BigInteger),
    _geom("POINT"),
    _source(),
)

road_edges = Table(
    "road_edges",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("source_node", BigInteger, ForeignKey("road_nodes.id"), nullable=False),
    Column("target_node", BigInteger, ForeignKey("road_nodes.id"), nullable=False),
    Column("road_class", Text, nullable=False),
    Column("name", Text),
    Column("length_m", Float, nullable=False),
    # Travel costs in seconds; a negative cost means "not traversable that way".
    Column("walk_s", Float, nullable=False),
    Column("walk_reverse_s", Float, nullable=False),
    Column("drive_s", Float, nullable=False),
    Column("drive_reverse_s", Float, nullable=False),
    Column("is_bridge", Boolean, nullable=False),
    Column("osm_id", BigInteger),
    _geom("LINESTRING"),
    _source(),
)

circles = Table(
    "circles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("venue_table", Text, nullable=False),
    Column("venue_id", Integer, nullable=False),
    Column("mode", Text, nullable=False),
    Column("budget_s", Float, nullable=False),
    Column("walk_speed_kmh", Float, nullable=False),
    Column("access_m", Float, nullable=False),
    Column("start_node", BigInteger),
    Column("reached_edges", Integer, nullable=False),
    Column("area_km2", Float, nullable=False),
    _geom("MULTIPOLYGON", nullable=True),
    Column("built_at", DateTime(timezone=True), nullable=False),
    _source(),
    Column("start_edge", BigInteger),
    Column("start_fraction", Float),
    Column("population", Float),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("prefix", Text, nullable=False, unique=True),
    Column("key_sha256", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
)

embed_tokens = Table(
    "embed_tokens",
    metadata,
    Column("id", Text, primary_key=True),  # 8 hex characters, like key prefixes
    Column("name", Text, nullable=False),
    Column("origin", Text, nullable=False),  # the portal that may frame it
    Column("layers", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

sessions = Table(
    "sessions",  # sign-in sessions of the map pages (0012_sessions); the token's hash only
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("token_sha256", Text, nullable=False, unique=True),
    Column("key_id", Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
)

call_attempts = Table(
    "call_attempts",  # accepted one-click calls, counted for limits and floods (0015)
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column(
        "station_id", Integer, ForeignKey("stations.id", ondelete="CASCADE"), nullable=False
    ),
    Column("client", Text, nullable=False),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("opened", Boolean, nullable=False),
    Column("text", Text),
    Column("phone", Text),
    Column("called_at", DateTime(timezone=True), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",  # first answers to keyed requests, per caller, for 24 h (0015)
    metadata,
    Column("scope", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_sha256", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

region_pieces = Table(
    "region_pieces",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("code", Text, ForeignKey("regions.code", ondelete="CASCADE"), nullable=False),
    Column("level", Text, nullable=False),
    _geom("POLYGON"),
)

data_versions = Table(
    "data_versions",
    metadata,
    Column("name", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("changed_xid", XID8),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

#: A materialized view (migration 0007), refreshed by trigger when ``road_edges`` changes:
#: the road network merged into lines by class, provenance and 0.05-degree cell, for the
#: map's streets layer. Read only; every column is nullable, as PostgreSQL reports it.
streets = Table(
    "streets",
    metadata,
    Column("id", Integer, primary_key=True, nullable=True),
    Column("road_class", Text),
    Column("provenance", Text),
    Column("rank", Integer),
    Column("length_km", Float),
    Column("edges", Integer),
    Column("source", Text),
    Column("geom", Geometry("MULTILINESTRING", srid=SRID, spatial_index=False)),
    info={"materialized_view": True},
)

# Planning (migration 0009_planning): kept reach sets, scenarios, jobs.
coverage_samples = Table(
    "coverage_samples",
    metadata,
    Column("key", Text, primary_key=True),
    Column("srid", Integer, nullable=False),
    Column("grid_codes", ARRAY(Text), nullable=False),
    Column("area_m2", LargeBinary, nullable=False),
    Column("inner_xy", LargeBinary, nullable=False),
    Column("point_grid", LargeBinary, nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False),
)

venue_reach = Table(
    "venue_reach",
    metadata,
    Column("key", Text, primary_key=True),
    Column("mode", Text, primary_key=True),
    Column("budget_s", Float, primary_key=True),
    Column("walk_speed_kmh", Float, primary_key=True),
    Column("lon", Float, primary_key=True),
    Column("lat", Float, primary_key=True),
    Column("points", LargeBinary, nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False),
)

scenarios = Table(
    "scenarios",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("venue_set", JSONB, nullable=False),
    Column("added", JSONB, nullable=False),
    Column("removed", JSONB, nullable=False),
    Column("origin", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

plan_jobs = Table(
    "plan_jobs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("progress", Float, nullable=False),
    Column("message", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("result", JSONB),
    Column("error", JSONB),
    Column("cancel_requested", Boolean, nullable=False),
    Column("worker", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("input", JSONB),
    Column("actor", JSONB),
    Column("lease_until", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False),
)

#: Tables in the order they are loaded (parents before children).
LOAD_ORDER = (
    "regions",
    "grids",
    "stations",
    "sites",
    "teams",
    "team_positions",
    "cases",
    "case_escalations",
    "dispatches",
    "road_nodes",
    "road_edges",
)

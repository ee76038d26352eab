"""Closed vocabularies of the domain, declared once.

Each vocabulary maps a stored code (ASCII, stable, used in the database, the API and the
layer catalog) to its Chinese and English labels. The database enforces the same lists
with CHECK constraints (see the migrations); importers, the API and the maps read them
from here.
"""

from __future__ import annotations

from typing import NamedTuple


class Term(NamedTuple):
    """One entry of a vocabulary: the stored code and its labels."""

    code: str
    zh: str
    en: str


def _vocab(*terms: Term) -> dict[str, Term]:
    return {t.code: t for t in terms}


#: Levels of the admin chain stored in ``regions`` (grids have their own table).
REGION_LEVELS = _vocab(
    Term("city", "市", "city"),
    Term("district", "区/县", "district"),
    Term("township", "街道/乡镇", "township"),
    Term("community", "社区/村", "community"),
)

#: Kinds of service station (党群服务阵地), from district centres down to neighbourhood rooms.
STATION_KINDS = _vocab(
    Term("centre_district", "区级党群服务中心", "district party-mass service centre"),
    Term("centre_township", "街道(乡镇)党群服务中心", "township party-mass service centre"),
    Term("centre_community", "社区(村)党群服务中心", "community party-mass service centre"),
    Term("service_complex", "党群服务综合体", "party-mass service complex"),
    Term("red_station", "红色驿站", "red station"),
    Term("grid_station", "网格党群服务站", "grid party-mass service station"),
    Term("grid_lookout", "网格瞭望站", "grid lookout"),
    Term("party_post", "党群连心岗", "party-mass post"),
    Term("branch_room", "小区党支部活动室", "compound party-branch room"),
    Term("red_cabin", "红色小屋", "red cabin"),
    Term("love_station", "爱心驿站", "love station"),
    Term("discussion_pavilion", "议事亭", "discussion pavilion"),
    Term("elderly_canteen", "益老食堂", "elderly canteen"),
    Term("book_house", "智慧书屋", "smart book house"),
)

#: Kinds of red culture site (红色文化资源).
SITE_KINDS = _vocab(
    Term("memorial_hall", "纪念馆", "memorial hall"),
    Term("monument", "纪念碑/塔", "monument"),
    Term("revolutionary_site", "革命旧址", "revolutionary site"),
    Term("red_village", "红色名村", "red famous village"),
    Term("education_base", "红色教育基地", "red education base"),
)

#: How well a site's coordinates are known (see data/nanchang/PROVENANCE.md).
COORD_QUALITIES = _vocab(
    Term("verified", "已核实", "verified by two independent sources"),
    Term("approximate", "近似", "placed from the street address (error up to ~1 km)"),
)

#: Kinds of team (units that move).
TEAM_KINDS = _vocab(
    Term("medical", "医护人员", "medical staff"),
    Term("organ_party", "机关党员", "party members of government organs"),
    Term("youth", "青年", "youth"),
    Term("veteran", "退役军人", "veterans"),
    Term("steward", "洪城红管家", "grid steward team"),
    Term("rider", "洪城红骑士团", "courier rider team"),
    Term("red_flag_car", "党员红旗车", "party-member ride-hailing car"),
    Term("service", "红小二服务队", "service team"),
)

#: The emergency kinds among TEAM_KINDS (the four "洪城红" emergency teams).
EMERGENCY_TEAM_KINDS = ("medical", "organ_party", "youth", "veteran")

TEAM_STATUSES = _vocab(
    Term("available", "待命", "available"),
    Term("deployed", "出勤", "deployed"),
    Term("off_duty", "休整", "off duty"),
)

#: Kinds of case (事件): what the command loop handles, from report to closure.
CASE_KINDS = _vocab(
    Term("incident", "突发事件", "incident"),
    Term("hazard", "安全隐患", "hazard"),
    Term("request", "群众诉求", "residents' request"),
)

CASE_SEVERITIES = _vocab(
    Term("low", "一般", "low"),
    Term("medium", "较大", "medium"),
    Term("high", "重大", "high"),
    Term("critical", "特别重大", "critical"),
)

#: A case's lifecycle (see ``geomap.ops.casesteps.STEPS`` for the moves between them).
CASE_STATUSES = _vocab(
    Term("reported", "已上报", "reported"),
    Term("accepted", "已受理", "accepted"),
    Term("dispatched", "已派遣", "dispatched"),
    Term("on_scene", "已到场", "on scene"),
    Term("resolved", "已处置", "resolved"),
    Term("closed", "已办结", "closed"),
    Term("cancelled", "已撤销", "cancelled"),
)

#: The chain a case climbs when nobody accepts it in time, lowest first.
CASE_LEVELS = _vocab(
    Term("grid", "网格", "grid"),
    Term("community", "社区", "community"),
    Term("township", "街道/乡镇", "township"),
    Term("district", "区", "district"),
)

#: A team's part in a case (see ``geomap.ops.dispatch.STEPS``).
DISPATCH_STATUSES = _vocab(
    Term("assigned", "已派遣", "assigned"),
    Term("en_route", "在途", "en route"),
    Term("on_scene", "已到场", "on scene"),
    Term("released", "已撤回", "released"),
)

#: Road classes of the routable network, with the driving speed used when a source
#: gives none (km/h; urban Chinese traffic, not the posted limit). ``None``: no cars.
ROAD_CLASS_DRIVE_KMH: dict[str, float | None] = {
    "motorway": 80.0,
    "trunk": 60.0,
    "primary": 40.0,
    "secondary": 35.0,
    "tertiary": 30.0,
    "residential": 20.0,
    "service": 15.0,
    "unclassified": 25.0,
    "footway": None,
    "path": None,
    "pedestrian": None,
    "steps": None,
    "cycleway": None,
}

#: Road classes that pedestrians may not use.
NO_WALK_CLASSES = frozenset({"motorway", "trunk"})

#: Whether a row is real data or made up (the two kinds of ``source`` label; the streets
#: layer's ``provenance`` column).
PROVENANCES = _vocab(
    Term("real", "真实数据", "real"),
    Term("synthetic", "合成数据", "synthetic"),
)

#: Prefixes allowed in every table's ``source`` column: real data or labelled synthetic.
SOURCE_PREFIXES = ("real:", "synthetic:")

"""The words of the map pages, in Chinese (default) and English, declared once.

The page passes the set of its language to the page scripts (``static/geomap/map/``) in
its configuration, so the browser modules hold no text of their own. Kind and status labels
come from :mod:`geomap.vocab`; layer titles from the catalog (``layers/*.toml``).
"""

from __future__ import annotations

from typing import Any

from geomap import vocab
from geomap.errors import InvalidInput

LANGS = ("zh", "en")

#: Interface strings by key: (Chinese, English).
UI: dict[str, tuple[str, str]] = {
    "title_battle": ("南昌市应急队伍作战图", "Nanchang emergency teams battle map"),
    "title_circles": ("15分钟红色文化圈", "15-minute red culture circles"),
    "title_coverage": ("服务覆盖分析", "Service coverage"),
    "fullscreen": ("全屏", "Full screen"),
    "fullscreen_exit": ("退出全屏", "Exit full screen"),
    "search": ("搜索名称或编码…", "Search a name or code…"),
    "search_none": ("未找到", "Not found"),
    "legend": ("图例", "Legend"),
    "layers": ("图层", "Layers"),
    "zoom_in_to_see": ("放大至 {zoom} 级显示", "shown from zoom {zoom}"),
    "loading": ("加载中…", "Loading…"),
    "load_failed": ("{layer} 加载失败：{message}", "{layer} failed to load: {message}"),
    "shown_of": ("显示 {count} / {matched}", "{count} of {matched} shown"),
    "synthetic": ("合成数据", "synthetic data"),
    "colour_grids": ("网格着色", "Colour grids by"),
    "colour_none": ("无", "nothing"),
    "colour_population": ("人口", "population"),
    "colour_coverage": ("服务阵地覆盖率（1公里）", "station coverage (1 km)"),
    "colour_teams": ("队伍数", "number of teams"),
    "coverage_loading": ("正在计算覆盖率…", "Computing coverage…"),
    "teams_in_grid": ("本网格队伍", "teams of this grid"),
    "available_short": ("待命", "available"),
    "nearest": ("最近可用队伍", "Nearest available teams"),
    "nearest_click": ("点击地图查询", "Query on map click"),
    "nearest_hint": (
        "点击地图，或输入经纬度（经度,纬度）或网格编码",
        "Click the map, or enter lon,lat or a grid code",
    ),
    "nearest_go": ("查询", "Go"),
    "nearest_by": ("方式", "By"),
    "by_drive": ("驾车", "driving"),
    "by_walk": ("步行", "walking"),
    "by_distance": ("直线距离", "straight line"),
    "nearest_busy": ("正在查询…", "Searching…"),
    "nearest_none": ("附近没有符合条件的队伍", "No matching team nearby"),
    "nearest_point": ("事发地点", "Incident point"),
    "nearest_service": (
        "查询最近队伍需要连接 geomap 服务（geomap serve）；离线文件只能查看地图。",
        "Finding the nearest teams needs the geomap service (geomap serve); "
        "an offline file shows the map only.",
    ),
    "nearest_unreachable": ("无法连接服务：{message}", "The service cannot be reached: {message}"),
    "not_found_input": (
        "无法识别“{text}”：请输入 经度,纬度 或网格编码",
        "Cannot read “{text}”: enter lon,lat or a grid code",
    ),
    "grids_not_loaded": ("网格数据尚未加载", "Grids are not loaded yet"),
    "col_rank": ("序", "#"),
    "col_team": ("队伍", "Team"),
    "col_distance": ("距离", "Distance"),
    "col_time": ("用时", "Time"),
    "straight_line": ("（无路线，直线示意）", "(no route: straight line)"),
    "km": ("公里", "km"),
    "min": ("分钟", "min"),
    "m": ("米", "m"),
    "km2": ("平方公里", "km²"),
    "people": ("人", "people"),
    "summary": ("汇总", "Summary"),
    "circles_loading": (
        "正在计算15分钟圈（首次使用需逐个生成，可能需要一分钟）…",
        "Computing the circles (the first use builds them: up to a minute)…",
    ),
    "circles_count": ("文化圈", "circles"),
    "venues_without_circle": ("无步行街道的阵地", "venues with no walkable street"),
    "circles_area": ("总面积", "total area"),
    "circles_population": ("圈内居民（各圈相加，重叠重复计）", "residents (sum over circles)"),
    "top_circles": ("居民最多的文化圈", "Circles with the most residents"),
    "circles_covered": ("文化圈内居民（去重）", "residents inside a circle"),
    "computing": ("计算中…", "computing…"),
    "circles_none": (
        "尚未生成：运行 geomap circles build 或打开 15分钟圈地图",
        "none built yet: run geomap circles build, or open the circles map",
    ),
    "venues": ("红色文化阵地", "Red culture venues"),
    "coverage_of": ("{of}覆盖", "coverage by {of}"),
    "within_m": ("{value} 米内", "within {value} m"),
    "within_min": ("{by} {value} 分钟内", "within {value} min {by}"),
    "units": ("单元", "units"),
    "covered_units": ("已覆盖", "covered"),
    "uncovered_units": ("未覆盖", "not covered"),
    "population": ("人口", "residents"),
    "covered_share": ("覆盖率（人口）", "covered share (residents)"),
    "left_outside": ("覆盖范围外居民", "residents left outside"),
    "top_gaps": ("缺口最大的单元", "Largest gaps"),
    "covered": ("已覆盖", "covered"),
    "not_covered": ("未覆盖", "not covered"),
    "nearest_provider": ("最近服务点", "nearest provider"),
    "providers": ("服务提供方", "Providers"),
    "coverage_layer": ("覆盖分析", "Coverage"),
    "basemap_needs_key": (
        "天地图底图需要密钥：请设置 GEOMAP_TIANDITU_KEY。当前不显示底图。",
        "The Tianditu basemap needs a key: set GEOMAP_TIANDITU_KEY. No basemap is shown.",
    ),
    "gcj_note": ("底图为 GCJ-02 坐标，要素已相应偏移显示", "Basemap in GCJ-02: features shifted"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    # -- the live screen: sign-in, events, cases, queue
    "sign_in": ("登录", "Sign in"),
    "sign_in_needed": (
        "请使用您的 API 密钥登录以查看作战图",
        "Sign in with your API key to see the battle map",
    ),
    "sign_in_key": ("API 密钥", "API key"),
    "sign_in_failed": ("登录失败：{message}", "Sign-in failed: {message}"),
    "sign_out": ("退出", "Sign out"),
    "signed_in_as": ("{name}（{role}）", "{name} ({role})"),
    "not_signed_in": ("未登录", "not signed in"),
    "live_on": ("实时", "live"),
    "live_connecting": ("连接中…", "connecting…"),
    "live_reconnecting": ("重新连接中…", "reconnecting…"),
    "queue": ("事件队列", "Case queue"),
    "queue_empty": ("暂无待处理事件", "No open case"),
    "overdue": ("超时", "overdue"),
    "age_min": ("{value} 分钟前", "{value} min ago"),
    "age_h": ("{value} 小时前", "{value} h ago"),
    "age_d": ("{value} 天前", "{value} d ago"),
    "case_level": ("当前层级", "level"),
    "recommended": ("推荐队伍", "Recommended teams"),
    "recommend_busy": ("正在计算推荐队伍…", "Finding teams…"),
    "recommend_none": ("没有可派遣的合适队伍", "No fitting team available"),
    "dispatch": ("派遣", "Dispatch"),
    "dispatch_busy": ("派遣中…", "Dispatching…"),
    "dispatch_done": ("已派遣：{team}", "Dispatched: {team}"),
    "case_teams": ("已派队伍", "Teams sent"),
    "read_only": ("只读：仅指挥员可派遣和处置", "Read only: commanders dispatch and act"),
    "act_accept": ("受理", "Accept"),
    "act_resolve": ("处置完成", "Resolve"),
    "act_close": ("办结", "Close"),
    "act_reopen": ("重新打开", "Reopen"),
    "act_cancel": ("撤销", "Cancel"),
    "eta": ("预计到达", "ETA"),
    "stale": ("位置过时", "stale position"),
    "stale_since": ("位置已 {value} 未更新", "position not updated for {value}"),
    "leader": ("负责人", "leader"),
    "phone": ("电话", "phone"),
    "all_kinds_option": ("全部类型", "all kinds"),
    "all_capabilities": ("全部能力", "any capability"),
    "nearest_kind": ("队伍类型", "Team kind"),
    "nearest_capability": ("能力", "Capability"),
    "skip_map": ("跳到地图", "Skip to the map"),
    "skip_panels": ("跳到面板", "Skip to the panels"),
    "panel_nearest": ("最近队伍", "Nearest"),
    "panel_queue": ("事件", "Cases"),
    "panel_legend": ("图例", "Legend"),
    "panel_account": ("账户", "Account"),
    "cases_layer": ("事件", "Cases"),
    "role_commander": ("指挥员", "commander"),
    "role_planner": ("规划员", "planner"),
    "role_viewer": ("查看员", "viewer"),
    "role_open": ("本机开放读取", "open local read"),
    "demo_open_read": ("演示模式：本机免登录只读", "demo: open read on this machine"),
    "role_embed": ("嵌入", "embed"),
    "role_anonymous": ("访客", "anonymous"),
}

#: Property labels for popups and tooltips: (Chinese, English).
FIELDS: dict[str, tuple[str, str]] = {
    "id": ("编号", "id"),
    "code": ("编码", "code"),
    "name": ("名称", "name"),
    "name_en": ("英文名", "English name"),
    "kind": ("类型", "kind"),
    "status": ("状态", "status"),
    "unit": ("所属单位", "unit"),
    "headcount": ("人数", "people"),
    "capabilities": ("能力", "capabilities"),
    "home_grid_code": ("所属网格", "home grid"),
    "position_at": ("位置时间", "position at"),
    "reported_at": ("上报时间", "reported"),
    "address": ("地址", "address"),
    "region_code": ("所属区域", "region"),
    "grid_code": ("所在网格", "grid"),
    "community_code": ("所属社区", "community"),
    "parent_code": ("上级区划", "parent"),
    "level": ("层级", "level"),
    "population": ("人口", "residents"),
    "households": ("户数", "households"),
    "coord_quality": ("坐标质量", "coordinate quality"),
    "venue_table": ("阵地类别", "venue table"),
    "venue_id": ("阵地编号", "venue id"),
    "area_km2": ("面积（平方公里）", "area (km²)"),
    "reached_edges": ("可达路段数", "streets reached"),
    "built_at": ("生成时间", "built at"),
    "minutes": ("步行分钟", "walking minutes"),
    "distance_m": ("步行距离（米）", "walking distance (m)"),
    "covered_population": ("覆盖人口", "residents covered"),
    "uncovered_population": ("覆盖范围外居民", "residents left outside"),
    "covered_share_population": ("覆盖率（人口）", "covered share (residents)"),
    "covered_share_area": ("覆盖率（面积）", "covered share (area)"),
    "nearest_m": ("最近服务点（米）", "nearest provider (m)"),
    "grids": ("网格数", "grids"),
    "covered": ("已覆盖", "covered"),
    "road_class": ("道路等级", "road class"),
    "provenance": ("来源", "provenance"),
    "rank": ("道路级别", "rank"),
    "length_km": ("长度（公里）", "length (km)"),
    "edges": ("路段数", "segments"),
}

#: Which vocabulary labels the kinds of each layer (catalog id or map layer name).
KIND_VOCABULARIES = {
    "teams": vocab.TEAM_KINDS,
    "stations": vocab.STATION_KINDS,
    "sites": vocab.SITE_KINDS,
    "streets": vocab.PROVENANCES,
}


def check_lang(lang: str | None) -> str:
    """The page language: ``zh`` (default) or ``en``.

    Parameters
    ----------
    lang : str or None
        As given in ``?lang=``.

    Returns
    -------
    str

    Raises
    ------
    InvalidInput
        For any other language, naming the ones there are.
    """
    if lang is None or lang == "":
        return "zh"
    if lang not in LANGS:
        raise InvalidInput(f"unknown lang {lang!r}; choose one of {', '.join(LANGS)}",
                           field="lang")  # fmt: skip
    return lang


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[LANGS.index(lang)]


def ui(key: str, lang: str) -> str:
    """One interface string.

    Parameters
    ----------
    key : str
        A key of :data:`UI`.
    lang : str
        ``zh`` or ``en``.

    Returns
    -------
    str
    """
    return _pick(UI[key], lang)


def _labels(terms: dict[str, vocab.Term], lang: str) -> dict[str, str]:
    return {code: _pick((t.zh, t.en), lang) for code, t in terms.items()}


def strings(lang: str) -> dict[str, Any]:
    """Everything the browser module shows as text, in one language.

    Parameters
    ----------
    lang : str
        ``zh`` or ``en``.

    Returns
    -------
    dict
        ``ui`` (interface strings), ``fields`` (property labels), ``kinds`` (kind labels
        by layer), ``statuses`` (team statuses), ``levels`` (region levels), ``all_kinds``
        (every kind label, for layers mixing venues of several tables), and the cases'
        ``case_kinds``, ``severities``, ``case_statuses``, ``case_levels``,
        ``dispatch_statuses``.
    """
    kinds = {
        layer: {code: _pick((t.zh, t.en), lang) for code, t in terms.items()}
        for layer, terms in KIND_VOCABULARIES.items()
    }
    all_kinds: dict[str, str] = {}
    for labels in kinds.values():
        all_kinds.update(labels)
    return {
        "ui": {key: _pick(pair, lang) for key, pair in UI.items()},
        "fields": {key: _pick(pair, lang) for key, pair in FIELDS.items()},
        "kinds": kinds,
        "all_kinds": all_kinds,
        "statuses": {c: _pick((t.zh, t.en), lang) for c, t in vocab.TEAM_STATUSES.items()},
        "levels": {
            **{c: _pick((t.zh, t.en), lang) for c, t in vocab.REGION_LEVELS.items()},
            "grid": _pick(("网格", "grid"), lang),
        },
        "case_kinds": _labels(vocab.CASE_KINDS, lang),
        "severities": _labels(vocab.CASE_SEVERITIES, lang),
        "case_statuses": _labels(vocab.CASE_STATUSES, lang),
        "case_levels": _labels(vocab.CASE_LEVELS, lang),
        "dispatch_statuses": _labels(vocab.DISPATCH_STATUSES, lang),
        "providers": {
            "stations": "服务阵地" if lang == "zh" else "service stations",
            "teams": "队伍" if lang == "zh" else "teams",
            "sites": "红色文化阵地" if lang == "zh" else "red culture sites",
        },
    }

"""Pools of characters for synthetic Chinese names (places, roads, people, phone numbers).

Every name drawn here is made up: two characters from the pools below, shuffled with the
caller's random generator, so the same seed gives the same names.
"""

from __future__ import annotations

import numpy as np

# First and second characters of place names (社区/村, roads). Common, neutral characters of
# Jiangxi place names; any pair reads like a plausible name ("青云", "洪桥", "湖滨").
_PLACE_FIRST = (
    "青红新东西南北中金银玉华阳明丰和安康福永长兴盛平顺湖江河山林桥洲塘坊园湾岭港滨云霞"
    "凤龙梅兰竹松柏桃杏荷文德仁义光辉春秋星彩锦绣瑞祥泰嘉"
)
_PLACE_SECOND = (
    "湖江山岭桥洲塘坊园苑湾港滨城门里庄家田溪泉源亭台阁岗峰坪坝岸堤渡埠院都华光明安平兴"
    "盛丰和宁福春林"
)

# The most common Chinese surnames and given-name characters.
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛"
)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超华平刚辉健鹏宇浩亮婷玲霞红波斌凯琳晨欣雪梅兰英鑫博文"
    "志海峰建国庆春林燕丹萍新卫东小佳"
)


def place_names(n: int, rng: np.random.Generator) -> list[str]:
    """Return ``n`` distinct two-character place names in a seeded random order.

    Parameters
    ----------
    n : int
        How many names; at most the number of character pairs (about 3,000).
    rng : numpy.random.Generator
        The source of randomness.

    Returns
    -------
    list of str
        Distinct names such as ``"青云"``; identical pairs (``"湖湖"``) are never produced.
    """
    pairs = [a + b for a in _PLACE_FIRST for b in _PLACE_SECOND if a != b]
    if n > len(pairs):
        raise ValueError(f"only {len(pairs)} distinct place names, {n} asked")
    order = rng.permutation(len(pairs))[:n]
    return [pairs[i] for i in order]


def person_names(n: int, rng: np.random.Generator) -> list[str]:
    """Return ``n`` synthetic personal names (surname + one or two given-name characters)."""
    surnames = rng.integers(0, len(_SURNAMES), n)
    first = rng.integers(0, len(_GIVEN), n)
    second = rng.integers(0, len(_GIVEN), n)
    two_chars = rng.random(n) < 0.6  # most given names have two characters
    return [
        _SURNAMES[s] + _GIVEN[a] + (_GIVEN[b] if two else "")
        for s, a, b, two in zip(surnames, first, second, two_chars, strict=True)
    ]


def phone_numbers(n: int, rng: np.random.Generator) -> list[str]:
    """Return ``n`` distinct synthetic 11-digit phone numbers.

    They start with ``100``: Chinese mobile numbers start with 13-19, so these can never
    reach a real person, yet they have the usual length for forms and layouts.
    """
    numbers = rng.choice(100_000_000, size=n, replace=False)
    return [f"100{k:08d}" for k in numbers]

"""Settings: declared once, read at call time, all documented."""

import re
from pathlib import Path

import pytest

from geomap import config
from geomap.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"`(GEOMAP_[A-Z_]+)`", text))
    declared = {s.env for s in config.SETTINGS}
    assert declared - documented == set(), "settings missing from README.md"
    assert documented - declared == set(), "README.md documents settings that do not exist"


def test_settings_are_read_when_loaded_not_at_import():
    settings = config.load(environ={"GEOMAP_PORT": "5123", "GEOMAP_WALK_SPEED_KMH": "5"})
    assert settings.port == 5123
    assert settings.walk_speed_kmh == 5.0
    assert config.load(environ={}).port == 5000


def test_bad_value_names_the_variable():
    with pytest.raises(ConfigError, match="GEOMAP_PORT='abc'"):
        config.load(environ={"GEOMAP_PORT": "abc"})


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        config.load({"no_such_setting": 1}, environ={})

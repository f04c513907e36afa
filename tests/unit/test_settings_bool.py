"""settings.parse_bool: words, TOML booleans, and one-line errors naming the value; and the
two boolean settings (audit, follow_binlog) through ``resolve``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from loadengine.settings import SettingsError, parse_bool, resolve


@pytest.mark.parametrize("word", ["1", "true", "yes", "on", "TRUE", "True", "Yes", "ON", " on "])
def test_true_words(word: str) -> None:
    assert parse_bool("--audit", word) is True


@pytest.mark.parametrize("word", ["0", "false", "no", "off", "FALSE", "No", "Off", "\tfalse\n"])
def test_false_words(word: str) -> None:
    assert parse_bool("--audit", word) is False


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), (1, True), (0, False)]
)
def test_python_values(value: Any, expected: bool) -> None:
    assert parse_bool("--audit", value) is expected


def test_toml_booleans() -> None:
    data = tomllib.loads("audit = true\nfollow_binlog = false\n")
    assert parse_bool("profile key audit", data["audit"]) is True
    assert parse_bool("profile key follow_binlog", data["follow_binlog"]) is False


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("maybe", "'maybe'"),
        ("", "''"),
        ("tru", "'tru'"),
        ("y", "'y'"),
        ("2", "'2'"),
        (2, "2"),
        (1.0, "1.0"),
        (None, "None"),
    ],
)
def test_a_bad_value_names_flag_and_value(value: Any, shown: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_bool("--follow-binlog", value)
    message = str(info.value)
    assert message == (f"--follow-binlog {shown}: must be true or false (or 1/0, yes/no, on/off)")
    assert "\n" not in message


def test_resolve_reads_booleans_from_a_profile_and_env(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text("audit = true\nfollow_binlog = true\n")
    plan = resolve({}, {}, str(profile))
    assert (plan.audit, plan.follow_binlog) == (True, True)
    plan = resolve({}, {"LOADENGINE_AUDIT": "off", "LOADENGINE_FOLLOW_BINLOG": "yes"})
    assert (plan.audit, plan.follow_binlog) == (False, True)


def test_resolve_names_the_env_variable_of_a_bad_boolean() -> None:
    with pytest.raises(SettingsError, match=r"^LOADENGINE_AUDIT 'perhaps': must be true or false"):
        resolve({}, {"LOADENGINE_AUDIT": "perhaps"})


def test_resolve_names_the_profile_key_of_a_bad_boolean(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('follow_binlog = "sometimes"\n')
    with pytest.raises(SettingsError, match=r"^profile key follow_binlog 'sometimes': must be"):
        resolve({}, {}, str(profile))

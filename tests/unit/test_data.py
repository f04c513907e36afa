"""Package data: built-in profiles, suites and the server config are found by name from
the installed package (``importlib.resources``), not from the checkout's working dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadengine import data
from loadengine.run import results
from loadengine.settings import SettingsError, load_profile, load_toml

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_names_are_listed() -> None:
    assert data.names("profiles") == ["high-load", "medium", "ramp", "smoke"]
    assert data.names("suites") == ["pipeline", "standard"]
    assert "binlog_format                  = ROW" in data.server_config()


def test_profile_by_name_does_not_depend_on_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_profile("smoke")["target_cps"] == 100
    stem, table = load_toml("suite", "standard", "suites")
    assert stem == "standard" and table["scenario"]


def test_a_path_wins_over_a_builtin_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("smoke").write_text("target_cps = 7\n")
    assert load_profile("smoke")["target_cps"] == 7


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(SettingsError, match=r"known: high-load, medium, ramp, smoke"):
        load_profile("nope")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        data.folder("secrets")


@pytest.mark.parametrize("example", sorted((ROOT / "configs").glob("*profile*.toml")))
def test_the_example_profiles_in_configs_load(example: Path) -> None:
    assert load_profile(str(example))


def test_writable_check_creates_and_removes_a_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    results.check_writable(str(target))
    assert list(tmp_path.iterdir()) == []


def test_writable_check_refuses_a_dir_the_process_cannot_create_files_in() -> None:
    with pytest.raises(results.ResultsPathError, match="cannot create a file in '/proc'"):
        results.check_writable("/proc/loadengine.json")


def test_the_example_suite_in_configs_loads() -> None:
    from loadengine.tools.suite import load_suite

    suite = load_suite(str(ROOT / "configs" / "example-suite.toml"))
    assert [s["name"] for s in suite["scenario"]] == ["steady-2k", "ramp"]


def test_every_package_data_file_is_in_the_wheel() -> None:
    """Each file under loadengine/data matches a pattern of pyproject's package-data:
    one left out exists in the checkout but not in an installed wheel (the built-in
    workloads were, for a moment)."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["loadengine.data"]
    folder = ROOT / "loadengine" / "data"
    files = [
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ]
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == []
    assert data.names("workloads") == ["ddl", "inventory", "inventory-full", "large-rows",
                                       "payments"]  # fmt: skip

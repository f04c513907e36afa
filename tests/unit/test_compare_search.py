"""compare (noise-aware regressions), thresholds, the max-rate search and suite files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadengine.core import thresholds
from loadengine.settings import SettingsError
from loadengine.tools import compare, suite
from loadengine.tools.search import SearchPlan, search


def _doc(cps: float, p99: float = 5.0, errors: int = 0, cpu: float = 50.0) -> dict:
    return {
        "summary": {
            "achieved_cps": cps,
            "efficiency": cps / 1000,
            "changes": int(cps * 10),
            "error_count": errors,
            "transactions": 100,
            "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": p99, "max": 9.0},
        },
        "resources": [
            {"t_s": 5.0, "coordinator_cpu_pct": 0.0, "shards_cpu_pct": cpu},
            {"t_s": 10.0, "coordinator_cpu_pct": 0.0, "shards_cpu_pct": cpu},
        ],
    }


def _write(path: Path, doc: dict) -> str:
    path.write_bytes(orjson.dumps(doc))
    return str(path)


def test_same_file_compares_clean(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", _doc(1000))
    res = compare.compare_paths(a, a, compare.parse_rules(compare.DEFAULT_FAIL_ON))
    assert res["regression"] is False
    row = next(r for r in res["scenarios"][0]["metrics"] if r["metric"] == "achieved_cps")
    assert (row["difference"], row["difference_pct"]) == (0, 0.0)


def test_runs_of_different_workloads_are_compared_with_a_warning(tmp_path: Path) -> None:
    """Not like for like: said on the scenario's title, and in the JSON (a results file
    from before workloads counts as ``inventory``)."""
    a = _write(tmp_path / "a.json", _doc(1000))
    other = _doc(1000)
    other["plan"] = {"workload": {"value": "large-rows", "source": "flag"}}
    b = _write(tmp_path / "b.json", other)
    res = compare.compare_paths(a, b, compare.parse_rules(compare.DEFAULT_FAIL_ON))
    assert res["scenarios"][0]["workloads"] == {
        "baseline": ["inventory"],
        "contender": ["large-rows"],
    }
    assert "WARNING: different workloads: inventory vs large-rows" in compare.render(res, "table")
    same = compare.compare_paths(a, a, compare.parse_rules(compare.DEFAULT_FAIL_ON))
    assert "WARNING" not in compare.render(same, "table")


def test_thirty_percent_slower_contender_is_a_regression(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", _doc(1000))
    b = _write(tmp_path / "b.json", _doc(700))
    res = compare.compare_paths(a, b, compare.parse_rules(compare.DEFAULT_FAIL_ON))
    assert res["regression"] is True
    row = next(r for r in res["scenarios"][0]["metrics"] if r["metric"] == "achieved_cps")
    assert row["difference_pct"] == -30.0 and row["regression"]
    assert "REGRESSION" in compare.render(res, "table")
    assert "| achieved_cps |" in compare.render(res, "markdown")
    assert orjson.loads(compare.render(res, "json"))["regression"] is True


def test_a_change_inside_the_runs_own_spread_is_noise(tmp_path: Path) -> None:
    base, cont = tmp_path / "base", tmp_path / "cont"
    base.mkdir()
    cont.mkdir()
    for i, cps in enumerate((1000, 900, 1100)):
        _write(base / f"high-load-r{i + 1}.json", _doc(cps))
    for i, cps in enumerate((930, 920, 940)):
        _write(cont / f"high-load-r{i + 1}.json", _doc(cps))
    res = compare.compare_paths(str(base), str(cont), compare.parse_rules("achieved_cps<-5%"))
    (sc,) = res["scenarios"]
    row = next(r for r in sc["metrics"] if r["metric"] == "achieved_cps")
    assert (sc["baseline_runs"], row["baseline"], row["noise"]) == (3, 1000, 200)
    assert row["within_noise"] and not row["regression"] and not res["regression"]


def test_latency_and_cpu_regressions_and_rule_parsing(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", _doc(1000, p99=5.0, cpu=40))
    b = _write(tmp_path / "b.json", _doc(1000, p99=7.0, cpu=60))
    res = compare.compare_paths(a, b, compare.parse_rules("latency_p99>+20%"))
    assert res["regression"]
    assert compare.parse_rules("achieved_cps<-5%,latency_p99>+20%") == {
        "achieved_cps": -5.0,
        "latency_p99": 20.0,
    }
    for bad in ("achieved_cps>+5%", "nonsense<-5%", "achieved_cps<5"):
        with pytest.raises(compare.CompareError):
            compare.parse_rules(bad)
    with pytest.raises(compare.CompareError, match="no such"):
        compare.load_side(str(tmp_path / "missing.json"))


def test_thresholds_pass_fail_and_unmeasured_fails() -> None:
    summary = {
        "efficiency": 0.995,
        "latency_ms": {"p99": 12.0},
        "transactions": 990,
        "error_count": 10,
        "capture_lag_ms": None,
    }
    checks = thresholds.evaluate(
        {
            "min_efficiency": 0.99,
            "max_p99_ms": 10,
            "max_error_rate": 0.02,
            "max_capture_lag_ms": 100,
        },
        summary,
    )
    verdict = {c["name"]: c["pass"] for c in checks}
    assert verdict == {
        "min_efficiency": True,
        "max_p99_ms": False,
        "max_error_rate": True,
        "max_capture_lag_ms": False,
    }
    assert "max_p99_ms 10" in thresholds.one_line(checks)


def test_search_steps_up_then_bisects_to_the_ceiling() -> None:
    ceiling = 23_000
    plan = SearchPlan(start_cps=1000, max_cps=200_000, factor=2, resolution=0.05, max_trials=20)
    res = search(plan, lambda cps: {"passed": cps <= ceiling})
    assert res.max_sustainable_cps is not None and res.first_failing_cps is not None
    assert res.max_sustainable_cps <= ceiling < res.first_failing_cps
    assert (res.first_failing_cps - res.max_sustainable_cps) / res.max_sustainable_cps <= 0.05
    assert [t["target_cps"] for t in res.trials][:6] == [1000, 2000, 4000, 8000, 16000, 32000]


def test_search_respects_budget_max_and_a_failing_start() -> None:
    res = search(
        SearchPlan(start_cps=1000, max_cps=3000, max_trials=10), lambda c: {"passed": True}
    )
    assert res.max_sustainable_cps == 3000 and res.first_failing_cps is None
    res = search(SearchPlan(start_cps=1000), lambda c: {"passed": False})
    assert res.max_sustainable_cps is None and res.first_failing_cps == 1000
    res = search(SearchPlan(start_cps=1000, max_trials=3), lambda c: {"passed": c < 5000})
    assert len(res.trials) == 3


def test_standard_suite_loads_and_quick_profiles_are_short() -> None:
    s = suite.load_suite("standard")
    names = [sc["name"] for sc in s["scenario"]]
    assert names == ["small-test", "medium-test", "high-load", "ramp", "max-rate",
                     "inventory-full", "large-rows", "ddl"]  # fmt: skip
    full = suite.scenario_profile(s, s["scenario"][5], quick=True)
    assert (full["workload"], full["duration"]) == ("inventory-full", 5)
    assert "--workload" in suite._flags(full)
    ramp = suite.scenario_profile(s, s["scenario"][3], quick=True)
    assert [st["target_cps"] for st in ramp["steps"]] == [1000, 2500, 5000, 10000]
    assert sum(st["duration"] for st in ramp["steps"]) <= 10
    high = suite.scenario_profile(s, s["scenario"][2], quick=True)
    assert (high["duration"], high["warmup"], high["workers"]) == (5, 0, 4)
    assert high["min_efficiency"] == 0.99
    flags = suite._flags(high)
    assert "--target-cps" in flags and "--max-p99-ms" in flags


def test_bad_suite_files_are_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\ncolour = "red"\n')
    with pytest.raises(SettingsError, match="unknown key 'colour'"):
        suite.load_suite(str(bad))
    empty = tmp_path / "empty.toml"
    empty.write_text('description = "nothing"\n')
    with pytest.raises(SettingsError, match="at least one"):
        suite.load_suite(str(empty))
    with pytest.raises(SettingsError, match="no such suite"):
        suite.load_suite("no-such-suite")

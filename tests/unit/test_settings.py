"""loadengine.settings.resolve: precedence, recorded sources, profiles and one-line errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from loadengine import settings
from loadengine.core.dsn import Dsn, parse_dsn
from loadengine.core.plan import DEFAULT_MIX, RunPlan
from loadengine.settings import SettingsError, auto_multiplex, resolve

PASSWORD = "hunter2-secret"


def sources(plan: RunPlan) -> dict[str, str]:
    return dict(plan.sources)


def write_profile(tmp_path: Path, text: str, name: str = "custom.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- defaults and precedence --------------------------------------------------------------


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings.os, "cpu_count", lambda: 4)
    plan = resolve({}, {})
    assert plan.steps == ((1000, 10),)
    assert (plan.duration_s, plan.warmup_s, plan.workers, plan.batch_size) == (10, 0, 4, 10)
    assert plan.log_interval_s == 1.0
    assert plan.mix == DEFAULT_MIX
    assert (plan.seed, plan.on_overload) == (1, "catch-up")
    assert (plan.dsn, plan.output, plan.keep_server) == (None, None, False)
    assert (plan.audit, plan.follow_binlog) == (False, False)
    assert sources(plan) == {
        "audit": "default",
        "follow_binlog": "default",
        "retries": "default",
        "protocol": "default",
        "min_efficiency": "default",
        "max_p99_ms": "default",
        "max_error_rate": "default",
        "max_capture_lag_ms": "default",
        "max_e2e_lag_ms": "default",
        "max_sink_loss": "default",
        "sink": "default",
        "sink_timeout_s": "default",
        "sink_exchange": "default",
        "sink_topic_prefix": "default",
        "on_shard_failure": "default",
        "backend": "default",
        "ray_address": "default",
        "password_file": "default",
        "ssl_ca": "default",
        "ssl_cert": "default",
        "ssl_key": "default",
        "ssl_verify": "default",
        "batch_size": "default",
        "dsn": "default",
        "duration_s": "default",
        "keep_server": "default",
        "log_interval_s": "default",
        "mix": "default",
        "workload": "default",
        "on_overload": "default",
        "output": "default",
        "seed": "default",
        "target_cps": "default",
        "warmup_s": "default",
        "workers": "default (cpu count within 4..16, at most the target CPS)",
        "processes": "default",
        "multiplex": "default",
    }
    assert plan.processes is None


@pytest.mark.parametrize(
    ("cpus", "workers"), [(None, 4), (1, 4), (3, 4), (8, 8), (16, 16), (64, 16)]
)
def test_default_workers_follow_cpu_count_within_4_to_16(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, workers: int
) -> None:
    monkeypatch.setattr(settings.os, "cpu_count", lambda: cpus)
    assert resolve({}, {}).workers == workers


def test_precedence_flag_over_env_over_profile_over_default() -> None:
    flags = {"duration_s": "5"}
    env = {"DURATION_SECONDS": "7"}
    plan = resolve(flags, env, "medium")
    assert (plan.duration_s, sources(plan)["duration_s"]) == (5, "flag")
    plan = resolve({}, env, "medium")
    assert (plan.duration_s, sources(plan)["duration_s"]) == (7, "env:DURATION_SECONDS")
    plan = resolve({}, {}, "medium")
    assert (plan.duration_s, sources(plan)["duration_s"]) == (30, "profile:medium")
    plan = resolve({}, {})
    assert (plan.duration_s, sources(plan)["duration_s"]) == (10, "default")


def test_precedence_for_every_layer_at_once() -> None:
    plan = resolve(
        {"target_cps": "300", "seed": "9"},
        {"TARGET_CPS": "200", "BATCH_SIZE": "4", "LOADENGINE_SEED": "8"},
        "medium",
    )
    assert plan.steps == ((300, 30),)
    assert (plan.batch_size, plan.workers, plan.seed, plan.warmup_s) == (4, 2, 9, 0)
    src = sources(plan)
    assert src["target_cps"] == "flag"
    assert src["seed"] == "flag"
    assert src["batch_size"] == "env:BATCH_SIZE"
    assert src["duration_s"] == "profile:medium"
    assert src["workers"] == "profile:medium"
    assert src["warmup_s"] == "default"


def test_none_flags_and_empty_env_values_fall_through() -> None:
    plan = resolve({"target_cps": None, "workers": None}, {"TARGET_CPS": "", "CONCURRENCY": "3"})
    assert plan.steps == ((1000, 10),)
    assert sources(plan)["target_cps"] == "default"
    assert (plan.workers, sources(plan)["workers"]) == (3, "env:CONCURRENCY")


@pytest.mark.parametrize(
    ("name", "value", "attr", "expected"),
    [
        ("TARGET_CPS", "250", "steps", ((250, 10),)),
        ("DURATION_SECONDS", "42", "duration_s", 42),
        ("WARMUP_SECONDS", "3", "warmup_s", 3),
        ("CONCURRENCY", "5", "workers", 5),
        ("BATCH_SIZE", "25", "batch_size", 25),
        ("LOG_INTERVAL_SECONDS", "2.5", "log_interval_s", 2.5),
        ("LOADENGINE_SEED", "77", "seed", 77),
        ("LOADENGINE_ON_OVERLOAD", "drop", "on_overload", "drop"),
        ("LOADENGINE_OUTPUT", "out.json", "output", "out.json"),
        (
            "LOADENGINE_MIX",
            "update_order=1,insert_customer=2",
            "mix",
            (("insert_customer", 2), ("update_order", 1)),
        ),
        ("LOADENGINE_DSN", "mysql://app@db:3307/shop", "dsn", "mysql://app@db:3307/shop"),
    ],
)
def test_old_and_new_env_names(name: str, value: str, attr: str, expected: Any) -> None:
    plan = resolve({}, {name: value})
    assert getattr(plan, attr) == expected
    field = {"steps": "target_cps"}.get(attr, attr)
    assert sources(plan)[field] == f"env:{name}"


def test_mysql_parts_env_build_the_dsn() -> None:
    env = {
        "MYSQL_HOST": "db.example",
        "MYSQL_PORT": "3307",
        "MYSQL_USER": "app",
        "MYSQL_PASSWORD": "p@ss/w:rd",
        "MYSQL_DATABASE": "shop",
    }
    plan = resolve({}, env)
    assert plan.dsn is not None
    assert parse_dsn(plan.dsn) == Dsn("app", "p@ss/w:rd", "db.example", 3307, "shop")
    assert sources(plan)["dsn"] == "env:MYSQL_*"


def test_mysql_parts_defaults() -> None:
    plan = resolve({}, {"MYSQL_HOST": "db"})
    assert plan.dsn is not None
    assert parse_dsn(plan.dsn) == Dsn("root", "", "db", 3306, "inventory")


def test_loadengine_dsn_wins_over_mysql_parts_and_flag_wins_over_both() -> None:
    env = {"LOADENGINE_DSN": "mysql://a@one/x", "MYSQL_HOST": "two"}
    plan = resolve({}, env)
    assert (plan.dsn, sources(plan)["dsn"]) == ("mysql://a@one/x", "env:LOADENGINE_DSN")
    plan = resolve({"dsn": "mysql://b@three/y"}, env)
    assert (plan.dsn, sources(plan)["dsn"]) == ("mysql://b@three/y", "flag")


def test_flags_only_settings() -> None:
    plan = resolve({"keep_server": True, "output": "-", "warmup_s": "2"}, {})
    assert (plan.keep_server, plan.output, plan.warmup_s) == (True, "-", 2)
    assert sources(plan)["keep_server"] == "flag"


@pytest.mark.parametrize("value", ["max", "MAX", " Max "])
def test_target_max_is_unthrottled(value: str) -> None:
    plan = resolve({"target_cps": value, "duration_s": "4", "workers": "3"}, {})
    assert plan.steps == ()
    assert plan.duration_s == 4
    assert plan.workers == 3
    assert plan.planned_changes is None


# --- profiles ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "steps", "workers", "batch"),
    [
        ("smoke", ((100, 10),), 1, 1),
        ("medium", ((1000, 30),), 2, 10),
        ("high-load", ((10000, 60),), 4, 10),
    ],
)
def test_constant_rate_profiles_by_name(
    name: str, steps: tuple[tuple[int, int], ...], workers: int, batch: int
) -> None:
    plan = resolve({}, {}, name)
    assert (plan.steps, plan.workers, plan.batch_size) == (steps, workers, batch)
    src = sources(plan)
    for key in ("target_cps", "duration_s", "workers", "batch_size"):
        assert src[key] == f"profile:{name}"


def test_ramp_profile_has_four_steps() -> None:
    plan = resolve({}, {}, "ramp")
    assert plan.steps == ((1000, 15), (2500, 15), (5000, 15), (10000, 15))
    assert plan.duration_s == 60
    assert (plan.workers, plan.batch_size) == (4, 10)
    assert plan.target_cps == 4625.0
    src = sources(plan)
    assert src["target_cps"] == src["duration_s"] == "profile:ramp (steps)"
    assert src["workers"] == "profile:ramp"


def test_ramp_profile_steps_are_replaced_by_an_explicit_target() -> None:
    plan = resolve({"target_cps": "500"}, {}, "ramp")
    assert plan.steps == ((500, 10),)
    assert sources(plan)["target_cps"] == "flag"
    assert sources(plan)["duration_s"] == "default"


def test_profile_by_path(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path,
        'description = "x"\n'
        "target_cps = 50\n"
        "duration = 3\n"
        "warmup = 1\n"
        "workers = 2\n"
        "batch_size = 5\n"
        "log_interval = 0.5\n"
        "seed = 4\n"
        'on_overload = "drop"\n'
        'dsn = "mysql://app@db/shop"\n'
        "[mix]\n"
        "update_customer = 3\n"
        "insert_customer = 1\n",
    )
    plan = resolve({}, {}, path)
    assert plan.steps == ((50, 3),)
    assert (plan.warmup_s, plan.workers, plan.batch_size, plan.seed) == (1, 2, 5, 4)
    assert plan.log_interval_s == 0.5
    assert plan.on_overload == "drop"
    assert plan.dsn == "mysql://app@db/shop"
    assert plan.mix == (("insert_customer", 1), ("update_customer", 3))
    src = sources(plan)
    for key in ("target_cps", "duration_s", "warmup_s", "workers", "mix", "dsn", "on_overload"):
        assert src[key] == f"profile:{path}"
    assert src["output"] == "default"


def test_ramp_profile_by_path(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path,
        "workers = 2\n"
        "steps = [{ target_cps = 10, duration = 2 }, { target_cps = 30, duration = 1 }]\n",
    )
    plan = resolve({}, {}, path)
    assert plan.steps == ((10, 2), (30, 1))
    assert plan.duration_s == 3
    assert plan.planned_changes == 50


# --- errors -------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, dict[str, Any], dict[str, str], str | None, list[str]]] = [
    ("target-0", {"target_cps": "0"}, {}, None, ["--target-cps '0'", "from 1 to", "'max'"]),
    ("target-neg", {"target_cps": "-5"}, {}, None, ["--target-cps '-5'", "from 1 to", "'max'"]),
    ("target-abc", {"target_cps": "abc"}, {}, None, ["--target-cps 'abc'", "from 1 to", "'max'"]),
    ("target-float", {"target_cps": "1.5"}, {}, None, ["--target-cps '1.5'", "integer"]),
    ("target-env", {}, {"TARGET_CPS": "abc"}, None, ["TARGET_CPS 'abc'", "'max'"]),
    ("workers-0", {"workers": "0"}, {}, None, ["--workers '0'", "from 1 to 1024"]),
    ("workers-env-0", {}, {"CONCURRENCY": "0"}, None, ["CONCURRENCY '0'", "from 1 to 1024"]),
    ("batch-0", {"batch_size": "0"}, {}, None, ["--batch-size '0'", "from 1 to"]),
    ("batch-env-0", {}, {"BATCH_SIZE": "0"}, None, ["BATCH_SIZE '0'", "from 1 to"]),
    ("duration-0", {"duration_s": "0"}, {}, None, ["--duration '0'", "from 1 to"]),
    ("warmup-neg", {"warmup_s": "-1"}, {}, None, ["--warmup '-1'", "from 0 to"]),
    ("seed-neg", {"seed": "-1"}, {}, None, ["--seed '-1'", "from 0 to"]),
    (
        "log-interval-0",
        {"log_interval_s": "0"},
        {},
        None,
        ["--log-interval '0'", "from 0.1 to 3600"],
    ),
    ("log-interval-abc", {"log_interval_s": "x"}, {}, None, ["--log-interval 'x'", "number"]),
    (
        "overload",
        {"on_overload": "panic"},
        {},
        None,
        ["--on-overload 'panic'", "allowed: catch-up, drop, abort"],
    ),
    (
        "mix-unknown-op",
        {"mix": "insert_customer=1,delete_customer=2"},
        {},
        None,
        [
            "--mix",
            "unknown operation 'delete_customer'",
            "allowed: insert_customer, insert_order, update_customer, update_order",
        ],
    ),
    (
        "mix-zero",
        {"mix": "insert_customer=0,update_order=0"},
        {},
        None,
        ["--mix 'insert_customer=0,update_order=0'", "weights sum to 0", "> 0"],
    ),
    ("mix-bad-weight", {"mix": "insert_order=x"}, {}, None, ["--mix insert_order 'x'", ">= 0"]),
    ("mix-negative", {"mix": "insert_order=-1"}, {}, None, ["--mix insert_order '-1'", ">= 0"]),
    (
        "dsn-scheme",
        {"dsn": f"postgres://app:{PASSWORD}@db/shop"},
        {},
        None,
        ["invalid DSN 'postgres://app:***@db/shop'", "mysql:// or mariadb://"],
    ),
    (
        "dsn-port",
        {"dsn": f"mysql://app:{PASSWORD}@db:99999/shop"},
        {},
        None,
        ["invalid DSN 'mysql://app:***@db:99999/shop'", "port must be a number from 1 to 65535"],
    ),
    (
        "dsn-env",
        {},
        {"LOADENGINE_DSN": f"mysql://app:{PASSWORD}@db"},
        None,
        ["invalid DSN 'mysql://app:***@db'", "database name is missing"],
    ),
    ("mysql-port", {}, {"MYSQL_HOST": "db", "MYSQL_PORT": "abc"}, None, ["MYSQL_PORT", "port"]),
    (
        "profile-missing",
        {},
        {},
        "no-such-profile",
        ["--profile 'no-such-profile'", "no such profile", "known: high-load, medium, ramp, smoke"],
    ),
    (
        "workers-over-target",
        {"target_cps": "4", "workers": "5"},
        {},
        None,
        ["--workers 5", "exceeds the target of 4 CPS", "at least 1 change/s"],
    ),
    (
        "workers-env-over-target",
        {"target_cps": "4"},
        {"CONCURRENCY": "5"},
        None,
        ["CONCURRENCY 5", "exceeds the target of 4 CPS"],
    ),
    (
        "workers-over-ramp-step",
        {"workers": "1010"},
        {},
        "ramp",
        ["--workers 1010", "exceeds the target of 1000 CPS"],
    ),
    (
        "profile-value",
        {},
        {},
        "PROFILE:target_cps = 0\n",
        ["profile key target_cps 0", "from 1 to"],
    ),
    (
        "profile-unknown-key",
        {},
        {},
        'PROFILE:target_cps = 10\ncolour = "red"\n',
        ["unknown key 'colour'", "allowed: audit, backend, batch_size, description, dsn, duration"],
    ),
    ("profile-bad-toml", {}, {}, "PROFILE:target_cps = [\n", ["not valid TOML"]),
    (
        "profile-bad-steps",
        {},
        {},
        "PROFILE:steps = [{ target_cps = 10 }]\n",
        ["profile steps[0]", "exactly target_cps and duration"],
    ),
    (
        "profile-step-zero",
        {},
        {},
        "PROFILE:steps = [{ target_cps = 0, duration = 5 }]\n",
        ["steps[0].target_cps 0", "from 1 to"],
    ),
    ("profile-empty-steps", {}, {}, "PROFILE:steps = []\n", ["profile steps", "non-empty"]),
    (
        "processes-above-workers",
        {"workers": "4", "processes": "5"},
        {},
        None,
        ["--processes '5'", "from 1 to --workers (4)"],
    ),
    ("processes-zero", {"processes": "0"}, {}, None, ["--processes '0'", "integer from 1"]),
    (
        "processes-with-ray",
        {"workers": "4", "processes": "2", "backend": "ray"},
        {},
        None,
        ["--processes '2'", "only with --backend local"],
    ),
]


@pytest.mark.parametrize(
    ("flags", "env", "profile", "fragments"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_bad_input_raises_one_line_settings_error(
    tmp_path: Path,
    flags: dict[str, Any],
    env: dict[str, str],
    profile: str | None,
    fragments: list[str],
) -> None:
    if profile is not None and profile.startswith("PROFILE:"):
        profile = write_profile(tmp_path, profile.removeprefix("PROFILE:"))
    with pytest.raises(SettingsError) as excinfo:
        resolve(flags, env, profile)
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    assert PASSWORD not in message


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_backend_ray_with_address_resolves() -> None:
    plan = resolve({"backend": "ray", "ray_address": "auto"}, {})
    assert (plan.backend, plan.ray_address) == ("ray", "auto")
    assert resolve({}, {"LOADENGINE_BACKEND": "ray"}).backend == "ray"
    assert resolve({}, {}).backend == "local"


def test_processes_default_one_per_shard_and_env() -> None:
    assert resolve({"workers": "8"}, {}).processes is None
    assert resolve({"workers": "8", "processes": "2"}, {}).processes == 2
    assert resolve({"workers": "8"}, {"LOADENGINE_PROCESSES": "4"}).processes == 4


def test_multiplex_default_off_flag_and_env() -> None:
    assert resolve({}, {}).multiplex is False
    assert resolve({"multiplex": True}, {}).multiplex is True
    assert resolve({}, {"LOADENGINE_MULTIPLEX": "on"}).multiplex is True


@pytest.mark.parametrize(
    ("batch", "workers", "cpus", "backend", "protocol", "hub", "expected"),
    [
        (1, 16, 2, "local", "text", True, 1),  # the single-row case: one hub for all
        (1, 64, 32, "local", "text", True, 16),  # half the CPUs run hubs
        (1, 3, 2, "local", "text", True, 1),
        (1, 2, 2, "local", "text", True, None),  # a CPU per shard: one process each
        (2, 16, 2, "local", "text", True, None),  # batched: a shard's Python is small
        (1, 16, 2, "ray", "text", True, None),
        (1, 16, 2, "local", "prepared", True, None),
        (1, 16, 2, "local", "text", False, 0),  # should, but cannot: said in the source
    ],
)
def test_auto_multiplex_only_single_row_shards_outnumbering_cpus(
    batch: int,
    workers: int,
    cpus: int,
    backend: str,
    protocol: str,
    hub: bool,
    expected: int | None,
) -> None:
    assert auto_multiplex(batch, workers, cpus, backend, protocol, hub) == expected


def test_single_row_shards_beyond_the_cpus_multiplex_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    plan = resolve({"workers": "16", "batch_size": "1"}, {})
    assert (plan.multiplex, plan.processes) == (True, 1)
    sources = dict(plan.sources)
    assert sources["multiplex"].startswith("auto (batch 1, 16 shards > 2 CPUs")
    assert sources["processes"] == sources["multiplex"]
    for flags, env in (
        ({"multiplex": False}, {}),
        ({}, {"LOADENGINE_MULTIPLEX": "off"}),
        ({"processes": "16"}, {}),  # a layout asked for is kept
    ):
        plan = resolve({"workers": "16", "batch_size": "1", **flags}, env)
        assert plan.multiplex is False, (flags, env)
    assert resolve({"workers": "16", "processes": "4", "batch_size": "1"}, {}).processes == 4
    assert resolve({"workers": "16", "batch_size": "10"}, {}).multiplex is False


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"multiplex": True, "backend": "ray"}, "only with --backend local"),
        ({"multiplex": True, "protocol": "prepared"}, "only with --protocol text"),
    ],
)
def test_multiplex_refused_where_it_cannot_run(flags: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        resolve(flags, {})
    assert str(excinfo.value).startswith("--multiplex: ")
    assert fragment in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_the_configuration_reference_is_generated_from_the_table() -> None:
    """docs/configuration.md is ``make docs``'s output: a setting added to FIELDS without
    regenerating the page fails here."""
    from pathlib import Path

    from loadengine.settings import FIELDS, reference_markdown

    page = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert page.read_text() == reference_markdown()
    for f in FIELDS:
        assert f"`{f.flag}" in page.read_text()


def test_every_setting_is_a_run_option_and_a_plan_entry() -> None:
    """The CLI's options and the results' plan come from the same table."""
    import typer

    from loadengine.cli import app
    from loadengine.run.results import plan_document
    from loadengine.settings import FIELDS

    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = {o for p in command.params for o in p.opts}
    plan = plan_document(resolve({"dsn": "mysql://u@h/db"}, {}, None))
    for f in FIELDS:
        assert f.flag in options
        assert (f.name in plan) == f.in_plan

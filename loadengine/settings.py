"""Where settings come from: flags over environment over profile over defaults.

``resolve`` turns the raw strings of each layer into one validated, frozen ``RunPlan``
and records, per setting, which layer it came from. Every bad value raises
``SettingsError`` with one line naming the value and what is allowed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loadengine import data
from loadengine.core import thresholds
from loadengine.core.dsn import DsnError, dsn_from_parts, parse_dsn, redact_text
from loadengine.core.plan import (
    BACKENDS,
    DEFAULT_MIX,
    OPERATIONS,
    OVERLOAD_POLICIES,
    SHARD_FAILURE_POLICIES,
    RunPlan,
)
from loadengine.core.spec import SpecError, WorkloadSpec
from loadengine.core.spec import parse as parse_spec

# Each shard is one synchronous connection, so a commit stall (fsync of binlog + redo)
# blocks it; at least 4 shards keep commits in flight for group commit even on 2 cores
# (measured: 10K CPS default mix, 2 shards 99.0-99.9 %, p99 17-283 ms; 4 shards 100.0 %,
# p99 8 ms). Beyond 16 a single coordinator's merge is not the limit, the host is.
MIN_WORKERS_DEFAULT = 4
MAX_WORKERS_DEFAULT = 16
# Upper bounds, checked before anything starts (docs/configuration.md lists them):
MAX_TARGET_CPS = 10_000_000  # ~30x the highest rate measured on one server (batched)
MAX_BATCH_SIZE = 100_000  # rows one transaction may carry; also checked against
#                           the server's max_allowed_packet at connect
MAX_DURATION_S = 604_800  # one week
MAX_WARMUP_S = 86_400
MAX_LOG_INTERVAL_S = 3_600.0
MAX_SEED = 2**63 - 1
MAX_WORKERS = 1024
MAX_SINK_TIMEOUT_S = 3_600.0


class SettingsError(ValueError):
    """One line: the offending value and what is allowed."""


@dataclass(frozen=True, slots=True)
class Field:
    """One setting, declared once: the ``run`` command's option, its environment variables,
    its profile key, the results file's ``plan`` entry and docs/configuration.md are all
    generated from this table.

    ``name`` is the ``RunPlan`` attribute and the ``plan`` key in results; ``switch`` is
    "" for an option taking a value, "on" for a flag that can only turn a setting on
    (``--audit``), "pair" for ``--x/--no-x``. ``allowed`` is the documented range."""

    name: str
    flag: str
    env: tuple[str, ...]
    default: Any
    help: str
    allowed: str = ""
    switch: str = ""
    in_profile: bool = True
    in_plan: bool = True  # listed on its own in the results' ``plan`` (TLS travels in the DSN)

    @property
    def profile_key(self) -> str | None:
        return self.flag.removeprefix("--").replace("-", "_") if self.in_profile else None


_CPS = f"1 to {MAX_TARGET_CPS:,}, or max"
FIELDS: tuple[Field, ...] = (
    Field(
        "target_cps",
        "--target-cps",
        ("TARGET_CPS",),
        1000,
        "changes per second; max = unthrottled",
        _CPS,
    ),
    Field(
        "duration_s",
        "--duration",
        ("DURATION_SECONDS",),
        10,
        "measured seconds",
        f"1 to {MAX_DURATION_S:,}",
    ),
    Field(
        "warmup_s",
        "--warmup",
        ("WARMUP_SECONDS",),
        0,
        "seconds of load at the first rate before measuring",
        f"0 to {MAX_WARMUP_S:,}",
    ),
    Field(
        "workers",
        "--workers",
        ("CONCURRENCY",),
        None,
        "shards, one connection each (default: CPU count within 4..16, at most the target CPS)",
        f"1 to {MAX_WORKERS:,}, at most the target CPS",
    ),
    Field(
        "processes",
        "--processes",
        ("LOADENGINE_PROCESSES",),
        None,
        "local backend: OS processes the shards are dealt to, on threads (default: one per shard)",
        "1 to --workers",
    ),
    Field(
        "multiplex",
        "--multiplex",
        ("LOADENGINE_MULTIPLEX",),
        None,
        "local backend, text protocol: a process's shards on one thread, round trips "
        "multiplexed (default: on at batch 1 when shards outnumber CPUs)",
        "on/off",
        "pair",
    ),
    Field(
        "batch_size",
        "--batch-size",
        ("BATCH_SIZE",),
        10,
        "changes per transaction (multi-row statements)",
        f"1 to {MAX_BATCH_SIZE:,}, within the server's max_allowed_packet",
    ),
    Field(
        "log_interval_s",
        "--log-interval",
        ("LOG_INTERVAL_SECONDS",),
        1.0,
        "seconds between live lines",
        f"0.1 to {MAX_LOG_INTERVAL_S:,.0f}",
    ),
    Field(
        "mix",
        "--mix",
        ("LOADENGINE_MIX",),
        None,
        "operation weights op=w,... of insert_customer, insert_order, update_customer, "
        "update_order (default 20/30/20/30)",
        "weights >= 0, not all 0, each operation once",
    ),
    Field(
        "workload",
        "--workload",
        ("LOADENGINE_WORKLOAD",),
        "inventory",
        "what the load writes: a built-in workload or a workload spec file (TOML, "
        "docs/workloads.md)",
        "inventory, inventory-full, large-rows, ddl, payments, or a .toml file",
    ),
    Field(
        "seed",
        "--seed",
        ("LOADENGINE_SEED",),
        1,
        "same seed + plan = same changes, shard by shard",
        "0 to 2**63-1",
    ),
    Field(
        "on_overload",
        "--on-overload",
        ("LOADENGINE_ON_OVERLOAD",),
        "catch-up",
        "when the target cannot be met",
        ", ".join(OVERLOAD_POLICIES),
    ),
    Field(
        "dsn",
        "--dsn",
        ("LOADENGINE_DSN",),
        None,
        "the server (default: an embedded private server); also "
        "MYSQL_HOST/PORT/USER/PASSWORD/DATABASE",
        "mysql://user:pass@host:port/db[?unix_socket=...&ssl_ca=...]",
    ),
    Field(
        "output",
        "--output",
        ("LOADENGINE_OUTPUT",),
        None,
        "results file (default results/run-<UTC time>.json; - = stdout)",
        "a file that can be created",
        in_profile=False,
    ),
    Field(
        "keep_server",
        "--keep-server",
        (),
        False,
        "leave the embedded server running and print its DSN",
        "flag",
        "on",
        in_profile=False,
    ),
    Field(
        "protocol",
        "--protocol",
        ("LOADENGINE_PROTOCOL",),
        "text",
        "how statements travel: the workload's literal SQL, or server-side prepared statements",
        "text, prepared",
    ),
    Field(
        "retries",
        "--retries",
        ("LOADENGINE_RETRIES",),
        3,
        "retries per transaction after a deadlock, lock wait timeout or lost connection",
        "0 to 100",
    ),
    Field(
        "on_shard_failure",
        "--on-shard-failure",
        ("LOADENGINE_ON_SHARD_FAILURE",),
        "abort",
        "a shard process that dies: fail the run, or restart it (same keys, same "
        "schedule; at most 3 times)",
        ", ".join(SHARD_FAILURE_POLICIES),
    ),
    Field(
        "backend",
        "--backend",
        ("LOADENGINE_BACKEND",),
        "local",
        "where shards run: local processes, or Ray actors (extra [ray])",
        ", ".join(BACKENDS),
    ),
    Field(
        "ray_address",
        "--ray-address",
        ("LOADENGINE_RAY_ADDRESS",),
        None,
        "--backend ray: the cluster's address (default: a local runtime)",
        "host:port, or auto",
    ),
    Field(
        "password_file",
        "--password-file",
        ("LOADENGINE_PASSWORD_FILE",),
        None,
        "read the DB password from this file (or LOADENGINE_PASSWORD); wins over the DSN's",
        "a readable UTF-8 file",
    ),
    Field(
        "ssl_ca",
        "--ssl-ca",
        ("LOADENGINE_SSL_CA",),
        None,
        "TLS: CA certificate; with it the server's certificate and host name are verified",
        "an existing file",
        in_plan=False,
    ),
    Field(
        "ssl_cert",
        "--ssl-cert",
        ("LOADENGINE_SSL_CERT",),
        None,
        "TLS: client certificate (with --ssl-key)",
        "an existing file",
        in_plan=False,
    ),
    Field(
        "ssl_key",
        "--ssl-key",
        ("LOADENGINE_SSL_KEY",),
        None,
        "TLS: client key (with --ssl-cert)",
        "an existing file",
        in_plan=False,
    ),
    Field(
        "ssl_verify",
        "--ssl-verify",
        ("LOADENGINE_SSL_VERIFY",),
        True,
        "TLS: verify the server certificate",
        "on, off",
        in_plan=False,
    ),
    Field(
        "min_efficiency",
        "--min-efficiency",
        ("LOADENGINE_MIN_EFFICIENCY",),
        None,
        "threshold: measured / planned changes",
        "0 to 1",
        in_plan=False,  # under plan.thresholds
    ),
    Field(
        "max_p99_ms",
        "--max-p99-ms",
        ("LOADENGINE_MAX_P99_MS",),
        None,
        "threshold: latency p99 from the intended send time",
        ">= 0",
        in_plan=False,  # under plan.thresholds
    ),
    Field(
        "max_error_rate",
        "--max-error-rate",
        ("LOADENGINE_MAX_ERROR_RATE",),
        None,
        "threshold: errors per transaction attempt",
        "0 to 1",
        in_plan=False,  # under plan.thresholds
    ),
    Field(
        "max_capture_lag_ms",
        "--max-capture-lag-ms",
        ("LOADENGINE_MAX_CAPTURE_LAG_MS",),
        None,
        "threshold: binary-log capture lag p99 (with --follow-binlog)",
        ">= 0",
        in_plan=False,  # under plan.thresholds
    ),
    Field(
        "max_e2e_lag_ms",
        "--max-e2e-lag-ms",
        ("LOADENGINE_MAX_E2E_LAG_MS",),
        None,
        "threshold: end-to-end lag p99, database to sink (with --sink)",
        ">= 0",
        in_plan=False,  # under plan.thresholds
    ),
    Field(
        "max_sink_loss",
        "--max-sink-loss",
        ("LOADENGINE_MAX_SINK_LOSS",),
        None,
        "threshold: changes the sink may lose (with --sink)",
        ">= 0",
        in_plan=False,  # under plan.thresholds
    ),
    Field(
        "sink",
        "--sink",
        ("LOADENGINE_SINK",),
        None,
        "follow the pipeline's RabbitMQ sink during the run (implies the heartbeat): books, "
        "end-to-end lag",
        "amqp://user:pass@host:port/vhost",
    ),
    Field(
        "sink_timeout_s",
        "--sink-timeout",
        ("LOADENGINE_SINK_TIMEOUT",),
        60.0,
        "after the load, seconds to wait for every change to reach the sink",
        f"1 to {MAX_SINK_TIMEOUT_S:,.0f}",
    ),
    Field(
        "sink_exchange",
        "--sink-exchange",
        ("LOADENGINE_SINK_EXCHANGE",),
        "inventory",
        "the exchange Debezium publishes to",
        "an exchange name",
    ),
    Field(
        "sink_topic_prefix",
        "--sink-topic-prefix",
        ("LOADENGINE_SINK_TOPIC_PREFIX",),
        "inventory.inventory.",
        "routing key of a table = this prefix + the table (topic.prefix.database.)",
        "text",
    ),
    Field(
        "audit",
        "--audit",
        ("LOADENGINE_AUDIT",),
        False,
        "after the run, audit its binary-log window against the change ledger",
        "flag",
        "on",
    ),
    Field(
        "follow_binlog",
        "--follow-binlog",
        ("LOADENGINE_FOLLOW_BINLOG",),
        False,
        "tail the binary log during the run: capture lag, binlog bytes/s",
        "flag",
        "on",
    ),
)

# Profile keys are the flag names without dashes (``duration``, ``batch_size``...).
PROFILE_KEYS: dict[str, str] = {f.profile_key: f.name for f in FIELDS if f.profile_key}
PROFILE_EXTRA_KEYS = frozenset({"steps", "description"})


def default_workers() -> int:
    return max(MIN_WORKERS_DEFAULT, min(os.cpu_count() or 1, MAX_WORKERS_DEFAULT))


def _int(flag: str, value: Any, minimum: int, what: str, maximum: int | None = None) -> int:
    try:
        n = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise SettingsError(f"{flag} {value!r}: must be an integer {what}") from None
    if isinstance(value, bool) or n < minimum or (maximum is not None and n > maximum):
        raise SettingsError(f"{flag} {value!r}: must be an integer {what}")
    return n


def parse_target(value: Any, flag: str = "--target-cps") -> int | None:
    if str(value).strip().lower() == "max":
        return None
    return _int(flag, value, 1, f"from 1 to {MAX_TARGET_CPS:,}, or 'max'", MAX_TARGET_CPS)


def load_workload(name_or_path: str, flag: str = "--workload") -> WorkloadSpec:
    """A workload spec by built-in name (``loadengine/data/workloads``) or path, checked
    (``core.spec``); any problem is one ``SettingsError`` line."""
    name, table = load_toml(flag, str(name_or_path), "workloads")
    try:
        return parse_spec(name, table)
    except SpecError as exc:
        raise SettingsError(f"{flag} {name_or_path!r}: {exc}") from None


def parse_mix(
    value: Any, flag: str = "--mix", allowed: tuple[str, ...] = OPERATIONS
) -> tuple[tuple[str, int], ...]:
    """``op=weight,...`` (or a TOML table) -> ordered (op, weight) pairs."""
    items = (
        value.items()
        if isinstance(value, Mapping)
        else (
            part.split("=", 1) if "=" in part else (part, "")
            for part in str(value).split(",")
            if part.strip()
        )
    )
    weights: dict[str, int] = {}
    for raw_op, w in items:
        op = str(raw_op).strip()
        if op not in allowed:
            raise SettingsError(f"{flag}: unknown operation {op!r}; allowed: {', '.join(allowed)}")
        if op in weights:
            raise SettingsError(f"{flag} {value!r}: {op} given twice; give each operation once")
        weights[op] = _int(f"{flag} {op}", w, 0, ">= 0")
    if sum(weights.values()) == 0:
        raise SettingsError(f"{flag} {value!r}: weights sum to 0; at least one must be > 0")
    return tuple((op, weights[op]) for op in allowed if op in weights)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(flag: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{flag} {value!r}: must be true or false (or 1/0, yes/no, on/off)")


def parse_float(flag: str, value: Any, minimum: float, maximum: float | None = None) -> float:
    what = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{flag} {value!r}: must be a number {what}") from None
    if not x >= minimum or (maximum is not None and not x <= maximum):
        raise SettingsError(f"{flag} {value!r}: must be a number {what}")
    return x


def parse_steps(value: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or not value:
        raise SettingsError("profile steps: must be a non-empty list of {target_cps, duration}")
    out = []
    for i, step in enumerate(value):
        if not isinstance(step, Mapping) or set(step) != {"target_cps", "duration"}:
            raise SettingsError(f"profile steps[{i}]: must have exactly target_cps and duration")
        rate = _int(
            f"steps[{i}].target_cps",
            step["target_cps"],
            1,
            f"from 1 to {MAX_TARGET_CPS:,}",
            MAX_TARGET_CPS,
        )
        seconds = _int(
            f"steps[{i}].duration",
            step["duration"],
            1,
            f"from 1 to {MAX_DURATION_S:,}",
            MAX_DURATION_S,
        )
        out.append((rate, seconds))
    return tuple(out)


def load_toml(what: str, name_or_path: str, kind: str) -> tuple[str, dict[str, Any]]:
    """A TOML file by path, or by built-in name (package data ``kind/NAME.toml``); ``what``
    names it in errors (``--profile``, ``suite``). Returns its name (the file's stem) and
    its table."""
    path = Path(name_or_path)
    item = None if path.suffix else data.find(kind, name_or_path)
    if not path.is_file() and item is None:
        known = ", ".join(data.names(kind))
        noun = what.lstrip("-")
        raise SettingsError(f"{what} {name_or_path!r}: no such {noun} (known: {known})")
    try:
        if path.is_file():
            return path.stem, tomllib.loads(path.read_text(encoding="utf-8"))
        assert item is not None
        return name_or_path, tomllib.loads(item.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{what} {name_or_path!r}: not valid TOML ({exc})") from None


def load_profile(name_or_path: str) -> dict[str, Any]:
    """A profile by built-in name (``loadengine/data/profiles``) or path; unknown keys
    refused."""
    _, table = load_toml("--profile", name_or_path, "profiles")
    unknown = sorted(set(table) - set(PROFILE_KEYS) - PROFILE_EXTRA_KEYS)
    if unknown:
        allowed = sorted(set(PROFILE_KEYS) | PROFILE_EXTRA_KEYS)
        raise SettingsError(
            f"--profile {name_or_path!r}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}"
        )
    return {PROFILE_KEYS.get(k, k): v for k, v in table.items()}


def _env_value(f: Field, env: Mapping[str, str]) -> str | None:
    for name in f.env:
        if env.get(name, "") != "":
            return env[name]
    if f.name == "dsn":
        try:
            return dsn_from_parts(dict(env))
        except DsnError as exc:
            raise SettingsError(str(exc)) from None
    return None


def _layered(
    flags: Mapping[str, Any], env: Mapping[str, str], profile: Mapping[str, Any], profile_name: str
) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in FIELDS:
        if flags.get(f.name) is not None:
            values[f.name], sources[f.name] = flags[f.name], "flag"
        elif (v := _env_value(f, env)) is not None:
            values[f.name], sources[f.name] = (
                v,
                "env:" + (next((n for n in f.env if env.get(n)), "MYSQL_*")),
            )
        elif f.name in profile:
            values[f.name], sources[f.name] = profile[f.name], f"profile:{profile_name}"
        else:
            values[f.name], sources[f.name] = f.default, "default"
    return values, sources


def resolve(
    flags: Mapping[str, Any], env: Mapping[str, str], profile_name: str | None = None
) -> RunPlan:
    """The validated plan. ``flags`` holds only flags the user gave (others None)."""
    profile = load_profile(profile_name) if profile_name else {}
    values, sources = _layered(flags, env, profile, profile_name or "")
    target = parse_target(values["target_cps"], _flag_for("target_cps", sources))
    duration = _int(
        _flag_for("duration_s", sources),
        values["duration_s"],
        1,
        f"from 1 to {MAX_DURATION_S:,} (seconds)",
        MAX_DURATION_S,
    )
    steps: tuple[tuple[int, int], ...] = () if target is None else ((target, duration),)
    overridden = not sources["target_cps"].startswith(("profile", "default")) or not sources[
        "duration_s"
    ].startswith(("profile", "default"))
    if "steps" in profile and not overridden:
        steps = parse_steps(profile["steps"])
        duration = sum(d for _, d in steps)
        sources["target_cps"] = sources["duration_s"] = f"profile:{profile_name} (steps)"
    values["dsn"] = _with_credentials(values, sources, env)
    return _finish(values, sources, steps, duration)


PASSWORD_ENV = "LOADENGINE_PASSWORD"


def _read_password(flag: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SettingsError(f"{flag} {path!r}: cannot read the password file ({why})") from None


def _with_credentials(
    values: dict[str, Any], sources: dict[str, str], env: Mapping[str, str]
) -> str | None:
    """The DSN with the password (file > LOADENGINE_PASSWORD > DSN) and TLS options."""
    text = values["dsn"]
    extras = ("password_file", "ssl_ca", "ssl_cert", "ssl_key")
    if text is None or (
        not any(values[n] for n in extras)
        and not env.get(PASSWORD_ENV)
        and sources["ssl_verify"] == "default"
    ):
        return None if text is None else str(text)
    try:
        dsn = parse_dsn(str(text))
    except DsnError as exc:
        raise SettingsError(str(exc)) from None
    if values["password_file"]:
        dsn = replace(
            dsn,
            password=_read_password(
                _flag_for("password_file", sources), str(values["password_file"])
            ),
        )
        sources["password"] = sources["password_file"]
    elif env.get(PASSWORD_ENV):
        dsn = replace(dsn, password=env[PASSWORD_ENV])
        sources["password"] = f"env:{PASSWORD_ENV}"
    tls: dict[str, str] = {}
    for name in ("ssl_ca", "ssl_cert", "ssl_key"):
        path = values[name]
        if path is None:
            continue
        if not Path(str(path)).is_file():
            raise SettingsError(f"{_flag_for(name, sources)} {path!r}: no such file")
        tls[name] = str(path)
    dsn = replace(
        dsn,
        ssl_ca=tls.get("ssl_ca", dsn.ssl_ca),
        ssl_cert=tls.get("ssl_cert", dsn.ssl_cert),
        ssl_key=tls.get("ssl_key", dsn.ssl_key),
    )
    verify = parse_bool(_flag_for("ssl_verify", sources), values["ssl_verify"])
    if (dsn.ssl_cert is None) != (dsn.ssl_key is None):
        raise SettingsError("--ssl-cert and --ssl-key: give both or neither")
    return replace(dsn, ssl_verify=verify and dsn.ssl_verify).to_url()


def _flag_for(name: str, sources: Mapping[str, str]) -> str:
    f = next(x for x in FIELDS if x.name == name)
    src = sources.get(name, "default")
    if src.startswith("env:"):
        return src[4:]
    if src.startswith("profile"):
        return f"profile key {f.flag.removeprefix('--').replace('-', '_')}"
    return f.flag


def _thresholds(values: dict[str, Any], fl: Any) -> tuple[tuple[str, float], ...]:
    out = []
    for name in thresholds.NAMES:
        if values[name] is None:
            continue
        x = parse_float(fl(name), values[name], 0.0)
        if name in ("min_efficiency", "max_error_rate") and x > 1:
            raise SettingsError(
                f"{fl(name)} {values[name]!r}: a fraction from 0 to 1 (0.99 = 99 %)"
            )
        out.append((name, x))
    return tuple(out)


def _finish(  # noqa: C901 - one check per setting
    values: dict[str, Any],
    sources: dict[str, str],
    steps: tuple[tuple[int, int], ...],
    duration: int,
) -> RunPlan:
    fl = lambda n: _flag_for(n, sources)  # noqa: E731 - short local alias
    min_rate = min((r for r, _ in steps), default=None)
    workers_raw = values["workers"]
    if workers_raw is None:
        workers_raw = min(default_workers(), min_rate or MAX_WORKERS_DEFAULT)
        sources["workers"] = "default (cpu count within 4..16, at most the target CPS)"
    workers = _int(fl("workers"), workers_raw, 1, f"from 1 to {MAX_WORKERS}", MAX_WORKERS)
    if min_rate is not None and workers > min_rate:
        raise SettingsError(
            f"{fl('workers')} {workers}: exceeds the target of {min_rate} CPS; each shard needs "
            "at least 1 change/s (lower --workers or raise --target-cps)"
        )
    processes = _processes(values["processes"], workers, str(values["backend"]), fl)
    batch_size = _int(
        fl("batch_size"), values["batch_size"], 1, f"from 1 to {MAX_BATCH_SIZE:,}", MAX_BATCH_SIZE
    )
    on_overload = str(values["on_overload"])
    if on_overload not in OVERLOAD_POLICIES:
        raise SettingsError(
            f"{fl('on_overload')} {on_overload!r}: allowed: {', '.join(OVERLOAD_POLICIES)}"
        )
    protocol = str(values["protocol"])
    if protocol not in ("text", "prepared"):
        raise SettingsError(f"{fl('protocol')} {protocol!r}: allowed: text, prepared")
    on_shard_failure = str(values["on_shard_failure"])
    if on_shard_failure not in SHARD_FAILURE_POLICIES:
        raise SettingsError(
            f"{fl('on_shard_failure')} {on_shard_failure!r}: allowed: "
            f"{', '.join(SHARD_FAILURE_POLICIES)}"
        )
    backend = str(values["backend"])
    if backend not in BACKENDS:
        raise SettingsError(f"{fl('backend')} {backend!r}: allowed: {', '.join(BACKENDS)}")
    ray_address = values["ray_address"]
    if ray_address is not None and backend != "ray":
        raise SettingsError(
            f"{fl('ray_address')} {ray_address!r}: only with --backend ray (an address of a "
            "Ray cluster, or 'auto')"
        )
    multiplex, processes = _shard_layout(values, sources, (batch_size, workers, processes), fl)
    dsn = values["dsn"]
    if dsn is not None:
        try:
            parse_dsn(str(dsn))
        except DsnError as exc:
            raise SettingsError(str(exc)) from None
    spec = load_workload(str(values["workload"]), fl("workload"))
    if not spec.native and protocol == "prepared":
        raise SettingsError(
            f"{fl('protocol')} prepared: only with the inventory workload (a spec workload's "
            f"statements are literal text); use --protocol text with {spec.name!r}"
        )
    return RunPlan(
        steps=steps,
        duration_s=duration,
        warmup_s=_int(
            fl("warmup_s"),
            values["warmup_s"],
            0,
            f"from 0 to {MAX_WARMUP_S:,} (seconds)",
            MAX_WARMUP_S,
        ),
        workers=workers,
        batch_size=batch_size,
        log_interval_s=parse_float(
            fl("log_interval_s"), values["log_interval_s"], 0.1, MAX_LOG_INTERVAL_S
        ),
        mix=_mix(values["mix"], spec, fl("mix")),
        workload=str(values["workload"]),
        spec=None if spec.native and spec.ddl is None else spec,
        seed=_int(fl("seed"), values["seed"], 0, "from 0 to 2**63-1", MAX_SEED),
        on_overload=on_overload,
        dsn=None if dsn is None else str(dsn),
        output=None if values["output"] is None else str(values["output"]),
        keep_server=bool(values["keep_server"]),
        retries=_int(fl("retries"), values["retries"], 0, "from 0 to 100", maximum=100),
        on_shard_failure=on_shard_failure,
        protocol=protocol,
        backend=backend,
        ray_address=None if ray_address is None else str(ray_address),
        thresholds=_thresholds(values, fl),
        audit=parse_bool(fl("audit"), values["audit"]),
        follow_binlog=parse_bool(fl("follow_binlog"), values["follow_binlog"]),
        **_sink(values, fl),
        processes=processes,
        multiplex=multiplex,
        sources=tuple(sorted(sources.items())),
    )


def _mix(raw: Any, spec: WorkloadSpec, flag: str) -> tuple[tuple[str, int], ...]:
    """The inventory's operation weights (``--mix``), or a spec's, which ``--mix`` may
    override by operation name."""
    if spec.native:
        return DEFAULT_MIX if raw is None else parse_mix(raw, flag)
    if raw is None:
        return spec.mix
    given = dict(parse_mix(raw, flag, tuple(o.name for o in spec.operations)))
    return tuple((o.name, given.get(o.name, 0)) for o in spec.operations)


def _sink(values: dict[str, Any], fl: Callable[[str], str]) -> dict[str, Any]:
    url = values["sink"]
    if url is not None and not str(url).startswith(("amqp://", "amqps://")):
        raise SettingsError(
            f"{fl('sink')} {redact_text(str(url))!r}: must be amqp://user:pass@host:port/vhost"
        )
    return {
        "sink": None if url is None else str(url),
        "sink_timeout_s": parse_float(
            fl("sink_timeout_s"), values["sink_timeout_s"], 1.0, MAX_SINK_TIMEOUT_S
        ),
        "sink_exchange": str(values["sink_exchange"]),
        "sink_topic_prefix": str(values["sink_topic_prefix"]),
    }


def _processes(raw: Any, workers: int, backend: str, fl: Callable[[str], str]) -> int | None:
    """OS processes for the shards (local backend). None (the default) is one per shard."""
    if raw is None:
        return None
    processes = _int(fl("processes"), raw, 1, f"from 1 to --workers ({workers})", workers)
    if backend != "local":
        raise SettingsError(
            f"{fl('processes')} {raw!r}: only with --backend local (a Ray actor is one shard)"
        )
    return processes


def _shard_layout(
    values: dict[str, Any],
    sources: dict[str, str],
    shape: tuple[int, int, int | None],
    fl: Callable[[str], str],
) -> tuple[bool, int | None]:
    """``--multiplex`` and ``--processes`` as asked for, or as ``auto_multiplex`` chooses
    when neither was (the choice, or why none was made, goes into ``sources``)."""
    batch_size, workers, processes = shape
    backend, protocol = str(values["backend"]), str(values["protocol"])
    multiplex = _multiplex(values["multiplex"], backend, protocol, fl)
    if values["multiplex"] is not None or processes is not None:
        return multiplex, processes
    cpus = os.cpu_count() or 1
    hub = sys.platform == "linux" and importlib.util.find_spec("greenlet") is not None
    auto = auto_multiplex(batch_size, workers, cpus, backend, protocol, hub)
    if auto == 0:
        sources["multiplex"] = (
            "default (single-row shards outnumber the CPUs, but multiplexing them needs "
            "Linux and greenlet: pip install 'loadengine[multiplex]')"
        )
    elif auto is not None:
        sources["multiplex"] = sources["processes"] = (
            f"auto (batch 1, {workers} shards > {cpus} CPUs: {auto} process(es), one "
            "thread each; --no-multiplex for one process per shard)"
        )
        return True, auto
    return multiplex, processes


def auto_multiplex(
    batch_size: int, workers: int, cpus: int, backend: str, protocol: str, hub: bool
) -> int | None:
    """Processes to multiplex the shards on when nothing was asked for; None if they
    should not be, 0 if they should but cannot (``hub``: Linux with greenlet). Pure.

    Single-row transactions from more shards than CPUs: one process per shard would
    spend most of the client's CPU switching between them, CPU a shared host takes from
    the server (``benchmarks/RESULTS.md``: 0.70 of sysbench's rate with 16 processes on
    2 CPUs, 0.9 multiplexed on one). Half the CPUs run hubs, the rest is the server's."""
    if batch_size != 1 or workers <= cpus or backend != "local" or protocol != "text":
        return None
    return max(1, min(workers, cpus // 2)) if hub else 0


def _multiplex(raw: Any, backend: str, protocol: str, fl: Callable[[str], str]) -> bool:
    """Shards of one process on one thread (``hub``); local backend, text protocol."""
    if raw is None or not parse_bool(fl("multiplex"), raw):
        return False
    if backend != "local":
        raise SettingsError(f"{fl('multiplex')}: only with --backend local")
    if protocol != "text":
        raise SettingsError(
            f"{fl('multiplex')}: only with --protocol text (its round trips are text queries)"
        )
    if importlib.util.find_spec("greenlet") is None:
        raise SettingsError(
            f"{fl('multiplex')}: needs the greenlet package (pip install 'loadengine[multiplex]')"
        )
    return True


def parse_int(flag: str, value: Any, minimum: int, what: str, maximum: int | None = None) -> int:
    """Public form of the integer check, for commands other than ``run``."""
    return _int(flag, value, minimum, what, maximum)


def reference_markdown() -> str:
    """docs/configuration.md, generated from ``FIELDS`` (``make docs``; a test checks it)."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from loadengine/settings.py (FIELDS) by `make docs`; do not edit. -->",
        "",
        "Every setting of `loadengine run`. Precedence: flags over environment over profile",
        "over defaults; the results file's `plan` records each effective value and its source.",
        "Profile keys are the flag names with underscores, plus `steps = [{target_cps, duration},",
        "...]` for a ramp and `description`; an unknown key is refused. A value out of range",
        "exits 2 with one line naming it, before anything starts.",
        "",
        "| flag | environment | profile key | default | allowed | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for f in FIELDS:
        flag = f"`{f.flag}/--no-{f.flag[2:]}`" if f.switch == "pair" else f"`{f.flag}`"
        env = ", ".join(f"`{e}`" for e in f.env) or "-"
        key = f"`{f.profile_key}`" if f.profile_key else "-"
        default = "-" if f.default is None else f"`{str(f.default).lower()}`"
        lines.append(f"| {flag} | {env} | {key} | {default} | {f.allowed} | {f.help} |")
    lines += [
        "",
        "The password: `--password-file`, else `LOADENGINE_PASSWORD`, else the DSN's. It never",
        "appears in output, logs or results (the results record only where it came from).",
        "",
    ]
    return "\n".join(lines)

"""``python -m loadengine run`` with bad input: exit 2, one ``error:`` line, no traceback.

Validation happens before any connection, so no database is needed. Every case that is
not itself about the DSN also passes a DSN pointing at a closed local port: if a bad
value were ever accepted, the run would fail fast (exit 1) instead of starting a server.
The processes run concurrently to keep this module at well under a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-Secret"
SAFE_DSN = "mysql://nobody@127.0.0.1:1/none"


class Case(NamedTuple):
    args: list[str]
    fragments: list[str]
    env: dict[str, str] = {}  # noqa: RUF012 - read-only table data


CASES: dict[str, Case] = {
    "target-0": Case(["--target-cps", "0"], ["--target-cps '0'", "from 1 to 10,000,000, or 'max'"]),
    "target-negative": Case(
        ["--target-cps", "-5"], ["--target-cps '-5'", "from 1 to 10,000,000, or 'max'"]
    ),
    "target-abc": Case(
        ["--target-cps", "abc"], ["--target-cps 'abc'", "from 1 to 10,000,000, or 'max'"]
    ),
    "workers-0": Case(["--workers", "0"], ["--workers '0'", "from 1 to 1024"]),
    "batch-0": Case(["--batch-size", "0"], ["--batch-size '0'", "from 1 to 100,000"]),
    "mix-unknown-op": Case(
        ["--mix", "insert_customer=1,truncate=2"],
        ["unknown operation 'truncate'", "allowed: insert_customer, insert_order"],
    ),
    "workload-unknown": Case(
        ["--workload", "inventory-ful"],
        ["--workload 'inventory-ful': no such workload", "inventory-full", "payments"],
    ),
    "workload-bad-spec": Case(
        ["--workload", "{tmp}/badspec.toml"],
        [
            "badspec.toml",
            "tables (payments).columns[0] (amount).gen",
            "generator 'text' does not fit a DECIMAL(12,2) column",
        ],
    ),
    "workload-prepared": Case(
        ["--workload", "payments", "--protocol", "prepared"],
        ["--protocol prepared: only with the inventory workload"],
    ),
    "workload-mix-unknown-op": Case(
        ["--workload", "payments", "--mix", "insert_customer=1"],
        ["--mix: unknown operation 'insert_customer'", "insert_payment"],
    ),
    "mix-zero": Case(
        ["--mix", "insert_customer=0,update_order=0"],
        ["--mix 'insert_customer=0,update_order=0'", "weights sum to 0"],
    ),
    "dsn-malformed": Case(
        ["--dsn", f"postgres://app:{PASSWORD}@db/shop"],
        ["invalid DSN 'postgres://app:***@db/shop'", "mysql:// or mariadb://"],
    ),
    "dsn-bad-port": Case(
        ["--dsn", f"mysql://app:{PASSWORD}@db:70000/shop"],
        ["invalid DSN 'mysql://app:***@db:70000/shop'", "port must be a number"],
    ),
    "profile-missing": Case(
        ["--profile", "no-such-profile"],
        ["--profile 'no-such-profile'", "no such profile", "known: high-load, medium"],
    ),
    "profile-unknown-key": Case(
        ["--profile", "{tmp}/bad.toml"],
        ["unknown key 'colour'", "allowed: audit, backend, batch_size"],
    ),
    "workers-over-target": Case(
        ["--target-cps", "3", "--workers", "4"], ["--workers 4", "exceeds the target of 3 CPS"]
    ),
    "unknown-flag": Case(["--frobnicate", "1"], ["No such option: --frobnicate"]),
    # more flags
    "target-nan": Case(
        ["--target-cps", "nan"], ["--target-cps 'nan'", "from 1 to 10,000,000, or 'max'"]
    ),
    "target-float": Case(["--target-cps", "1.5"], ["--target-cps '1.5'", "integer"]),
    "batch-max": Case(["--batch-size", "max"], ["--batch-size 'max'", "from 1 to 100,000"]),
    "warmup-negative": Case(["--warmup", "-1"], ["--warmup '-1'", "from 0 to 86,400"]),
    "workers-huge": Case(["--workers", "100000"], ["--workers '100000'", "from 1 to 1024"]),
    "log-interval-0": Case(["--log-interval", "0"], ["--log-interval '0'", "from 0.1 to 3600"]),
    "log-interval-nan": Case(
        ["--log-interval", "nan"], ["--log-interval 'nan'", "from 0.1 to 3600"]
    ),
    "seed-negative": Case(["--seed", "-1"], ["--seed '-1'", "from 0 to 2**63-1"]),
    "overload-unknown": Case(
        ["--on-overload", "explode"], ["--on-overload 'explode'", "catch-up, drop, abort"]
    ),
    "shard-failure-unknown": Case(
        ["--on-shard-failure", "maybe"], ["--on-shard-failure 'maybe'", "abort, restart"]
    ),
    "backend-unknown": Case(["--backend", "k8s"], ["--backend 'k8s'", "allowed: local, ray"]),
    "ray-address-without-ray": Case(
        ["--ray-address", "auto"], ["--ray-address 'auto'", "only with --backend ray"]
    ),
    "retries-negative": Case(["--retries", "-1"], ["--retries '-1'", "from 0 to 100"]),
    "mix-negative-weight": Case(
        ["--mix", "insert_customer=-1,update_order=2"], ["--mix insert_customer '-1'", ">= 0"]
    ),
    "mix-weight-text": Case(["--mix", "insert_customer=lots"], ["insert_customer 'lots'"]),
    "ssl-verify-word": Case(
        ["--ssl-verify", "perhaps"], ["--ssl-verify 'perhaps'", "true or false"]
    ),
    "ssl-ca-missing": Case(["--ssl-ca", "/nonexistent/ca.pem"], ["--ssl-ca", "no such file"]),
    "password-file-missing": Case(
        ["--password-file", "/nonexistent/pw"], ["--password-file '/nonexistent/pw'", "cannot read"]
    ),
    "output-dir-missing": Case(
        ["--output", "/nonexistent/dir/r.json"],
        ["--output '/nonexistent/dir/r.json'", "does not exist"],
    ),
    # upper bounds and ambiguities (refused before anything starts)
    "batch-huge": Case(
        ["--batch-size", "100000000"], ["--batch-size '100000000'", "from 1 to 100,000"]
    ),
    "target-huge": Case(
        ["--target-cps", "99999999999999999999"],
        ["--target-cps '99999999999999999999'", "from 1 to 10,000,000"],
    ),
    "duration-huge": Case(
        [], ["DURATION_SECONDS '9999999'", "604,800"], {"DURATION_SECONDS": "9999999"}
    ),
    "seed-huge": Case(["--seed", str(2**64)], ["--seed", "from 0 to 2**63-1"]),
    "log-interval-huge": Case(["--log-interval", "1e9"], ["--log-interval", "3600"]),
    "mix-duplicate-op": Case(
        ["--mix", "insert_customer=1,insert_customer=2"],
        ["--mix 'insert_customer=1,insert_customer=2'", "insert_customer given twice"],
    ),
    "output-unwritable-dir": Case(
        ["--output", "/proc/loadengine.json"],
        ["--output '/proc/loadengine.json'", "cannot create a file in '/proc'"],
    ),
    "output-is-a-directory": Case(["--output", "/tmp"], ["--output '/tmp'", "not a regular file"]),
    # environment variables
    "env-target-negative": Case(
        [], ["TARGET_CPS '-3'", "from 1 to 10,000,000, or 'max'"], {"TARGET_CPS": "-3"}
    ),
    "env-workers-0": Case([], ["CONCURRENCY '0'", "from 1 to 1024"], {"CONCURRENCY": "0"}),
    "env-duration-text": Case(
        [], ["DURATION_SECONDS 'abc'", "from 1 to 604,800"], {"DURATION_SECONDS": "abc"}
    ),
    "env-audit-word": Case(
        [], ["LOADENGINE_AUDIT 'maybe'", "true or false"], {"LOADENGINE_AUDIT": "maybe"}
    ),
    "env-mysql-port": Case(
        [], ["MYSQL_PORT '99999'", "1 to 65535"], {"MYSQL_HOST": "db", "MYSQL_PORT": "99999"}
    ),
    "env-dsn-port-0": Case(
        [],
        ["invalid DSN 'mysql://u:***@h:0/db'", "port must be"],
        {"LOADENGINE_DSN": f"mysql://u:{PASSWORD}@h:0/db"},
    ),
    # profile files
    "profile-wrong-type": Case(
        ["--profile", "{tmp}/wrongtype.toml"],
        ["profile key target_cps 'fast'", "from 1 to 10,000,000, or 'max'"],
    ),
    "profile-bool-duration": Case(
        ["--profile", "{tmp}/booldur.toml"], ["profile key duration True", "from 1 to 604,800"]
    ),
    "profile-not-toml": Case(["--profile", "{tmp}/broken.toml"], ["not valid TOML"]),
    "profile-not-utf8": Case(["--profile", "{tmp}/binary.toml"], ["not valid TOML"]),
    "profile-bad-steps": Case(
        ["--profile", "{tmp}/badsteps.toml"], ["steps[0]", "target_cps and duration"]
    ),
    # DSNs
    "dsn-no-user": Case(["--dsn", "mysql://@db/shop"], ["user is missing"]),
    "dsn-no-database": Case(
        ["--dsn", f"mysql://u:{PASSWORD}@db:3306/"], ["database name is missing"]
    ),
    "dsn-port-text": Case(
        ["--dsn", f"mysql://u:{PASSWORD}@db:abc/shop"], ["port must be a number"]
    ),
    "dsn-unknown-option": Case(
        ["--dsn", f"mysql://u:{PASSWORD}@db/shop?sslmode=require"], ["unknown option 'sslmode'"]
    ),
}


class Result(NamedTuple):
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Result]]:
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "bad.toml").write_text('target_cps = 10\ncolour = "red"\n')
    (tmp / "wrongtype.toml").write_text('target_cps = "fast"\n')
    (tmp / "booldur.toml").write_text("duration = true\n")
    (tmp / "broken.toml").write_text("target_cps = = 3\n")
    (tmp / "binary.toml").write_bytes(b"\xff\xfe\x00target")
    (tmp / "badsteps.toml").write_text("steps = [{target_cps = 10}]\n")
    (tmp / "badspec.toml").write_text(
        '[[tables]]\nname = "payments"\ncolumns = [{ name = "amount", type = "DECIMAL(12,2)", '
        'gen = { kind = "text" } }]\n[[operations]]\nname = "i"\nkind = "insert"\n'
        'table = "payments"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, case in CASES.items():
            args = [a.replace("{tmp}", str(tmp)) for a in case.args]
            if "--dsn" not in args and not case.env:
                args += ["--dsn", SAFE_DSN]
            if "--profile" not in args and "DURATION_SECONDS" not in case.env:
                args += ["--duration", "1"]
            if "--output" not in args:
                args += ["--output", str(tmp / f"{name}.json")]
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "loadengine", "run", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**env, **case.env},
            )
        out = {}
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=60)
            out[name] = Result(proc.returncode, stdout, stderr)
        yield out
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_table_covers_at_least_30_inputs() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_error_line(results: dict[str, Result], name: str) -> None:
    r = results[name]
    assert "Traceback" not in r.stderr + r.stdout
    assert r.code == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    for fragment in CASES[name].fragments:
        assert fragment in lines[0]
    assert PASSWORD not in r.stderr + r.stdout
    assert r.stdout == ""


def test_ray_backend_without_the_extra_names_the_install(tmp_path: Path) -> None:
    """With Ray not importable, ``--backend ray`` says how to add it, before any work."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['ray'] = None\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    env["PYTHONPATH"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "loadengine", "run", "--backend", "ray", "--dsn", SAFE_DSN],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "error: --backend ray needs Ray: pip install 'loadengine[ray]'"
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--dsn", SAFE_DSN], "exactly one of --from-start and --resume"),
        (["--dsn", SAFE_DSN, "--from-start", "--resume"], "exactly one of --from-start"),
        (["--from-start"], "--dsn: required"),
        (["--dsn", SAFE_DSN, "--from-start", "--inject-fault", "drop=0"], "drop=N or duplicate=N"),
        (["--dsn", SAFE_DSN, "--from-start", "--config", "/nonexistent.properties"], "cannot read"),
        (["--dsn", SAFE_DSN, "--from-start", "--interval", "0"], "--interval '0'"),
    ],
)
def test_debezium_bad_input_exits_2_with_one_line(args: list[str], fragment: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "loadengine", "debezium", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_debezium_without_java_names_the_install(tmp_path: Path) -> None:
    """No java on PATH: one line naming the package, exit 2, nothing started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "loadengine", "debezium", "--dsn", SAFE_DSN, "--from-start"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: loadengine debezium needs Java 17: apt-get install openjdk-17-jre-headless"
    ]

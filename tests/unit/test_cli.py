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


CASES: dict[str, Case] = {
    "target-0": Case(["--target-cps", "0"], ["--target-cps '0'", ">= 1, or 'max'"]),
    "target-negative": Case(["--target-cps", "-5"], ["--target-cps '-5'", ">= 1, or 'max'"]),
    "target-abc": Case(["--target-cps", "abc"], ["--target-cps 'abc'", ">= 1, or 'max'"]),
    "workers-0": Case(["--workers", "0"], ["--workers '0'", "from 1 to 1024"]),
    "batch-0": Case(["--batch-size", "0"], ["--batch-size '0'", ">= 1"]),
    "mix-unknown-op": Case(
        ["--mix", "insert_customer=1,truncate=2"],
        ["unknown operation 'truncate'", "allowed: insert_customer, insert_order"],
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
        ["--profile", "{tmp}/bad.toml"], ["unknown key 'colour'", "allowed: audit, batch_size"]
    ),
    "workers-over-target": Case(
        ["--target-cps", "3", "--workers", "4"], ["--workers 4", "exceeds the target of 3 CPS"]
    ),
    "unknown-flag": Case(["--frobnicate", "1"], ["No such option: --frobnicate"]),
}


class Result(NamedTuple):
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Result]]:
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "bad.toml").write_text('target_cps = 10\ncolour = "red"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, case in CASES.items():
            args = [a.replace("{tmp}", str(tmp)) for a in case.args]
            if "--dsn" not in args:
                args += ["--dsn", SAFE_DSN]
            args += ["--duration", "1", "--output", str(tmp / f"{name}.json")]
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "loadengine", "run", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=env,
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

"""Every built-in workload against a real private server with the binary log on: created
with ``schema reset --workload``, run with ``--audit``, books exact (the load's and the
setup's changes equal the workload tables' row events in the log, key by key, deletes
included; DDL counted apart). Then a spec workload under the faults that exist: its
in-doubt commits looked up on the server, a shard killed, the server killed mid-run."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import time
from pathlib import Path

import psutil
import pytest

from loadengine.core.aggregate import Bucket
from loadengine.core.dsn import Dsn
from loadengine.core.generic import GenericBuilder, KeyPool
from loadengine.core.plan import RunPlan, shard_plans
from loadengine.core.workload import OpSequence, Statement
from loadengine.server import database, embedded, schema_admin
from loadengine.settings import load_workload
from loadengine.shard import journal, recovery
from tests.integration.conftest import (
    assert_audit_exact,
    load_results,
    run_cli,
    shard_pids,
    start_cli,
    wait_for_line,
)

pytestmark = pytest.mark.integration


def _books_exact(doc: dict) -> None:
    assert_audit_exact(doc)
    a, s = doc["audit"], doc["summary"]
    assert a["clean"], a
    assert a["changes_by_table"] == s["changes_by_table"]
    assert a["setup"]["observed"] == s["setup_changes_total"] > 0


@pytest.mark.parametrize(
    ("workload", "cps", "seconds"),
    [("inventory-full", 2000, 3), ("large-rows", 200, 2), ("payments", 1000, 2), ("ddl", 1000, 6)],
)
def test_builtin_workload_books_exact(
    dsn: Dsn, tmp_path: Path, workload: str, cps: int, seconds: int
) -> None:
    reset = run_cli("schema", "reset", "--workload", workload, "--dsn", dsn.to_url())
    assert reset.returncode == 0 and "ready" in reset.stdout, reset.stdout + reset.stderr
    out = tmp_path / "r.json"
    args = ["--target-cps", str(cps), "--duration", str(seconds), "--workers", "2"]
    proc = run_cli("run", "--dsn", dsn.to_url(), "--workload", workload, "--audit",
                   "--output", str(out), *args)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_results(out)
    assert doc["plan"]["workload"]["value"] == workload
    assert doc["summary"]["changes"] == cps * seconds
    _books_exact(doc)
    a, by_table = doc["audit"], doc["summary"]["changes_by_table"]
    if workload in ("inventory-full", "payments", "large-rows"):
        assert sum(k.get("delete", 0) for k in by_table.values()) > 0
    if workload == "inventory-full":
        assert set(by_table) == {"customers", "orders"}
        assert all(set(k) == {"insert", "update", "delete"} for k in by_table.values())
    if workload == "large-rows":
        changes = a["binlog_changes"] + a["setup"]["observed"]
        assert a["binlog_bytes"] / changes >= 10_000
    if workload == "ddl":
        ddl = doc["summary"]["ddl"]
        assert ddl["executed"] >= 1 and ddl["failed"] == 0
        assert ddl["statements"][0]["sql"].startswith("ALTER TABLE customers ADD COLUMN")
        assert a["ddl"] == {"executed": ddl["executed"], "observed": ddl["executed"]}
    else:
        assert a["ddl"] == {"executed": 0, "observed": 0}


def test_schema_status_names_a_workloads_missing_tables(dsn: Dsn, tmp_path: Path) -> None:
    status = run_cli("schema", "status", "--workload", "payments", "--dsn", dsn.to_url())
    assert status.returncode == 1 and "missing: accounts, payments" in status.stdout
    run = run_cli("run", "--dsn", dsn.to_url(), "--workload", "payments", "--duration", "1",
                  "--output", str(tmp_path / "r.json"))  # fmt: skip
    said = run.stdout + run.stderr
    assert run.returncode == 1
    assert "tables accounts, payments" in said and "schema init" in said
    assert "--workload payments" in said


def _spec_shard(d: Dsn, tmp_path: Path, seeded: bool = True):  # type: ignore[no-untyped-def]
    spec = load_workload("payments")
    plan = RunPlan(
        steps=((100, 5),), duration_s=5, warmup_s=0, workers=1, batch_size=4,
        log_interval_s=1.0, mix=spec.mix, seed=1, on_overload="catch-up", dsn=None,
        output=None, keep_server=False, workload="payments", spec=spec,
    )  # fmt: skip
    schema_admin.init(d, spec)
    firsts = {t.name: t.first_key for t in spec.tables}
    shard = dataclasses.replace(
        shard_plans(plan, d.to_url(), 0, 0, "tok", firsts)[0], journal_dir=str(tmp_path)
    )
    return spec, shard


def _only(stmts: list[Statement], kind: str) -> list[Statement]:
    return [st for st in stmts if st.kind == kind]


@pytest.mark.parametrize("kind", ["update", "delete"])
@pytest.mark.parametrize("committed", [True, False])
def test_spec_in_doubt_update_or_delete_is_looked_up(
    dsn: Dsn, tmp_path: Path, kind: str, committed: bool
) -> None:
    """A transaction of only updates (found by its version stamp) or only deletes (found
    by its rows being gone) whose ack never reached the journal: booked if the server
    has it, resent if not. Never guessed."""
    spec, shard = _spec_shard(dsn, tmp_path)
    from loadengine.shard.loop import seed_keys

    session = database.Session(dsn)
    try:
        seed_keys(shard, session)
        builder = GenericBuilder(spec, shard.keys, shard.seed)
        pool, rng = KeyPool.empty(len(spec.tables)), random.Random(5)
        cursor = builder.initial_cursor()
        seq = OpSequence(spec.mix)
        stmts: list[Statement] = []
        batch = 0
        while not _only(stmts, kind):  # a transaction holding the kind wanted
            batch += 1
            stmts, _ = builder.build(seq, 4, rng, cursor, pool, batch)
        pending = _only(stmts, kind)[:1]
        if committed:
            session.run_transaction(pending)
    finally:
        session.close()
    jr = journal.Journal(journal.path_for(str(tmp_path), 0, 0))
    jr.intents([(batch, f"tok.0.{batch}", pending)])
    jr.close()

    delta, resume = recovery.recover(shard, 1, Bucket(), {}, dsn, {})

    rows = pending[0].rows
    outcome = "ambiguous_committed" if committed else "ambiguous_rolled_back"
    assert delta.faults == {"recovered_changes": rows if committed else 0, outcome: 1}
    table = pending[0].table
    assert delta.changes == ({table: {kind: rows}} if committed else {})
    keys = delta.deleted_keys if kind == "delete" else delta.updated_keys
    assert (table in keys) == committed
    assert resume.batch == (batch if committed else batch - 1)
    if kind == "delete" and committed:
        assert set(resume.gone[[t.name for t in spec.tables].index(table)]) == set(
            pending[0].key_indices
        )


def _run_args(d: Dsn, out: Path, *args: str) -> list[str]:
    return ["run", "--dsn", d.to_url(), "--workload", "inventory-full", "--audit",
            "--output", str(out), "--workers", "2", "--batch-size", "10", *args]  # fmt: skip


def test_spec_shard_killed_restarts_and_books_exact(dsn: Dsn, tmp_path: Path) -> None:
    reset = run_cli("schema", "reset", "--workload", "inventory-full", "--dsn", dsn.to_url())
    assert reset.returncode == 0, reset.stderr
    out = tmp_path / "r.json"
    proc = start_cli(*_run_args(dsn, out, "--target-cps", "1000", "--duration", "6",
                                "--on-shard-failure", "restart"))  # fmt: skip
    wait_for_line(proc, "[   2s]")
    os.kill(sorted(shard_pids(psutil.Process(proc.pid)))[0], signal.SIGKILL)
    wait_for_line(proc, "DIED")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    assert doc["failures"][0]["action"] == "restarted"
    assert doc["summary"]["changes"] == 6_000
    _books_exact(doc)


def test_spec_server_killed_mid_run_books_exact(
    own_server: embedded.EmbeddedServer, tmp_path: Path
) -> None:
    """The server dies with commits in flight (some COMMITs in doubt, looked up when it is
    back by the stamps and keys of the spec workload), restarts, and the load goes on."""
    d = own_server.dsn()
    schema_admin.init(d, load_workload("inventory-full"))
    out = tmp_path / "r.json"
    proc = start_cli(*_run_args(d, out, "--target-cps", "1000", "--duration", "8"))
    wait_for_line(proc, "[   3s]")
    own_server.process.kill()
    own_server.process.wait(10)
    time.sleep(1.5)
    own_server.relaunch()
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    assert doc["summary"]["reconnects"] >= 2
    _books_exact(doc)


def test_large_rows_batch_beyond_max_allowed_packet_is_refused_at_connect(
    dsn: Dsn, tmp_path: Path
) -> None:
    """large-rows' widest row is about 1.1 MB of SQL text: 20 of them in one transaction
    cannot fit the server's 16 MiB max_allowed_packet, and the run says so before it
    starts (exit 2); 10 fit."""
    spec = load_workload("large-rows")
    schema_admin.init(dsn, spec)
    out = tmp_path / "r.json"
    proc = run_cli("run", "--dsn", dsn.to_url(), "--workload", "large-rows", "--batch-size",
                   "20", "--duration", "1", "--output", str(out))  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode == 2, said
    assert "--batch-size 20" in said and "max_allowed_packet" in said
    assert "Traceback" not in said

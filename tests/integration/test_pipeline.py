"""The whole pipeline with real parts: a private MariaDB, a real Debezium 3.6 engine
(``loadengine debezium``, its own process), the real RabbitMQ on 127.0.0.1:5672, and
``loadengine run --sink`` following it live. Slow (a JVM each): ``make pipeline-tests``
runs only these."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadengine.pipeline.local import ReferencePipeline
from tests.integration.conftest import load_results, run_load, start_cli

pytestmark = [pytest.mark.integration, pytest.mark.pipeline]
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
TABLE_QUEUES = ("inventory.inventory.customers", "inventory.inventory.orders")


def queue_depths() -> dict[str, int]:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        ch = conn.channel()
        return {q: ch.queue_declare(q, passive=True).method.message_count for q in TABLE_QUEUES}
    finally:
        conn.close()


@pytest.fixture(scope="module", autouse=True)
def purge_the_consumers_queues_afterwards() -> Iterator[None]:
    """Nobody consumes the compose layout's queues here: empty them when done, so that
    test runs do not pile messages up in the machine's broker."""
    yield
    import orjson
    import pika

    from loadengine import data

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    try:
        ch = conn.channel()
        for q in orjson.loads(data.rabbitmq_definitions())["queues"]:
            ch.queue_purge(q["name"])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pipeline() -> Iterator[ReferencePipeline]:
    with ReferencePipeline(AMQP) as p:
        yield p


def sink_run(p: ReferencePipeline, tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    proc, out = run_load(p.dsn, tmp_path, "--sink", AMQP, "--sink-timeout", "60", *args)
    return proc.returncode, load_results(out), proc.stdout + proc.stderr


def test_books_engine_server_binlog_sink_and_the_users_queues_keep_theirs(
    pipeline: ReferencePipeline, tmp_path: Path
) -> None:
    before = queue_depths()
    code, doc, text = sink_run(
        pipeline, tmp_path, "--target-cps", "1000", "--duration", "6", "--workers", "2",
        "--audit",
    )  # fmt: skip
    assert code == 0, text[-2000:]
    s, sink = doc["summary"], doc["summary"]["sink"]
    assert sink["changes"] == s["changes"] == s["server_changes"] == doc["audit"]["binlog_changes"]
    assert sink["setup_changes"] == s["setup_changes_total"]
    assert (sink["lost"], sink["duplicated"], sink["extra"], sink["out_of_order"]) == (0, 0, 0, 0)
    assert sink["e2e_lag_ms"]["p99"] is not None and sink["e2e_lag_ms"]["p99"] < 2000
    assert sink["e2e_lag_ms"]["samples"] >= 60  # a heartbeat every 100 ms
    assert all("sink_changes" in rec for rec in doc["per_second"])
    assert sum(rec["sink_changes"] for rec in doc["per_second"]) > 0
    assert "sink exact" in text and " e2e p99 " in text
    # the tap took nothing from the consumer's queues: they hold every published change
    after = queue_depths()
    by_table = s["changes_by_table"]
    setup = s["setup_changes"]
    for table, queue in zip(("customers", "orders"), TABLE_QUEUES, strict=True):
        expected = sum(by_table[table].values()) + sum(setup.get(table, {}).values())
        assert after[queue] - before[queue] == expected, (queue, before, after)


def test_an_event_dropped_between_debezium_and_rabbitmq_fails_the_run_and_is_named(
    tmp_path: Path,
) -> None:
    with ReferencePipeline(AMQP, inject_fault="drop=1500") as p:
        code, doc, text = sink_run(  # the lost change never comes: wait 5 s, not 60
            p, tmp_path, "--target-cps", "500", "--duration", "4", "--workers", "1",
            "--sink-timeout", "5",
        )  # fmt: skip
    sink = doc["summary"]["sink"]
    assert code == 6, text[-2000:]
    assert sink["lost"] == 1 and sink["extra"] == 0 and sink["duplicated"] == 0
    assert len(sink["examples"]["missing"]) == 1
    assert "fault injected: drop" in p.log_path.read_text()
    assert "sink PROBLEMS" in text


def test_an_event_published_twice_is_found_and_named_as_a_redelivery(tmp_path: Path) -> None:
    with ReferencePipeline(AMQP, inject_fault="duplicate=1500") as p:
        code, doc, text = sink_run(
            p, tmp_path, "--target-cps", "500", "--duration", "4", "--workers", "1"
        )
        log = p.log_path.read_text()
    sink = doc["summary"]["sink"]
    assert code == 0, text[-2000:]
    assert sink["redelivered"] == 1 and sink["lost"] == 0 and sink["duplicated"] == 0
    named = log.split("fault injected: duplicate ", 1)[1].split()[0]  # its topic
    assert sink["examples"]["redelivered"][0].split()[0] == named.rsplit(".", 1)[1]


def test_debezium_killed_mid_run_and_restarted_from_its_offsets(tmp_path: Path) -> None:
    with ReferencePipeline(AMQP) as p:
        out = tmp_path / "r.json"
        run = start_cli(
            "run", "--dsn", p.dsn.to_url(), "--sink", AMQP, "--target-cps", "1000",
            "--duration", "12", "--workers", "2", "--output", str(out),
        )  # fmt: skip
        time.sleep(6)
        p.kill_debezium()  # SIGKILL: no goodbye, offsets as last flushed
        time.sleep(3)
        p.start_debezium(resume=True)
        stdout, _ = run.communicate(timeout=120)
    doc = load_results(out)
    sink = doc["summary"]["sink"]
    assert run.returncode == 0, stdout[-2000:]
    assert sink["lost"] == 0 and sink["extra"] == 0 and sink["out_of_order"] == 0
    assert sink["changes"] == doc["summary"]["changes"]
    assert sink["e2e_lag_ms"]["max"] >= 3000  # the outage shows in the lag


def test_rabbitmq_restarted_mid_run_the_follower_reconnects(tmp_path: Path) -> None:
    with ReferencePipeline(AMQP) as p:
        out = tmp_path / "r.json"
        run = start_cli(
            "run", "--dsn", p.dsn.to_url(), "--sink", AMQP, "--target-cps", "500",
            "--duration", "14", "--workers", "1", "--output", str(out),
        )  # fmt: skip
        time.sleep(5)
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=60)
        stdout, _ = run.communicate(timeout=180)
    doc = load_results(out)
    sink = doc["summary"]["sink"]
    assert sink["reconnects"] >= 1, sink
    # whatever the restart cost is named, key by key, and decides the exit code
    assert sink["lost"] == 0 or sink["examples"]["missing"], sink
    assert run.returncode == (0 if sink["clean"] else 6), stdout[-2000:]


def test_deletes_transactions_and_schema_changes_reach_the_sink_exactly(
    pipeline: ReferencePipeline, tmp_path: Path
) -> None:
    """inventory-full (deletes and their tombstones, a customer and their first order in
    one commit, zipfian updates) with an ALTER TABLE every 2 s, through the real Debezium:
    nothing lost, duplicated or out of order, and every ALTER a schema change event."""
    from loadengine import data

    spec = tmp_path / "full-with-ddl.toml"
    spec.write_text(
        (data.folder("workloads") / "inventory-full.toml").read_text()
        + "\n[ddl]\nstart_s = 1\nevery_s = 2\nstatements = [\n"
        '  "ALTER TABLE customers ADD COLUMN t_{run}_{n} INT NULL",\n'
        '  "ALTER TABLE customers DROP COLUMN t_{run}_{n}",\n]\n'
    )
    code, doc, text = sink_run(
        pipeline, tmp_path, "--workload", str(spec), "--target-cps", "500", "--duration", "4",
        "--workers", "2", "--audit",
    )  # fmt: skip
    assert code == 0, text[-2000:]
    s, sink, audit = doc["summary"], doc["summary"]["sink"], doc["audit"]
    assert audit["clean"] and sink["clean"], (audit, sink)
    assert sink["changes"] == s["changes"] == audit["binlog_changes"] == 2_000
    assert (sink["lost"], sink["duplicated"], sink["extra"], sink["out_of_order"]) == (0, 0, 0, 0)
    assert sink["changes_by_table"] == s["changes_by_table"]
    deletes = sum(kinds.get("delete", 0) for kinds in s["changes_by_table"].values())
    assert deletes > 0 and sink["tombstones"] == deletes
    assert s["ddl"]["executed"] >= 2 and audit["ddl"]["observed"] == s["ddl"]["executed"]
    assert sink["schema_changes"] >= s["ddl"]["executed"]

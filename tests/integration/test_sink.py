"""sink-check against the real RabbitMQ (127.0.0.1:5672): Debezium-format envelopes built
from a real run's binary-log window are published to per-table queues, faithfully and
then with changes dropped, duplicated and reordered on purpose."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import orjson
import pytest

from loadengine.core.dsn import Dsn
from tests.integration.conftest import load_results, run_cli, run_load, window_text

pytestmark = pytest.mark.integration
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
COLUMNS = {
    "customers": ("id", "first_name", "last_name", "email"),
    "orders": ("order_number", "order_date", "purchaser", "quantity", "product_id"),
}
HEAD = re.compile(r"^### (INSERT INTO|UPDATE) `([^`]*)`\.`([^`]*)`$")
VALUE = re.compile(r"^###   @(\d+)=(.*)$")


def envelopes(d: Dsn, doc: dict) -> list[tuple[str, bytes]]:
    """(table, Debezium JSON) per row event, in log order, as Debezium would emit them."""
    out: list[tuple[str, bytes]] = []
    pos, row, cur = 0, 0, None
    for line in [*window_text(d, doc).splitlines(), "# at 0"]:
        if line.startswith("# at "):
            pos, row = int(line[5:]), 0
        m = HEAD.match(line)
        if (m or line.startswith("# at ")) and cur is not None:
            out.append(_envelope(cur))
            cur = None
        if m and m.group(2) == d.database and m.group(3) in COLUMNS:
            cur = {
                "op": "c" if m.group(1) == "INSERT INTO" else "u",
                "table": m.group(3),
                "images": [],
                "pos": pos,
                "row": row,
            }
            row += 1
        elif cur is not None and line in ("### WHERE", "### SET"):
            cur["images"].append({})
        elif cur is not None and (v := VALUE.match(line)):
            cur["images"][-1][COLUMNS[cur["table"]][int(v.group(1)) - 1]] = v.group(2).strip("'")
    return out


def _envelope(cur: dict) -> tuple[str, bytes]:
    before, after = (None, cur["images"][0]) if cur["op"] == "c" else cur["images"]
    for image in (before, after):
        if image:
            key = COLUMNS[cur["table"]][0]
            image[key] = int(image[key])
    now_ms = __import__("time").time_ns() // 1_000_000
    msg = {
        "before": before,
        "after": after,
        "op": cur["op"],
        "ts_ms": now_ms,
        "source": {
            "connector": "mysql",
            "db": "inventory",
            "table": cur["table"],
            "file": "binlog.000001",
            "pos": cur["pos"],
            "row": cur["row"],
            "ts_ms": now_ms - 5,
            "ts_us": now_ms * 1000 - 5000,
        },
    }
    return cur["table"], orjson.dumps(msg)


def _publish(prefix: str, messages: list[tuple[str, bytes]]) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = conn.channel()
    for table in COLUMNS:
        ch.queue_declare(queue=prefix + table, durable=False, auto_delete=False)
        ch.queue_purge(queue=prefix + table)
    for table, body in messages:
        ch.basic_publish(exchange="", routing_key=prefix + table, body=body)
    conn.close()


def _sink_check(out: Path, prefix: str) -> tuple[int, dict, str]:
    res_file = out.parent / f"sink-{prefix}.json"
    proc = run_cli(
        "sink-check",
        str(out),
        "--amqp-url",
        AMQP,
        "--queue-prefix",
        prefix,
        "--output",
        str(res_file),
        "--timeout",
        "30",
    )
    return proc.returncode, orjson.loads(res_file.read_bytes()), proc.stdout + proc.stderr


def test_sink_check_faithful_then_dropped_duplicated_reordered(dsn: Dsn, tmp_path: Path) -> None:
    proc, out = run_load(
        dsn,
        tmp_path,
        "--target-cps",
        "1000",
        "--duration",
        "3",
        "--workers",
        "2",
        "--batch-size",
        "10",
    )
    assert proc.returncode == 0
    doc = load_results(out)
    msgs = envelopes(dsn, doc)
    s = doc["summary"]
    assert len(msgs) == s["changes"] + s["setup_changes_total"]

    prefix = f"t{secrets.token_hex(3)}."
    _publish(prefix, msgs)
    code, res, text = _sink_check(out, prefix)
    assert code == 0, text
    assert (res["lost"], res["duplicated"], res["extra"], res["out_of_order"]) == (0, 0, 0, 0)
    assert res["changes"] + res["setup_changes"] == len(msgs)
    assert res["changes_by_table"] == s["changes_by_table"]
    assert res["age_ms"]["samples"] == len(msgs) and res["age_ms"]["p50"] >= 5
    assert "sink-check clean" in text

    # on purpose: drop 7 load changes, publish 5 twice (the same change at the same binlog
    # coordinates: a redelivery to any consumer), swap two updates of one key
    ups = [i for i, (t, b) in enumerate(msgs) if t == "orders" and b'"op":"u"' in b]
    by_key: dict[int, list[int]] = {}
    for i in ups:
        by_key.setdefault(orjson.loads(msgs[i][1])["after"]["order_number"], []).append(i)
    a, b = next(v for v in by_key.values() if len(v) >= 2)[-2:]  # its last two events
    faulty = list(msgs)
    faulty[a], faulty[b] = faulty[b], faulty[a]
    swapped_key = orjson.loads(msgs[a][1])["after"]["order_number"]
    last: dict[tuple[str, object], int] = {}
    for i, (t, m) in enumerate(msgs):  # a key's last event: dropping it breaks no chain
        after = orjson.loads(m)["after"]
        last[(t, after.get("id", after.get("order_number")))] = i
    droppable = sorted(i for (t, k), i in last.items() if k != swapped_key and i not in (a, b))
    dropped = set(droppable[:7])
    twice = [faulty[i] for i in droppable[10:15]]
    faulty = [m for i, m in enumerate(faulty) if i not in dropped] + twice
    _publish(prefix, faulty)
    code, res, text = _sink_check(out, prefix)
    assert code == 6, text
    # the swap puts one change behind a later change of its key: one out of order
    assert (res["lost"], res["redelivered"], res["out_of_order"]) == (7, 5, 1)
    assert res["duplicated"] == 0 and res["extra"] == 0 and "PROBLEMS" in text
    assert len(res["examples"]["missing"]) == 7 and len(res["examples"]["redelivered"]) == 5
    _delete_queues(prefix)


def _delete_queues(prefix: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    for table in COLUMNS:
        conn.channel().queue_delete(queue=prefix + table)
    conn.close()

"""How fast loadengine reads a RabbitMQ sink, against a bare pika consumer, in one run.

Real envelopes: the reference pipeline (a private server, a real Debezium 3.6, the local
RabbitMQ) runs a load while a capture queue bound to the ``inventory`` exchange collects
what Debezium publishes. Then, ``--repeat`` times, interleaved, the same bodies are
published to a fresh queue and drained by:

- ``bare``: pika ``basic_consume`` + ``orjson.loads`` per message, acks batched, the same
  prefetch window (the floor any Python consumer on pika pays);
- ``loadengine``: ``sink_amqp.drain`` with ``SinkCheck``: the consumer ``sink-check`` and
  ``run --sink`` share (decode, redelivery, per-key order, counts).

Reports median and spread (min-max) of events/s and the ratio of medians (loadengine /
bare). Run it with nothing else on the machine.

    .venv/bin/python benchmarks/sink_speed.py [--cps 2000] [--seconds 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from results_md import RESULTS_MD, spread, write_section

from loadengine.pipeline.local import ReferencePipeline
from loadengine.verify.sink import SinkCheck
from loadengine.verify.sink_amqp import Consumer

AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
CAPTURE = "loadengine.bench.capture"
WORK = "loadengine.bench.work"
PREFETCH, ACK_EVERY = 2000, 500
BEGIN, END = "<!-- sink_speed:begin -->", "<!-- sink_speed:end -->"


def _channel() -> tuple[Any, Any]:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    return conn, conn.channel()


def capture(cps: int, seconds: int) -> list[bytes]:
    """Run a load through the real pipeline; return every body Debezium published."""
    from loadengine.run.runner import execute
    from loadengine.settings import resolve

    conn, ch = _channel()
    ch.queue_delete(CAPTURE)
    ch.queue_declare(CAPTURE, durable=False)
    with ReferencePipeline(AMQP) as p:
        for table in ("customers", "orders", "loadengine_heartbeat"):
            ch.queue_bind(CAPTURE, "inventory", routing_key=f"inventory.inventory.{table}")
        flags = {
            "dsn": p.dsn.to_url(),
            "target_cps": str(cps),
            "duration_s": str(seconds),
            "workers": "2",
            "sink": AMQP,
            "output": str(Path(tempfile.mkdtemp()) / "capture.json"),
        }
        with open(os.devnull, "w") as quiet:  # the run's own lines are not wanted here
            execute(resolve(flags, {}, None), quiet)
    bodies: list[bytes] = []
    while True:
        method, _props, body = ch.basic_get(CAPTURE, auto_ack=True)
        if method is None:
            break
        bodies.append(body)
    ch.queue_delete(CAPTURE)
    conn.close()
    return bodies


def fill(bodies: list[bytes]) -> None:
    conn, ch = _channel()
    ch.queue_delete(WORK)
    ch.queue_declare(WORK, durable=False)
    for body in bodies:
        ch.basic_publish("", WORK, body)
    while ch.queue_declare(WORK, passive=True).method.message_count < len(bodies):
        time.sleep(0.05)
    conn.close()


def bare(n: int) -> float:
    """A bare consumer: decode each body, ack in batches. Seconds to take ``n``."""
    conn, ch = _channel()
    ch.basic_qos(prefetch_count=PREFETCH)
    state = {"got": 0, "unacked": 0, "tag": 0}

    def on_message(channel: Any, method: Any, _props: Any, body: bytes) -> None:
        orjson.loads(body)
        state["got"] += 1
        state["unacked"] += 1
        state["tag"] = method.delivery_tag
        if state["unacked"] >= ACK_EVERY:
            channel.basic_ack(method.delivery_tag, multiple=True)
            state["unacked"] = 0

    ch.basic_consume(WORK, on_message)
    t0 = time.perf_counter()
    while state["got"] < n:
        conn.process_data_events(time_limit=0.05)
    if state["unacked"]:
        ch.basic_ack(state["tag"], multiple=True)
    took = time.perf_counter() - t0
    conn.close()
    return took


def loadengine_consumer(n: int) -> float:
    check = SinkCheck()
    consumer = Consumer(AMQP, check.add, PREFETCH, ACK_EVERY)
    consumer.connect()
    consumer.consume([WORK])
    t0 = time.perf_counter()  # like bare: from the consume call on
    while check.messages < n:
        consumer.pump(0.05)
    took = time.perf_counter() - t0
    consumer.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cps", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="results/sink_speed.json")
    ap.add_argument("--markdown", default=str(RESULTS_MD))
    a = ap.parse_args()
    bodies = capture(a.cps, a.seconds)
    n = len(bodies)
    print(f"captured {n:,} real Debezium envelopes ({sum(map(len, bodies)) / n:.0f} B average)")
    rates: dict[str, list[float]] = {"bare": [], "loadengine": []}
    for r in range(a.repeat):
        for name, fn in (("bare", bare), ("loadengine", loadengine_consumer)):
            fill(bodies)
            rates[name].append(n / fn(n))
            print(f"round {r + 1}: {name:>10} {rates[name][-1]:,.0f} events/s", flush=True)
    report = {
        "events": n,
        "avg_body_bytes": round(sum(map(len, bodies)) / n),
        "prefetch": PREFETCH,
        "ack_every": ACK_EVERY,
        "rates": rates,
        "bare": spread(rates["bare"]),
        "loadengine": spread(rates["loadengine"]),
        "ratio_of_medians": statistics.median(rates["loadengine"])
        / statistics.median(rates["bare"]),
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    write_section(Path(a.markdown), BEGIN, END, markdown(report))
    print(f"ratio of medians loadengine / bare: {report['ratio_of_medians']:.3f}")


def markdown(r: dict[str, Any]) -> str:
    b, e = r["bare"], r["loadengine"]
    return "\n".join(
        [
            "## Sink consumer speed (`benchmarks/sink_speed.py`)",
            "",
            f"{r['events']:,} real Debezium 3.6 envelopes ({r['avg_body_bytes']} B average) "
            f"captured from the reference pipeline, drained {len(r['rates']['bare'])} times "
            f"each, interleaved; prefetch {r['prefetch']}, acks every {r['ack_every']}.",
            "",
            "| consumer | events/s median | min | max |",
            "|---|---|---|---|",
            f"| bare pika consume + orjson | {b['median']:,.0f} | {b['min']:,.0f} | "
            f"{b['max']:,.0f} |",
            f"| loadengine (sink-check, run --sink) | {e['median']:,.0f} | {e['min']:,.0f} | "
            f"{e['max']:,.0f} |",
            "",
            f"Ratio of medians: **{r['ratio_of_medians']:.3f}** (bar: >= 0.9).",
        ]
    )


if __name__ == "__main__":
    main()

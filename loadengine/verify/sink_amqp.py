"""Reading a RabbitMQ sink: one consumer for ``loadengine sink-check`` and ``run --sink``.

Needs pika (``pip install 'loadengine[sink]'``). ``Consumer`` takes messages with
``basic_consume`` under a prefetch window and acknowledges them in batches (``multiple``),
handing each body to ``SinkCheck.add`` as it arrives: the same work a bare consume +
decode loop does, plus a few dictionary operations (``benchmarks/sink_speed.py``
measures the two side by side).

``sink-check`` drains named queues after a run (it consumes them: point it at queues
of its own); ``run --sink`` reads a tap queue of its own during the run
(``verify.follower``), so the user's consumers keep every message.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from time import monotonic, time_ns
from typing import Any

import orjson

from loadengine.core.dsn import DEFAULT_AMQP_URL
from loadengine.verify import ledger
from loadengine.verify.sink import SinkCheck, lag_summary_ms, verdict

DEFAULT_URL = DEFAULT_AMQP_URL
TAP_EXPIRES_MS = 600_000  # an abandoned tap queue (a crashed run) is deleted by RabbitMQ


class SinkError(ValueError):
    """Bad input or a missing extra (one line, exit 2)."""


def pika_module() -> Any:
    try:
        import pika
    except ImportError:
        raise SinkError("reading the sink needs pika: pip install 'loadengine[sink]'") from None
    return pika


class Consumer:
    """``basic_consume`` on one or more queues; every body goes to ``on_body``."""

    def __init__(
        self,
        url: str,
        on_body: Callable[[bytes, int], None],
        prefetch: int = 2000,
        ack_every: int = 500,
    ) -> None:
        self.pika = pika_module()
        self.url, self.on_body = url, on_body
        self.prefetch, self.ack_every = prefetch, ack_every
        self.conn: Any = None
        self.channel: Any = None
        self.unacked = 0
        self.last_tag = 0
        self.last_message_s = time.monotonic()

    def connect(self) -> None:
        self.conn = self.pika.BlockingConnection(self.pika.URLParameters(self.url))
        self.channel = self.conn.channel()
        self.channel.basic_qos(prefetch_count=self.prefetch)
        self.unacked = 0

    def declare_tap(self, name: str, exchange: str, routing_keys: tuple[str, ...]) -> None:
        """A durable queue of our own (it survives a broker restart with its messages),
        bound like the user's queues; RabbitMQ deletes it when unused for 10 minutes."""
        self.channel.queue_declare(name, durable=True, arguments={"x-expires": TAP_EXPIRES_MS})
        for key in routing_keys:
            self.channel.queue_bind(name, exchange, routing_key=key)

    def consume(self, queues: list[str]) -> None:
        for q in queues:
            self.channel.basic_consume(q, self._deliver)

    def _deliver(self, channel: Any, method: Any, _props: Any, body: bytes) -> None:
        self.on_body(body, time_ns() // 1000)
        self.last_tag = method.delivery_tag
        self.unacked += 1
        if self.unacked >= self.ack_every:
            self.flush_acks()

    def flush_acks(self) -> None:
        if self.unacked:
            self.channel.basic_ack(self.last_tag, multiple=True)
            self.unacked = 0
            self.last_message_s = monotonic()

    def pump(self, seconds: float) -> None:
        """Deliver what arrives for ``seconds``, then acknowledge it."""
        self.conn.process_data_events(time_limit=seconds)
        self.flush_acks()

    def delete(self, queue: str) -> None:
        try:
            self.channel.queue_delete(queue)
        except Exception:  # the broker went away: x-expires removes it
            pass

    def close(self) -> None:
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass


def load_run(results_path: str) -> tuple[dict[str, Any], list[tuple[str, ledger.TableLedger]]]:
    try:
        doc = orjson.loads(Path(results_path).read_bytes())
        name = doc["ledger"]["path"]
        led = orjson.loads((Path(results_path).resolve().parent / name).read_bytes())
        return doc, ledger.from_document(led)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SinkError(
            f"{results_path!r}: needs a results file with its change ledger ({exc})"
        ) from None


def drain(url: str, queues: list[str], check: SinkCheck, quiet_s: float, timeout_s: float) -> None:
    """Read ``queues`` until none delivered anything for ``quiet_s``, or ``timeout_s``."""
    consumer = Consumer(url, check.add)
    consumer.connect()
    try:
        consumer.consume(queues)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            before = check.messages
            consumer.pump(0.2)
            if check.messages == before and time.monotonic() - consumer.last_message_s > quiet_s:
                break
    finally:
        consumer.close()


def run(
    results_path: str,
    url: str,
    queues: list[str],
    quiet_s: float,
    timeout_s: float,
    output: str | None,
) -> dict[str, Any]:
    """``sink-check``: drain ``queues`` and check them against the run's ledger. Lag needs
    the heartbeat; what Debezium's ``source.ts_ms`` gives is each message's *age* when it
    was read, reported as such."""
    doc, led = load_run(results_path)
    check = SinkCheck()
    started = time.monotonic()
    drain(url, queues, check, quiet_s, timeout_s)
    res = verdict(check.observed, led, check.redelivered, check.out_of_order)
    res |= {
        "messages": check.messages,
        "drain_s": round(time.monotonic() - started, 3),
        "tombstones": check.tombstones,
        "schema_changes": check.schema_changes,
        "snapshot_reads": check.snapshot_reads,
        "undecodable": check.undecodable,
        "heartbeats": check.heartbeats,
        "age_ms": lag_summary_ms(check.age_us or []),
        "e2e_lag_ms": lag_summary_ms([lag for _, lag in check.lag_us]),
        "queues": queues,
        "run_id": doc.get("run_id"),
        "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    res["examples"] |= {k: v for k, v in check.examples.items() if v}
    if output:
        Path(output).write_bytes(
            orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        )
    return res


def summary_line(res: dict[str, Any]) -> str:
    age = res["age_ms"]
    verdict_word = "clean" if res["clean"] else "PROBLEMS"
    return (
        f"sink-check {verdict_word}: {res['changes']:,} changes (+{res['setup_changes']:,} "
        f"setup) in {res['messages']:,} messages; lost {res['lost']:,}, duplicated "
        f"{res['duplicated']:,}, redelivered {res['redelivered']:,}, extra {res['extra']:,}, "
        f"out of order {res['out_of_order']:,}; message age p50 {age['p50']} ms max "
        f"{age['max']} ms"
    )

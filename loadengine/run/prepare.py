"""Before the load: the server (embedded or given), the checks a run makes before it
starts (schema, CDC readiness, packet size), the server facts at the start and the end,
the banner."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

from loadengine import __version__
from loadengine.core import workload
from loadengine.core.dsn import Dsn, parse_dsn
from loadengine.core.plan import RunPlan, shard_plans
from loadengine.core.spec import generated
from loadengine.core.status import (
    Exit,
    RunError,
)
from loadengine.run.context import RunContext, heartbeat_on
from loadengine.run.facts import Environment
from loadengine.run.resources import find_local_server_pid
from loadengine.server import binlog, cdc, database, embedded, queries, schema_admin
from loadengine.server import watch as server_watch

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def environment(multiplexed: bool) -> Environment:
    drv = database.driver_info(multiplexed)
    return Environment(
        loadengine=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        driver={"name": drv.name, "version": drv.version, "implementation": drv.implementation},
    )


def server_dsn(ctx: RunContext, say: Callable[[str], None]) -> Dsn:
    if ctx.plan.dsn is not None:
        return parse_dsn(ctx.plan.dsn)
    try:
        server = embedded.start()
    except embedded.EmbeddedError as exc:
        raise RunError(str(exc)) from None
    ctx.embedded_server = server
    dsn = server.dsn()
    say(
        f"embedded {server.binary.flavor} server on 127.0.0.1:{server.port} "
        f"(binary log on, config loadengine/data/mysql/cdc.cnf)"
    )
    schema_admin.init(dsn, generated(ctx.plan.spec))
    return dsn


def _check_cdc(ctx: RunContext, say: Callable[[str], None]) -> None:
    """Warn (one line) when the server could not feed CDC; refuse --audit/--follow-binlog."""
    ready = cdc.readiness(ctx.environment.server)
    ctx.server.cdc = ready
    if ready["problems"]:
        say(f"WARNING: not CDC-ready: {cdc.one_line(ready)}")
        wanted = [
            f
            for f, on in (("--audit", ctx.plan.audit), ("--follow-binlog", ctx.plan.follow_binlog))
            if on
        ]
        if wanted:
            raise RunError(
                f"{' and '.join(wanted)}: the server cannot feed CDC "
                f"({'; '.join(ready['problems'])}); enable log_bin with binlog_format=ROW "
                "and binlog_row_image=FULL (see loadengine/data/mysql/cdc.cnf)",
                Exit.USAGE,
            )
    elif ready["notes"]:
        say(f"note: {cdc.one_line(ready)}")
    if ctx.plan.audit or ctx.plan.follow_binlog:
        try:
            binlog.reader(ctx.environment.flavor)
        except binlog.BinlogError as exc:
            raise RunError(f"--audit/--follow-binlog: {exc}", Exit.USAGE) from None


def _check_packet(ctx: RunContext) -> None:
    """Refuse a batch size whose transaction text could exceed the server's packet limit."""
    limit = ctx.environment.server.get("max_allowed_packet")
    batch = ctx.plan.batch_size
    spec = generated(ctx.plan.spec)
    need = (
        workload.max_transaction_bytes(batch) if spec is None else spec.max_transaction_bytes(batch)
    )
    if limit is not None and need > int(limit):
        raise RunError(
            f"--batch-size {batch}: one transaction can take up to {need:,} bytes, above the "
            f"server's max_allowed_packet of {int(limit):,}; lower --batch-size or raise "
            "max_allowed_packet",
            Exit.USAGE,
        )


def prepare(ctx: RunContext, dsn: Dsn, say: Callable[[str], None]) -> list[Any]:
    spec = generated(ctx.plan.spec)
    status = schema_admin.status(dsn, spec)
    if not status.ready:
        what = "database" if not status.database_exists else f"tables {', '.join(status.missing)}"
        also = "" if ctx.plan.workload == "inventory" else f" --workload {ctx.plan.workload}"
        raise RunError(
            f"schema missing in {dsn.redacted()} ({what}); run: loadengine schema init "
            f"--dsn '{dsn.redacted()}'{also}"
        )
    conn = database.connect(dsn)
    try:
        ctx.environment.server = queries.server_environment(conn)
        _check_packet(ctx)
        _check_cdc(ctx, say)
        if heartbeat_on(ctx.plan):
            server_watch.create_heartbeat(conn)
        c_first, o_first = (
            schema_admin.first_free_keys(conn) if schema_admin.uses_inventory(spec) else (0, 0)
        )
        spec_firsts = None if spec is None else schema_admin.first_free_spec_keys(conn, spec)
        ctx.server.row_counters_before = queries.row_change_counters(conn)
        ctx.server.binlog_start = queries.binlog_position(conn)
        pid = ctx.embedded_server.process.pid if ctx.embedded_server else None
        if pid is None and dsn.host in LOCAL_HOSTS:
            pid = queries.server_pid(conn) or find_local_server_pid(dsn.port)
        ctx.server.pid = pid
    finally:
        conn.close()
    plans = shard_plans(ctx.plan, dsn.to_url(), c_first, o_first, ctx.run_id, spec_firsts)
    ctx.rates = {p.index: p.steps for p in plans}
    return plans


def finish_server_facts(ctx: RunContext, dsn: Dsn) -> None:
    try:
        conn = database.connect(dsn)
    except database.DatabaseError as exc:
        ctx.server.after_error = exc.error_class
        return
    try:
        after = queries.row_change_counters(conn)
        before = ctx.server.row_counters_before or {}
        ctx.server.row_counters_after = after
        delta = {k: after[k] - before.get(k, 0) for k in after}
        # counters reset when the server restarted mid-run: the delta means nothing then
        ctx.server.row_changes = None if any(v < 0 for v in delta.values()) else delta
        ctx.server.binlog_end = queries.binlog_position(conn)
    finally:
        conn.close()


def banner(ctx: RunContext, dsn: Dsn) -> str:
    p, env = ctx.plan, ctx.environment
    target = (
        "max"
        if p.target_cps is None
        else (
            f"{p.target_cps:,}"
            if len(p.steps) == 1
            else "ramp " + "->".join(str(r) for r, _ in p.steps)
        )
    )
    srv = env.server
    return (
        f"loadengine {__version__} run {ctx.run_id}: target {target} CPS, {p.duration_s}s"
        f" (+{p.warmup_s}s warmup), workload {p.workload}, {p.workers} shards{_layout(p)}, "
        f"batch {p.batch_size}, "
        f"overload policy {p.on_overload}, driver {env.driver['implementation']}, "
        f"server {srv.get('version', '?')} binlog {srv.get('log_bin', '?')}/"
        f"{srv.get('binlog_format', '?')} at {dsn.redacted()}"
    )


def _layout(p: RunPlan) -> str:
    """How the shards sit in OS processes, when not one process each."""
    if p.multiplex:
        return f" multiplexed on {p.processes or p.workers} process(es)"
    return f" on {p.processes} process(es)" if p.processes else ""


def stop_embedded(ctx: RunContext, say: Callable[[str], None]) -> None:
    server = ctx.embedded_server
    assert server is not None
    if ctx.plan.keep_server:
        say(
            f"embedded server kept running: {server.dsn().redacted()} "
            f"(pid {server.process.pid}, data {server.data_dir})"
        )
        return
    server.stop()
    server.remove()

"""``loadengine run``: from a validated plan to a results file and an exit code.

Order: signals first (so Ctrl-C at any moment still leaves a results file), then the
server (DSN or embedded), schema check, shard plans, the coordinator, results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from loadengine import __version__
from loadengine.backends.local import LocalBackend
from loadengine.core import thresholds, workload
from loadengine.core.aggregate import Bucket
from loadengine.core.clock import SystemClock
from loadengine.core.dsn import Dsn, parse_dsn
from loadengine.core.messages import ShardDelta
from loadengine.core.plan import Resume, RunPlan, ShardPlan, shard_plans
from loadengine.core.status import (
    COMPLETED,
    EXIT_BY_SIGNAL,
    FAILED,
    INTERRUPTED,
    Exit,
    RunError,
    exit_for_signal,
    exit_for_status,
)
from loadengine.core.stop import StopFlag
from loadengine.run import report, results, sink_follow
from loadengine.run.coordinator import Coordinator, Outcome
from loadengine.run.facts import ServerFacts
from loadengine.run.report import SinkLive
from loadengine.run.resources import Sampler, find_local_server_pid
from loadengine.server import binlog, cdc, database, embedded, schema_admin
from loadengine.server import watch as server_watch
from loadengine.shard import recovery
from loadengine.verify import audit, ledger
from loadengine.verify.follower import FollowerHandle

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(slots=True)
class RunContext:
    """What the run learned on the way; enough to write a results file at any moment."""

    plan: RunPlan
    run_id: str
    started_at: str
    stop: StopFlag
    outcome: Outcome = field(default_factory=Outcome)
    environment: dict[str, Any] = field(default_factory=dict)
    server: ServerFacts = field(default_factory=ServerFacts)
    rates: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    embedded_server: embedded.EmbeddedServer | None = None
    watch: RunWatch | None = None
    observed: results.Observed = field(default_factory=results.Observed)
    sink: FollowerHandle | None = None  # --sink: bound before the shards seed
    work_dir: str | None = None
    thresholds_passed: bool = True


def heartbeat_on(plan: RunPlan) -> bool:
    """The heartbeat row: capture lag (--follow-binlog) and end-to-end lag (--sink)."""
    return plan.follow_binlog or plan.sink is not None


class RunWatch:
    """The server watch, the binary-log follower and the sink follower, started at the
    common start."""

    def __init__(
        self,
        dsn: Dsn,
        plan: RunPlan,
        start_pos: dict[str, Any] | None,
        flavor: str,
        sink: FollowerHandle | None = None,
        setup_changes: int = 0,
    ):
        self.dsn, self.plan, self.start_pos, self.flavor = dsn, plan, start_pos, flavor
        self.sink, self.setup_changes = sink, setup_changes
        self.server = server_watch.ServerWatch(dsn, heartbeat=heartbeat_on(plan))
        self.follower: binlog.Follower | None = None
        self.start_unix_ns = 0

    def begin(self, start_unix_ns: int, total_s: int) -> None:
        self.start_unix_ns = start_unix_ns
        if self.plan.follow_binlog and self.start_pos:
            self.follower = binlog.Follower(self.dsn, self.start_pos, self.flavor, start_unix_ns)
        self.server.begin(start_unix_ns, total_s)
        if self.sink is not None:
            self.sink.begin(start_unix_ns)

    def server_changes(self, second: int) -> int | None:
        return self.server.server_changes(second)

    def sink_live(self, upto_s: int) -> SinkLive | None:
        if self.sink is None:
            return None
        return sink_follow.live(self.sink, upto_s, self.setup_changes)

    def finish_server(self, elapsed_s: float, obs: results.Observed) -> None:
        """Stop the heartbeats and take the closing sample: before the log's end position
        is read, so that every heartbeat counted as written lies inside the audit's
        window (one written in between once failed a clean audit: 52 seen, 53 counted)."""
        state = self.server.finish(elapsed_s)
        obs.server_seconds = server_watch.per_second(state)
        obs.server_counter_source = state.source
        obs.heartbeats = state.heartbeats if heartbeat_on(self.plan) else None

    def finish_follower(self, end_pos: dict[str, Any] | None, obs: results.Observed) -> None:
        if self.follower is not None:
            obs.follow = self.follower.stop(end_pos)


def default_output(now: dt.datetime) -> str:
    os.makedirs("results", exist_ok=True)
    return os.path.join("results", f"run-{now.strftime('%Y%m%dT%H%M%SZ')}.json")


@contextmanager
def signals_to(stop: StopFlag) -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        stop.set(signum)

    old = {s: signal.signal(s, handler) for s in EXIT_BY_SIGNAL}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _check_stop(ctx: RunContext) -> None:
    if ctx.stop.is_set:
        raise RunError("interrupted before the load started", exit_for_signal(ctx.stop.signum))


def _environment(multiplexed: bool) -> dict[str, Any]:
    drv = database.driver_info(multiplexed)
    return {
        "loadengine": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "driver": {"name": drv.name, "version": drv.version, "implementation": drv.implementation},
    }


def _server_dsn(ctx: RunContext, say: Callable[[str], None]) -> Dsn:
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
    schema_admin.init(dsn)
    return dsn


def _check_cdc(ctx: RunContext, say: Callable[[str], None]) -> None:
    """Warn (one line) when the server could not feed CDC; refuse --audit/--follow-binlog."""
    ready = cdc.readiness(ctx.environment["server"])
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
            binlog.reader(ctx.environment["server"].get("flavor", "mariadb"))
        except binlog.BinlogError as exc:
            raise RunError(f"--audit/--follow-binlog: {exc}", Exit.USAGE) from None


def _check_packet(ctx: RunContext) -> None:
    """Refuse a batch size whose transaction text could exceed the server's packet limit."""
    limit = ctx.environment["server"].get("max_allowed_packet")
    batch = ctx.plan.batch_size
    need = workload.max_transaction_bytes(batch)
    if limit is not None and need > int(limit):
        raise RunError(
            f"--batch-size {batch}: one transaction can take up to {need:_} bytes, above the "
            f"server's max_allowed_packet of {int(limit):_}; lower --batch-size or raise "
            "max_allowed_packet",
            Exit.USAGE,
        )


def _prepare(ctx: RunContext, dsn: Dsn, say: Callable[[str], None]) -> list[Any]:
    status = schema_admin.status(dsn)
    if not status.ready:
        what = "database" if not status.database_exists else f"tables {', '.join(status.missing)}"
        raise RunError(
            f"schema missing in {dsn.redacted()} ({what}); run: loadengine schema init "
            f"--dsn '{dsn.redacted()}'"
        )
    conn = database.connect(dsn)
    try:
        ctx.environment["server"] = database.server_environment(conn)
        _check_packet(ctx)
        _check_cdc(ctx, say)
        if heartbeat_on(ctx.plan):
            server_watch.create_heartbeat(conn)
        c_first, o_first = schema_admin.first_free_keys(conn)
        ctx.server.row_counters_before = database.row_change_counters(conn)
        ctx.server.binlog_start = database.binlog_position(conn)
        pid = ctx.embedded_server.process.pid if ctx.embedded_server else None
        if pid is None and dsn.host in LOCAL_HOSTS:
            pid = database.server_pid(conn) or find_local_server_pid(dsn.port)
        ctx.server.pid = pid
    finally:
        conn.close()
    plans = shard_plans(ctx.plan, dsn.to_url(), c_first, o_first, ctx.run_id)
    ctx.rates = {p.index: p.steps for p in plans}
    return plans


def _finish_server_facts(ctx: RunContext, dsn: Dsn) -> None:
    try:
        conn = database.connect(dsn)
    except database.DatabaseError as exc:
        ctx.server.after_error = exc.error_class
        return
    try:
        after = database.row_change_counters(conn)
        before = ctx.server.row_counters_before or {}
        ctx.server.row_counters_after = after
        delta = {k: after[k] - before.get(k, 0) for k in after}
        # counters reset when the server restarted mid-run: the delta means nothing then
        ctx.server.row_changes = None if any(v < 0 for v in delta.values()) else delta
        ctx.server.binlog_end = database.binlog_position(conn)
    finally:
        conn.close()


def _recoverer(dsn: Dsn) -> Any:
    """Recovery of a dead shard's unreported work from its journal and, for an in-doubt
    commit, the server (``recovery``): the coordinator hands it every input."""

    def recover(
        plan: ShardPlan, second: int, reported: Bucket, updates: dict[str, int]
    ) -> tuple[ShardDelta, Resume]:
        return recovery.recover(plan, second, reported, updates, dsn)

    return recover


def _check_backend(ctx: RunContext) -> None:
    if ctx.plan.backend == "ray":
        from loadengine.backends import ray as backend_ray

        try:
            backend_ray.check_installed()
        except backend_ray.RayUnavailable as exc:
            raise RunError(str(exc), Exit.USAGE) from None


def _backend(ctx: RunContext) -> Any:
    if ctx.plan.backend == "local":
        return LocalBackend(processes=ctx.plan.processes, multiplex=ctx.plan.multiplex)
    from loadengine.backends import ray as backend_ray  # Ray is an optional extra, loaded only here

    try:
        return backend_ray.RayBackend(ctx.plan.ray_address, ctx.plan.workers)
    except backend_ray.RayUnavailable as exc:
        raise RunError(str(exc), Exit.USAGE if exc.usage else Exit.FAILED) from None


def _coordinate(ctx: RunContext, dsn: Dsn, plans: list[Any], say: Callable[[str], None]) -> None:
    ctx.work_dir = tempfile.mkdtemp(prefix="loadengine-run-")  # journals, ledger spool
    backend = _backend(ctx)
    plans = [dataclasses.replace(p, journal_dir=ctx.work_dir) for p in plans]
    sampler = Sampler(ctx.server.pid)
    flavor = ctx.environment.get("server", {}).get("flavor", "mariadb")
    setup = sum(p.keys.seeded_customers + p.keys.seeded_orders for p in plans)
    ctx.watch = RunWatch(dsn, ctx.plan, ctx.server.binlog_start, flavor, ctx.sink, setup)
    coord = Coordinator(
        ctx.plan,
        plans,
        backend,
        SystemClock(),
        ctx.stop,
        sampler.sample,
        say,
        ctx.watch,
        _recoverer(dsn),
    )
    ctx.outcome = coord.out
    try:
        coord.run()
    finally:
        backend.close(5.0)
    meant = database.driver_info(ctx.plan.multiplex).implementation
    drivers = {r.driver for r in coord.out.ready.values()} - {meant}
    if drivers:
        say(f"WARNING: shards ran the {', '.join(sorted(drivers))} driver, not {meant}")


def execute(plan: RunPlan, out: TextIO, stop: StopFlag | None = None) -> int:
    """Run the plan; always try to leave a results file. Returns the exit code."""
    now = dt.datetime.now(dt.UTC)
    ctx = RunContext(
        plan, secrets.token_hex(4), now.isoformat(timespec="seconds"), stop or StopFlag()
    )
    output = plan.output or default_output(now)
    try:
        results.check_writable(output)
    except results.ResultsPathError as exc:
        raise RunError(str(exc), Exit.USAGE) from None
    _check_backend(ctx)

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    ctx.environment = _environment(ctx.plan.multiplex)
    if not ctx.plan.multiplex and database.driver_info().implementation != "c-extension":
        say("WARNING: mysql-connector-python C extension unavailable; running pure Python")
    try:
        with signals_to(ctx.stop):
            code = _execute(ctx, say)
            written = _write(ctx, output, say)
            if code == Exit.OK and not ctx.thresholds_passed:
                code = Exit.THRESHOLD
    finally:  # even on an unexpected error, never leave a private server behind
        if ctx.embedded_server is not None:
            _stop_embedded(ctx, say)
        if ctx.work_dir is not None:
            shutil.rmtree(ctx.work_dir, ignore_errors=True)
        if ctx.sink is not None:
            ctx.sink.stop()
    return code if written else max(code, Exit.FAILED)


def _execute(ctx: RunContext, say: Callable[[str], None]) -> int:
    dsn: Dsn | None = None
    try:
        _check_stop(ctx)
        dsn = _server_dsn(ctx, say)
        _check_stop(ctx)
        plans = _prepare(ctx, dsn, say)
        _check_stop(ctx)
        if ctx.plan.sink is not None:
            ctx.sink = sink_follow.start(ctx.plan, ctx.run_id)
            say(
                f"sink: following {ctx.plan.sink_exchange} on tap queue loadengine.tap.{ctx.run_id}"
            )
        say(_banner(ctx, dsn))
        _coordinate(ctx, dsn, plans, say)
    except RunError as exc:
        ctx.outcome.status = INTERRUPTED if ctx.stop.is_set else FAILED
        ctx.outcome.reason = str(exc)
        say(f"error: {exc}")
        return exc.code
    except database.DatabaseError as exc:
        ctx.outcome.status, ctx.outcome.reason = FAILED, f"{exc.error_class}: {exc}"
        say(f"error: cannot use the database: {exc.error_class}: {exc}")
        return Exit.FAILED
    except Exception as exc:  # a bug must not cost the user the results file
        ctx.outcome.status, ctx.outcome.reason = FAILED, f"internal error: {exc!r}"[:300]
        say(f"error: internal error (please report): {exc!r}"[:300])
        return Exit.FAILED
    finally:
        if dsn is not None and ctx.outcome.started:
            _finish_observing(ctx, dsn, say)
    code = _exit_code(ctx)
    if ctx.observed.audit is not None and not ctx.observed.audit.get("clean") and code == Exit.OK:
        return Exit.AUDIT
    if ctx.observed.sink is not None and not ctx.observed.sink.clean and code == Exit.OK:
        return Exit.SINK
    return code


def _finish_observing(ctx: RunContext, dsn: Dsn, say: Callable[[str], None]) -> None:
    """After the load: closing counters, the log's end, the follower, ledger and audit."""
    if ctx.watch is not None:
        ctx.watch.finish_server(ctx.outcome.elapsed_s, ctx.observed)
    _finish_server_facts(ctx, dsn)
    if ctx.watch is not None:
        ctx.watch.finish_follower(ctx.server.binlog_end, ctx.observed)
    ctx.observed.ledger_tables = list(ctx.outcome.ledger.tables())
    if ctx.sink is not None:
        _finish_sink(ctx, ctx.sink, say)
    if ctx.plan.audit:
        _audit(ctx, dsn, say)


def _finish_sink(ctx: RunContext, handle: FollowerHandle, say: Callable[[str], None]) -> None:
    say(f"sink: waiting up to {ctx.plan.sink_timeout_s:.0f} s for every change to arrive")
    start_unix_s = ctx.watch.start_unix_ns / 1e9 if ctx.watch is not None else 0.0
    ctx.observed.sink = sink_follow.finish(
        handle,
        ctx.observed.ledger_tables,
        ctx.plan.sink_timeout_s,
        start_unix_s + ctx.outcome.elapsed_s,
        ctx.plan.warmup_s,
    )
    say(sink_follow.line(ctx.observed.sink.summary))


def _audit(ctx: RunContext, dsn: Dsn, say: Callable[[str], None]) -> None:
    engine = ctx.outcome.aggregate.total.changes
    try:
        ctx.observed.audit = audit.perform(
            dsn,
            (ctx.server.binlog_start, ctx.server.binlog_end),
            ctx.observed.ledger_tables,
            engine,
            ctx.observed.heartbeats,
        )
    except (binlog.BinlogError, database.DatabaseError) as exc:
        ctx.observed.audit = {"clean": False, "error": str(exc)}
    say(report.audit_line(ctx.observed.audit))


def _exit_code(ctx: RunContext) -> int:
    if ctx.stop.is_set:
        if ctx.outcome.status in (COMPLETED, INTERRUPTED):
            ctx.outcome.status = INTERRUPTED
        return exit_for_signal(ctx.stop.signum)
    return exit_for_status(ctx.outcome.status)


def _banner(ctx: RunContext, dsn: Dsn) -> str:
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
    srv = env.get("server", {})
    return (
        f"loadengine {__version__} run {ctx.run_id}: target {target} CPS, {p.duration_s}s"
        f" (+{p.warmup_s}s warmup), {p.workers} shards{_layout(p)}, batch {p.batch_size}, "
        f"overload policy {p.on_overload}, driver {env['driver']['implementation']}, "
        f"server {srv.get('version', '?')} binlog {srv.get('log_bin', '?')}/"
        f"{srv.get('binlog_format', '?')} at {dsn.redacted()}"
    )


def _layout(p: RunPlan) -> str:
    """How the shards sit in OS processes, when not one process each."""
    if p.multiplex:
        return f" multiplexed on {p.processes or p.workers} process(es)"
    return f" on {p.processes} process(es)" if p.processes else ""


def _write_ledger(ctx: RunContext, output: str) -> str | None:
    """The change ledger next to the results file (not for ``--output -``)."""
    if output == "-" or not ctx.observed.ledger_tables:
        return None
    path = ledger.path_for(output)
    doc = ledger.document(ctx.run_id, ctx.observed.ledger_tables)
    try:
        results.write(doc, path)
    except OSError as exc:
        print(
            f"error: cannot write the change ledger to {path!r} ({exc.strerror})", file=sys.stderr
        )
        return None
    return path


def _write(ctx: RunContext, output: str, say: Callable[[str], None]) -> bool:
    ledger_path = _write_ledger(ctx, output)
    doc = results.build(
        ctx.plan,
        ctx.outcome,
        run_id=ctx.run_id,
        started_at=ctx.started_at,
        environment=ctx.environment,
        rates=ctx.rates,
        server=ctx.server.document(),
        observed=ctx.observed,
        ledger_file=os.path.basename(ledger_path) if ledger_path else None,
    )
    ctx.thresholds_passed = doc.get("thresholds_passed", True)
    say(report.summary_table(doc))
    if ctx.plan.thresholds:
        say(thresholds.one_line(doc["thresholds"]))
    try:
        where = results.write(doc, output)
    except OSError as exc:
        print(
            f"error: cannot write results to {output!r} ({exc.strerror}); results follow on stderr",
            file=sys.stderr,
        )
        sys.stderr.buffer.write(results.dumps(doc) + b"\n")
        return False
    if where not in (None, "-"):
        say(f"results: {where}")
    return True


def _stop_embedded(ctx: RunContext, say: Callable[[str], None]) -> None:
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

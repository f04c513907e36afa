"""``loadengine run``: from a validated plan to a results file and an exit code.

Order: signals first (so Ctrl-C at any moment still leaves a results file), then the
server (DSN or embedded), schema check, shard plans, the coordinator, results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from loadengine.backends.local import LocalBackend
from loadengine.core.aggregate import Bucket
from loadengine.core.clock import SystemClock
from loadengine.core.dsn import Dsn
from loadengine.core.messages import ShardDelta
from loadengine.core.plan import Resume, RunPlan, ShardPlan
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
from loadengine.run.context import RunContext, RunWatch
from loadengine.run.coordinator import Coordinator
from loadengine.run.prepare import (
    banner,
    environment,
    finish_server_facts,
    prepare,
    server_dsn,
    stop_embedded,
)
from loadengine.run.resources import Sampler
from loadengine.run.write import default_output, write_results
from loadengine.server import binlog, database
from loadengine.shard import recovery
from loadengine.verify import audit
from loadengine.verify.follower import FollowerHandle


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


def _recoverer(dsn: Dsn) -> Any:
    """Recovery of a dead shard's unreported work from its journal and, for an in-doubt
    commit, the server (``recovery``): the coordinator hands it every input."""

    def recover(
        plan: ShardPlan,
        second: int,
        reported: Bucket,
        updates: dict[str, int],
        deletes: dict[str, int],
    ) -> tuple[ShardDelta, Resume]:
        return recovery.recover(plan, second, reported, updates, dsn, deletes)

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
    flavor = ctx.environment.flavor
    setup = sum(p.keys.seeded_total for p in plans)
    ctx.watch = RunWatch(
        dsn, ctx.plan, ctx.server.binlog_start, flavor, ctx.sink, setup, ctx.run_id
    )
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

    ctx.environment = environment(ctx.plan.multiplex)
    if not ctx.plan.multiplex and database.driver_info().implementation != "c-extension":
        say("WARNING: mysql-connector-python C extension unavailable; running pure Python")
    try:
        with signals_to(ctx.stop):
            code = _execute(ctx, say)
            written = write_results(ctx, output, say)
            if code == Exit.OK and not ctx.thresholds_passed:
                code = Exit.THRESHOLD
    finally:  # even on an unexpected error, never leave a private server behind
        if ctx.embedded_server is not None:
            stop_embedded(ctx, say)
        if ctx.work_dir is not None:
            shutil.rmtree(ctx.work_dir, ignore_errors=True)
        if ctx.sink is not None:
            ctx.sink.stop()
    return code if written else max(code, Exit.FAILED)


def _execute(ctx: RunContext, say: Callable[[str], None]) -> int:
    dsn: Dsn | None = None
    try:
        _check_stop(ctx)
        dsn = server_dsn(ctx, say)
        _check_stop(ctx)
        plans = prepare(ctx, dsn, say)
        _check_stop(ctx)
        if ctx.plan.sink is not None:
            ctx.sink = sink_follow.start(ctx.plan, ctx.run_id)
            say(
                f"sink: following {ctx.plan.sink_exchange} on tap queue loadengine.tap.{ctx.run_id}"
            )
        say(banner(ctx, dsn))
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
    finish_server_facts(ctx, dsn)
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
            ctx.observed.ddl_executed,
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

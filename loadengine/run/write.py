"""After the load: the change ledger and the results file, written whole (the results
file even when something went wrong; on stderr if its path fails)."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable

from loadengine.core import thresholds
from loadengine.run import report, results
from loadengine.run.context import RunContext
from loadengine.verify import ledger


def default_output(now: dt.datetime) -> str:
    os.makedirs("results", exist_ok=True)
    return os.path.join("results", f"run-{now.strftime('%Y%m%dT%H%M%SZ')}.json")


def _write_ledger(ctx: RunContext, output: str) -> str | None:
    """The change ledger next to the results file (not for ``--output -``)."""
    if output == "-" or not ctx.observed.ledger_tables:
        return None
    path = ledger.path_for(output)
    doc = ledger.document(
        ctx.run_id, ctx.observed.ledger_tables, ledger.key_columns_for(ctx.plan.spec)
    )
    try:
        results.write(doc, path)
    except OSError as exc:
        print(
            f"error: cannot write the change ledger to {path!r} ({exc.strerror})", file=sys.stderr
        )
        return None
    return path


def write_results(ctx: RunContext, output: str, say: Callable[[str], None]) -> bool:
    ledger_path = _write_ledger(ctx, output)
    doc = results.build(
        ctx.plan,
        ctx.outcome,
        run_id=ctx.run_id,
        started_at=ctx.started_at,
        environment=ctx.environment.document(),
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

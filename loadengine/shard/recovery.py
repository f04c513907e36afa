"""After a shard process died: what it committed that nobody heard of, and where a
replacement picks up. Reads the shard's journals (``journal``); an in-doubt last
transaction is looked up on the server with ``workload.commit_probe``, never guessed.
"""

from __future__ import annotations

from array import array

from loadengine.core.aggregate import Bucket, total_changes
from loadengine.core.dsn import Dsn
from loadengine.core.generic import GenericBuilder
from loadengine.core.messages import ChangeCounts, ShardDelta
from loadengine.core.plan import Resume, ShardPlan
from loadengine.core.workload import commit_probe
from loadengine.server import database
from loadengine.shard.journal import Replay, path_for, pending_statements, read
from loadengine.shard.loop import le_bytes


def _resolve_pending(rep: Replay, plan: ShardPlan, dsn: Dsn) -> str:
    """Settle the journal's in-doubt transaction: ``committed``, ``rolled_back``,
    ``unknown`` (no probe possible, or the server unreachable), or ``none``."""
    if rep.pending is None:
        return "none"
    stmts = pending_statements(rep.pending, plan.keys)
    if plan.spec is not None:
        probe = GenericBuilder(plan.spec, plan.keys, plan.seed).commit_probe(stmts)
    else:
        probe = commit_probe(stmts, plan.keys)
    if probe is None:
        return "unknown"
    try:
        session = database.Session(dsn)
        try:
            done = session.committed(probe)
        finally:
            session.close()
    except database.DatabaseError:
        return "unknown"
    if done:
        rep.commit(rep.pending, [st.rows for st in stmts])
    rep.pending = None
    return "committed" if done else "rolled_back"


def _minus(a: ChangeCounts, b: ChangeCounts) -> ChangeCounts:
    out: ChangeCounts = {}
    for table, kinds in a.items():
        for kind, n in kinds.items():
            d = n - b.get(table, {}).get(kind, 0)
            if d:
                out.setdefault(table, {})[kind] = d
    return out


def recover(
    plan: ShardPlan,
    second: int,
    reported: Bucket,
    reported_updates: dict[str, int],
    dsn: Dsn,
    reported_deletes: dict[str, int] | None = None,
) -> tuple[ShardDelta, Resume]:
    """The unreported remainder of a dead shard's work as one delta, and its resume point.

    ``plan`` is the dead process's plan (its generation says how many journals exist);
    ``reported``/``reported_updates``/``reported_deletes`` are what its deltas already
    told the coordinator.
    """
    reported_deletes = reported_deletes or {}
    paths = [path_for(plan.journal_dir or "", plan.index, g) for g in range(plan.generation + 1)]
    rep = read(paths)
    outcome = _resolve_pending(rep, plan, dsn)
    unreported = _minus(rep.changes, reported.changes)
    keys = {
        table: _le_bytes_list(ks[reported_updates.get(table, 0) :])
        for table, ks in rep.update_keys.items()
        if len(ks) > reported_updates.get(table, 0)
    }
    deleted = {
        table: _le_bytes_list(ks[reported_deletes.get(table, 0) :])
        for table, ks in rep.delete_keys.items()
        if len(ks) > reported_deletes.get(table, 0)
    }
    faults = {"recovered_changes": total_changes(unreported)}
    if outcome != "none":
        faults[f"ambiguous_{outcome}"] = 1
    delta = ShardDelta(
        shard=plan.index,
        second=second,
        changes=unreported,
        statements=0,
        transactions=0,
        errors={},
        late_batches=0,
        missed_changes=0,
        backlog_changes=0,
        reconnects=0,
        updated_keys=keys,
        faults=faults,
        deleted_keys=deleted,
    )
    # A transaction found rolled back (or never sent) is sent again by the replacement;
    # one that may have committed (unknown) is not: it is counted as unresolved instead.
    resend = 1 if outcome == "rolled_back" else 0
    resume = Resume(
        batch=max(0, rep.last_batch - resend),
        customers=plan.keys.seeded_customers + rep.inserted.get("customers", 0),
        orders=plan.keys.seeded_orders + rep.inserted.get("orders", 0),
        counts=tuple(seeded + rep.inserted.get(t, 0) for t, _, seeded in plan.keys.spec_tables),
        gone=tuple(tuple(rep.delete_keys.get(t, ())) for t, _, _ in plan.keys.spec_tables),
    )
    return delta, resume


def _le_bytes_list(keys: list[int]) -> bytes:
    return le_bytes(array("I", keys))

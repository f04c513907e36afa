"""recovery.recover against a real server: a dead shard's journal, its in-doubt
transaction looked up on the server, and where the replacement resumes."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from loadengine.core.aggregate import Bucket
from loadengine.core.dsn import Dsn
from loadengine.core.plan import RunPlan, shard_plans
from loadengine.core.workload import KeyCursor, build_batch
from loadengine.server import database
from loadengine.shard import journal, recovery


@pytest.mark.parametrize("committed", [True, False])
def test_in_doubt_insert_is_booked_if_committed_and_resent_if_not(
    dsn: Dsn, tmp_path: Path, committed: bool
) -> None:
    plan = RunPlan(
        steps=((100, 5),), duration_s=5, warmup_s=0, workers=1, batch_size=4,
        log_interval_s=1.0, mix=(("insert_customer", 1),), seed=1, on_overload="catch-up",
        dsn=None, output=None, keep_server=False,
    )  # fmt: skip
    shard = dataclasses.replace(
        shard_plans(plan, dsn.to_url(), 5001, 50001, "tok")[0], journal_dir=str(tmp_path)
    )
    rng = random.Random(3)
    first, after = build_batch({"insert_customer": 4}, rng, shard.keys, KeyCursor(0, 0), "t.0.1")
    second, _ = build_batch({"insert_customer": 4}, rng, shard.keys, after, "t.0.2")
    third, _ = build_batch({"insert_customer": 4}, rng, shard.keys, after, "t.0.3")
    session = database.Session(dsn)
    try:
        assert session.run_transaction(first) == [4]
        if committed:  # committed, but the process died before writing its ack
            assert session.run_transaction(second) == [4]
    finally:
        session.close()
    jr = journal.Journal(journal.path_for(str(tmp_path), 0, 0))
    jr.intents([(1, "t.0.1", first), (2, "t.0.2", second), (3, "t.0.3", third)])
    jr.ack(1, [4])
    jr.close()

    delta, resume = recovery.recover(shard, 1, Bucket(), {}, dsn)

    booked = 8 if committed else 4
    assert delta.changes == {"customers": {"insert": booked}}
    outcome = "ambiguous_committed" if committed else "ambiguous_rolled_back"
    assert delta.faults == {"recovered_changes": booked, outcome: 1}
    assert resume.customers == booked
    assert resume.batch == (2 if committed else 1)  # next schedule index: re-send if not

"""The run plan and its split into shards: pure functions over frozen dataclasses.

Invariants (unit tested):
- shard rates add up exactly to the target CPS (integer split, remainder spread one by one);
- shards own disjoint keys: shard ``i`` of ``n`` owns customer ids ``base + i + k*n`` and
  order numbers ``base + i + k*n`` for ``k >= 0``, so they never contend for a row;
- each shard's RNG seed is derived from the run seed and the shard index only.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadengine.core.spec import WorkloadSpec, generated

OPERATIONS: tuple[str, ...] = ("insert_customer", "insert_order", "update_customer", "update_order")
OVERLOAD_POLICIES: tuple[str, ...] = ("catch-up", "drop", "abort")
SHARD_FAILURE_POLICIES: tuple[str, ...] = ("abort", "restart")
BACKENDS: tuple[str, ...] = ("local", "ray")
DEFAULT_MIX: tuple[tuple[str, int], ...] = (
    ("insert_customer", 20),
    ("insert_order", 30),
    ("update_customer", 20),
    ("update_order", 30),
)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Every effective setting of a run.

    ``steps`` are (target_cps, duration_s) pairs run back to back after the warmup (one
    step for a constant rate, several for a ramp); empty means unthrottled (``max``), in
    which case ``duration_s`` alone says how long. Warmup runs at the first step's rate.
    """

    steps: tuple[tuple[int, int], ...]
    duration_s: int
    warmup_s: int
    workers: int
    batch_size: int
    log_interval_s: float
    mix: tuple[tuple[str, int], ...]
    seed: int
    on_overload: str
    dsn: str | None
    output: str | None
    keep_server: bool
    sources: tuple[tuple[str, str], ...] = ()
    protocol: str = "text"  # "text" or "prepared" (see database.Session)
    retries: int = 3  # per transaction, for deadlock / lock wait / lost connection
    on_shard_failure: str = "abort"  # or "restart"
    backend: str = "local"  # "local" (processes here) or "ray" (actors on a Ray cluster)
    ray_address: str | None = None  # Ray cluster address or "auto"; None: a local runtime
    thresholds: tuple[tuple[str, float], ...] = ()  # see loadengine.thresholds
    audit: bool = False  # read the run's binary-log window afterwards and compare
    follow_binlog: bool = False  # tail the binary log during the run (capture lag)
    processes: int | None = None  # local backend: OS processes for the shards (None: one each)
    multiplex: bool = False  # local backend: a process's shards on one thread (``hub``)
    sink: str | None = None  # AMQP URL of the pipeline's sink to follow live (password inside)
    sink_timeout_s: float = 60.0  # after the load, how long to wait for the sink to catch up
    sink_exchange: str = "inventory"
    sink_topic_prefix: str = "inventory.inventory."
    workload: str = "inventory"  # the workload's name (built-in) or spec file
    spec: WorkloadSpec | None = None  # None: the inventory workload, without DDL

    @property
    def total_s(self) -> int:
        return self.warmup_s + self.duration_s

    @property
    def planned_changes(self) -> int | None:
        """Changes the measured window should commit (None when unthrottled)."""
        return sum(r * d for r, d in self.steps) if self.steps else None

    @property
    def target_cps(self) -> int | float | None:
        """The target rate; for a ramp, the time-weighted mean over the measured window."""
        if not self.steps:
            return None
        if len(self.steps) == 1:
            return self.steps[0][0]
        return (self.planned_changes or 0) / self.duration_s

    def schedule_steps(self) -> tuple[tuple[int, int], ...]:
        """Steps including the warmup, from the common start."""
        if not self.steps:
            return ()
        warm = ((self.steps[0][0], self.warmup_s),) if self.warmup_s else ()
        return warm + self.steps

    def target_at(self, second: int) -> int | None:
        """Target changes for second ``second`` after the common start."""
        t = 0
        for rate, dur in self.schedule_steps():
            if second < t + dur:
                return rate
            t += dur
        return None


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Keys one shard owns: ``first + index + k*stride`` for k >= 0 (customers and orders)."""

    customer_first: int
    order_first: int
    index: int
    stride: int
    seeded_customers: int
    seeded_orders: int
    spec_tables: tuple[tuple[str, int, int], ...] = ()  # spec workloads: (table, first, seeded)

    def tables(self) -> tuple[tuple[str, int, int], ...]:
        """(table, first key, seeded rows) of every table the shard writes."""
        if self.spec_tables:
            return self.spec_tables
        return (
            ("customers", self.customer_first, self.seeded_customers),
            ("orders", self.order_first, self.seeded_orders),
        )

    @property
    def seeded_total(self) -> int:
        return sum(seeded for _, _, seeded in self.tables())

    def customer_id(self, k: int) -> int:
        return self.customer_first + self.index + k * self.stride

    def order_number(self, k: int) -> int:
        return self.order_first + self.index + k * self.stride


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a restarted shard picks up its predecessor's work (from its journal): the
    next batch index and the key cursors (rows of its keys that exist, seed included)."""

    batch: int
    customers: int
    orders: int
    counts: tuple[int, ...] = ()  # spec workloads: keys allocated per table, seed included
    gone: tuple[tuple[int, ...], ...] = ()  # spec workloads: key indices deleted, per table


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """What one shard process needs to run; crosses the process boundary.

    ``steps`` (rate_cps, duration_s) include the warmup; empty means unthrottled.
    """

    index: int
    count: int
    steps: tuple[tuple[int, int], ...]
    total_s: int
    batch_size: int
    mix: tuple[tuple[str, int], ...]
    seed: int
    run_token: str
    on_overload: str
    keys: KeySpace
    dsn: str
    retries: int = 3
    protocol: str = "text"
    journal_dir: str | None = None
    generation: int = 0  # 0 for the first process of a shard, +1 per restart
    resume: Resume | None = None
    phase: float = 0.0  # index/count: staggers the shards' batches (see schedule)
    spec: WorkloadSpec | None = None  # a spec workload (builder "spec"); None: inventory


def window_boundaries(plan: RunPlan) -> tuple[int, ...]:
    """Seconds where a reported window starts: end of warmup, then each ramp step."""
    out, t = [plan.warmup_s], plan.warmup_s
    for _, dur in plan.steps[:-1]:
        t += dur
        out.append(t)
    return tuple(out)


def split_rate(target_cps: int, shards: int) -> list[int]:
    """Integer shares of ``target_cps`` over ``shards``; they sum exactly to the target."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    base, extra = divmod(target_cps, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


SEED_BATCHES = 20  # an update batch picks among this many batches' worth of rows ...
SEED_ROWS_MIN, SEED_ROWS_CAP = 1_000, 20_000  # ... within these bounds (per shard, table)


def seed_rows_per_shard(batch_size: int) -> int:
    """Rows seeded per shard and table so that updates have a pool many batches deep.

    An update picks distinct rows among those that exist. With two batches' worth (the
    old rule) an update-only run rewrote half of its shard's rows in every transaction,
    on the few pages it shares with the other shards (keys are interleaved): 58K rows/s
    against 81K with 20 batches' worth, in the same rounds (``benchmarks/RESULTS.md``).
    Never fewer than two batches, so one batch always finds distinct rows."""
    pool = min(SEED_BATCHES * batch_size, SEED_ROWS_CAP)
    return max(2 * batch_size, pool, SEED_ROWS_MIN)


def needs_seed(mix: tuple[tuple[str, int], ...]) -> tuple[bool, bool]:
    """(seed customers?, seed orders?) for a mix: only what updates or orders will reference."""
    ops = {op for op, w in mix if w > 0}
    customers = bool(ops & {"update_customer", "insert_order", "update_order"})
    orders = "update_order" in ops
    return customers, orders


def spec_seed_rows(spec: WorkloadSpec, batch_size: int) -> dict[str, int]:
    """Rows seeded per shard and table of a spec workload: as the spec says, else the
    engine's rule (``seed_rows_per_shard``) for a table that is updated, deleted from or
    referenced, and none for a table only inserted into."""
    picked = {o.table for o in spec.operations if o.kind in ("update", "delete")}
    picked |= {c.gen.ref for t in spec.tables for c in t.columns if c.gen.kind == "ref"}
    return {
        t.name: t.seed_rows
        if t.seed_rows is not None
        else (seed_rows_per_shard(batch_size) if t.name in picked else 0)
        for t in spec.tables
    }


def shard_plans(
    plan: RunPlan,
    dsn: str,
    customer_first: int,
    order_first: int,
    run_token: str,
    spec_firsts: dict[str, int] | None = None,
) -> list[ShardPlan]:
    """Split a run plan into one ShardPlan per worker. ``*_first`` are the lowest free keys
    (``spec_firsts`` per table for a spec workload).

    Every step's rate is split exactly, so at every moment the shards' rates sum to the
    plan's rate.
    """
    steps = plan.schedule_steps()
    per_step = [split_rate(rate, plan.workers) for rate, _ in steps]
    seed_c, seed_o = needs_seed(plan.mix)
    seeded = seed_rows_per_shard(plan.batch_size)
    spec = generated(plan.spec)
    spec_tables: tuple[tuple[str, int, int], ...] = ()
    if spec is not None:
        seeds = spec_seed_rows(spec, plan.batch_size)
        firsts = spec_firsts or {}
        spec_tables = tuple(
            (t.name, firsts.get(t.name, t.first_key), seeds[t.name]) for t in spec.tables
        )
        seed_c = seed_o = False
    out = []
    for i in range(plan.workers):
        keys = KeySpace(
            customer_first=customer_first,
            order_first=order_first,
            index=i,
            stride=plan.workers,
            seeded_customers=seeded if seed_c else 0,
            seeded_orders=seeded if seed_o else 0,
            spec_tables=spec_tables,
        )
        out.append(
            ShardPlan(
                index=i,
                count=plan.workers,
                steps=tuple(
                    (rates[i], dur) for rates, (_, dur) in zip(per_step, steps, strict=True)
                ),
                total_s=plan.total_s,
                batch_size=plan.batch_size,
                mix=plan.mix,
                seed=plan.seed * 1_000_003 + i,
                run_token=run_token,
                on_overload=plan.on_overload,
                keys=keys,
                dsn=dsn,
                retries=plan.retries,
                protocol=plan.protocol,
                phase=i / plan.workers,
                spec=spec,
            )
        )
    return out


def process_groups(shards: int, processes: int) -> list[list[int]]:
    """Shard indices dealt to ``processes`` OS processes: contiguous runs whose sizes
    differ by at most one (``--processes``; one process per shard when equal)."""
    processes = max(1, min(processes, shards))
    base, extra = divmod(shards, processes)
    groups, first = [], 0
    for p in range(processes):
        size = base + (1 if p < extra else 0)
        groups.append(list(range(first, first + size)))
        first += size
    return groups

"""The reference a load engine is measured against: the leanest client loop of one shape.

N processes, each with one connection, send pre-rendered SQL text as fast as the server
takes it, for a fixed time, and count the rows the server says it changed in committed
statements. No pacing, no bookkeeping, no parameters to escape. Its rows carry the
engine's bytes (the same first and last names, the same e-mail domain, an update tag of
the engine's length), taken in rotation rather than drawn: the reference does the same
work on the server as the engine, and no more on the client. Shapes:

- ``insert``: ``INSERT INTO customers ... VALUES (..),(..)`` with ``rows`` rows, one commit
  per statement (``rows=1`` is a single-row autocommit INSERT, sysbench oltp_insert's shape);
- ``update``: ``UPDATE customers SET email = ... WHERE id IN (...)`` over ``rows`` distinct
  existing rows chosen at random, one commit per statement (the engine's batched update
  shape), among as many rows per process as an engine shard seeds for that batch size
  (``plan.seed_rows_per_shard``: the size of the pool decides how hot its pages are).

Drivers: ``connector`` (mysql-connector-python's C extension, ``cmd_query``), ``cext``
(the C extension's raw ``_mysql_connector.MySQL``). The implementation that ran is
returned; a run that would fall back to pure Python refuses instead.

    .venv/bin/python benchmarks/raw_loop.py --port P --shape insert --rows 100 --procs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import random
import time
from dataclasses import dataclass

try:
    import _mysql_connector  # type: ignore[import-not-found]  # before mysql.connector
except ImportError:  # pragma: no cover
    _mysql_connector = None

import orjson

from loadengine.core.plan import seed_rows_per_shard
from loadengine.core.workload import EMAIL_DOMAIN, NAME_LITERALS  # names: in rotation, not drawn

TAG_HEAD = "0a1b2c3d.0."  # the shape of the engine's tags: run token (8 hex), shard, batch
ID_SPAN = 5_000_000  # ids per process: each process inserts above the table's max id


@dataclass(frozen=True)
class Shape:
    kind: str  # insert | update
    rows: int
    procs: int
    seconds: float
    host: str
    port: int
    database: str
    driver: str = "cext"
    seeded: int = 0  # update: rows per process to choose from (0: as an engine shard)
    id_base: int = 0  # first free id (set by ``run``)
    short_rows: bool = False  # the old reference's rows: 'Raw','Loop','r<id>@raw.test'


def _connect(shape: Shape):
    import mysql.connector

    if _mysql_connector is None or not mysql.connector.HAVE_CEXT:
        raise SystemExit("the mysql-connector-python C extension is not available")
    wrapper = mysql.connector.connect(
        host=shape.host, port=shape.port, user="root", password="", database=shape.database
    )
    return wrapper._cmysql  # the raw C object: query/commit/affected_rows, nothing else


def _insert_sql(first_id: int, rows: int, short: bool = False) -> bytes:
    names, n = (("'Raw','Loop'",), 1) if short else (NAME_LITERALS, len(NAME_LITERALS))
    mail = ("r", "raw.test") if short else ("c", EMAIL_DOMAIN)
    vals = ",".join(
        f"({i},{names[i % n]},'{mail[0]}{i}@{mail[1]}')" for i in range(first_id, first_id + rows)
    )
    return f"INSERT INTO customers (id, first_name, last_name, email) VALUES {vals}".encode()


def _update_sql(ids: list[int], tag: int) -> bytes:
    in_list = ",".join(map(str, ids))
    return (
        f"UPDATE customers SET email = CONCAT('c', id, '.{TAG_HEAD}{tag}@{EMAIL_DOMAIN}') "
        f"WHERE id IN ({in_list})"
    ).encode()


def _worker(shape: Shape, index: int, start_at: float, out: mp.Queue) -> None:
    try:
        out.put(_loop(shape, index, start_at))
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def _loop(shape: Shape, index: int, start_at: float) -> tuple[int, int, float]:
    conn = _connect(shape)
    base = shape.id_base + index * ID_SPAN
    if shape.kind == "update":  # seed this process's rows, then update them
        conn.autocommit(False)
        for first in range(0, shape.seeded, 1000):
            conn.query(_insert_sql(base + first, min(1000, shape.seeded - first), shape.short_rows))
            conn.commit()
    conn.autocommit(shape.rows == 1 and shape.kind == "insert")
    single = shape.rows == 1 and shape.kind == "insert"
    rows_done = stmts = 0
    next_id, tag, rng = base + shape.seeded, 0, random.Random(index)
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0, end = time.process_time(), start_at + shape.seconds
    while time.time() < end:
        if shape.kind == "insert":
            sql = _insert_sql(next_id, shape.rows, shape.short_rows)
            next_id += shape.rows
        else:
            tag += 1  # distinct random rows, each really changed: the engine's update shape
            sql = _update_sql([base + k for k in rng.sample(range(shape.seeded), shape.rows)], tag)
        conn.query(sql)
        n = conn.affected_rows()
        if not single:
            conn.commit()
        rows_done += n
        stmts += 1
    cpu_s = time.process_time() - cpu0
    conn.close()
    return rows_done, stmts, cpu_s


def run(shape: Shape) -> dict:
    """Run the loop; rows/s from the rows committed inside the timed window."""
    conn = _connect(shape)
    conn.query(b"SELECT COALESCE(MAX(id), 0) FROM customers")
    shape = dataclasses.replace(
        shape,
        id_base=int(conn.fetch_row()[0]) + 1,
        seeded=shape.seeded or seed_rows_per_shard(shape.rows),  # the engine's update pool
    )
    conn.close()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 1.0 + 0.02 * shape.procs + (2.0 if shape.kind == "update" else 0)
    procs = [
        ctx.Process(target=_worker, args=(shape, i, start_at, out)) for i in range(shape.procs)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise RuntimeError(f"raw loop failed: {failed[0]}")
    rows = sum(r[0] for r in results)
    cpu_s = sum(r[2] for r in results)
    return {
        "shape": shape.kind,
        "rows_per_statement": shape.rows,
        "procs": shape.procs,
        "seconds": shape.seconds,
        "rows": rows,
        "statements": sum(r[1] for r in results),
        "rows_per_s": round(rows / shape.seconds, 1),
        "client_cpu_s_per_10k": round(cpu_s / max(1, rows) * 10_000, 4),
        "driver": "mysql-connector-python c-extension (_mysql_connector.MySQL, raw query)",
        "pid": os.getpid(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3306)
    ap.add_argument("--database", default="inventory")
    ap.add_argument("--shape", choices=("insert", "update"), default="insert")
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--short-rows", action="store_true", help="the old, shorter insert rows")
    a = ap.parse_args()
    shape = Shape(a.shape, a.rows, a.procs, a.seconds, a.host, a.port, a.database)
    shape = dataclasses.replace(shape, short_rows=a.short_rows)
    print(orjson.dumps(run(shape)).decode())


if __name__ == "__main__":
    main()

"""``schema init | reset | status`` and the read-only checks a run makes before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadengine.core.dsn import Dsn
from loadengine.core.schema import ALL_TABLES, DDL, FIRST_CUSTOMER_ID, FIRST_ORDER_NUMBER, SEED_ROWS
from loadengine.core.spec import WorkloadSpec, create_table_sql
from loadengine.server import database, queries


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    database_exists: bool
    present: tuple[str, ...]
    missing: tuple[str, ...]
    row_counts: tuple[tuple[str, int], ...]

    @property
    def ready(self) -> bool:
        return self.database_exists and not self.missing


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def uses_inventory(spec: WorkloadSpec | None) -> bool:
    return spec is None or spec.base == "inventory"


def own_tables(spec: WorkloadSpec | None) -> tuple[str, ...]:
    """The tables a workload needs that the inventory schema does not create."""
    return () if spec is None else tuple(t.name for t in spec.tables if t.create)


def tables_of(spec: WorkloadSpec | None) -> tuple[str, ...]:
    return (ALL_TABLES if uses_inventory(spec) else ()) + own_tables(spec)


def status(dsn: Dsn, spec: WorkloadSpec | None = None) -> SchemaStatus:
    wanted = tables_of(spec)
    conn = database.connect(dsn, with_database=False)
    try:
        dbs = database.query(
            conn,
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (dsn.database,),
        )
        if not dbs:
            return SchemaStatus(False, (), wanted, ())
        rows = database.query(
            conn,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (dsn.database,),
        )
        have = {str(queries.plain(r[0])) for r in rows}
        present = tuple(t for t in wanted if t in have)
        missing = tuple(t for t in wanted if t not in have)
        counts = tuple(
            (
                t,
                int(
                    database.query(conn, f"SELECT COUNT(*) FROM {_quote_ident(dsn.database)}.{t}")[
                        0
                    ][0]
                ),
            )
            for t in present
        )
        return SchemaStatus(True, present, missing, counts)
    finally:
        conn.close()


def init(dsn: Dsn, spec: WorkloadSpec | None = None) -> SchemaStatus:
    """Create the database (if missing) and any missing table: the inventory's with
    Debezium's rows (unless the workload does without them), then the workload's own."""
    conn = database.connect(dsn, with_database=False)
    try:
        database.execute(conn, f"CREATE DATABASE IF NOT EXISTS {_quote_ident(dsn.database)}")
        database.execute(conn, f"USE {_quote_ident(dsn.database)}")
        have = {str(queries.plain(r[0])) for r in database.query(conn, "SHOW TABLES")}
        if uses_inventory(spec):
            for table, ddl, seed in zip(ALL_TABLES, DDL, SEED_ROWS, strict=True):
                if table in have:
                    continue
                database.execute(conn, ddl)
                database.execute(conn, seed)
        if spec is not None:
            for t in spec.tables:
                if t.create and t.name not in have:
                    database.execute(conn, create_table_sql(t, spec))
        conn.commit()
    finally:
        conn.close()
    return status(dsn, spec)


def reset(dsn: Dsn, spec: WorkloadSpec | None = None) -> SchemaStatus:
    """Drop the workload's tables (children first) and create them afresh."""
    conn = database.connect(dsn, with_database=False)
    try:
        database.execute(conn, f"CREATE DATABASE IF NOT EXISTS {_quote_ident(dsn.database)}")
        database.execute(conn, f"USE {_quote_ident(dsn.database)}")
        for table in reversed(own_tables(spec)):
            database.execute(conn, f"DROP TABLE IF EXISTS {table}")
        if uses_inventory(spec):
            for table in reversed(ALL_TABLES):
                database.execute(conn, f"DROP TABLE IF EXISTS {table}")
        conn.commit()
    finally:
        conn.close()
    return init(dsn, spec)


def first_free_spec_keys(conn: Any, spec: WorkloadSpec) -> dict[str, int]:
    """Per spec table: the lowest key above every existing row and the spec's first key."""
    out = {}
    for t in spec.tables:
        top = database.query(conn, f"SELECT COALESCE(MAX({t.key}), 0) FROM {t.name}")[0][0]
        out[t.name] = max(int(top) + 1, t.first_key)
    return out


def first_free_keys(conn: Any) -> tuple[int, int]:
    """Lowest customer id and order number above every existing row (and the example's)."""
    c = database.query(conn, "SELECT COALESCE(MAX(id), 0) FROM customers")[0][0]
    o = database.query(conn, "SELECT COALESCE(MAX(order_number), 0) FROM orders")[0][0]
    return max(int(c) + 1, FIRST_CUSTOMER_ID), max(int(o) + 1, FIRST_ORDER_NUMBER)

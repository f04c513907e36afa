"""``schema init | reset | status`` and the read-only checks a run makes before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadengine.core.dsn import Dsn
from loadengine.core.schema import ALL_TABLES, DDL, FIRST_CUSTOMER_ID, FIRST_ORDER_NUMBER, SEED_ROWS
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


def status(dsn: Dsn) -> SchemaStatus:
    conn = database.connect(dsn, with_database=False)
    try:
        dbs = database.query(
            conn,
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            (dsn.database,),
        )
        if not dbs:
            return SchemaStatus(False, (), ALL_TABLES, ())
        rows = database.query(
            conn,
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (dsn.database,),
        )
        have = {str(queries.plain(r[0])) for r in rows}
        present = tuple(t for t in ALL_TABLES if t in have)
        missing = tuple(t for t in ALL_TABLES if t not in have)
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


def init(dsn: Dsn) -> SchemaStatus:
    """Create the database (if missing) and any missing table, with Debezium's rows."""
    conn = database.connect(dsn, with_database=False)
    try:
        database.execute(conn, f"CREATE DATABASE IF NOT EXISTS {_quote_ident(dsn.database)}")
        database.execute(conn, f"USE {_quote_ident(dsn.database)}")
        have = {str(queries.plain(r[0])) for r in database.query(conn, "SHOW TABLES")}
        for table, ddl, seed in zip(ALL_TABLES, DDL, SEED_ROWS, strict=True):
            if table in have:
                continue
            database.execute(conn, ddl)
            database.execute(conn, seed)
        conn.commit()
    finally:
        conn.close()
    return status(dsn)


def reset(dsn: Dsn) -> SchemaStatus:
    """Drop the inventory tables and create them afresh."""
    conn = database.connect(dsn, with_database=False)
    try:
        database.execute(conn, f"CREATE DATABASE IF NOT EXISTS {_quote_ident(dsn.database)}")
        database.execute(conn, f"USE {_quote_ident(dsn.database)}")
        for table in reversed(ALL_TABLES):
            database.execute(conn, f"DROP TABLE IF EXISTS {table}")
        conn.commit()
    finally:
        conn.close()
    return init(dsn)


def first_free_keys(conn: Any) -> tuple[int, int]:
    """Lowest customer id and order number above every existing row (and the example's)."""
    c = database.query(conn, "SELECT COALESCE(MAX(id), 0) FROM customers")[0][0]
    o = database.query(conn, "SELECT COALESCE(MAX(order_number), 0) FROM orders")[0][0]
    return max(int(c) + 1, FIRST_CUSTOMER_ID), max(int(o) + 1, FIRST_ORDER_NUMBER)

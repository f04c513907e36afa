"""Workload specs (core.spec): the built-ins parse, and every refusal is one line naming
what is wrong. Pure, no server."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loadengine import data, settings
from loadengine.core import spec
from loadengine.core.spec import DdlSchedule, SpecError, create_table_sql

BUILT_INS = ("inventory", "inventory-full", "large-rows", "ddl", "payments")


def _base() -> dict[str, Any]:
    """A small valid spec: accounts, and payments that reference them."""
    return {
        "name": "t",
        "tables": [
            {
                "name": "accounts",
                "key": "account_id",
                "key_type": "BIGINT",
                "version": "v",
                "columns": [
                    {"name": "owner", "type": "VARCHAR(16)",
                     "gen": {"kind": "choice", "values": ["ada", "alan"]}},
                ],
            },
            {
                "name": "payments",
                "key": "payment_id",
                "key_type": "BIGINT",
                "version": "v",
                "columns": [
                    {"name": "account_id", "type": "BIGINT",
                     "gen": {"kind": "ref", "table": "accounts"}},
                    {"name": "amount", "type": "INT", "gen": {"kind": "int", "min": 0, "max": 99}},
                ],
            },
        ],
        "operations": [
            {"name": "ins_a", "kind": "insert", "table": "accounts", "weight": 1},
            {"name": "ins_p", "kind": "insert", "table": "payments", "weight": 3},
            {"name": "upd_p", "kind": "update", "table": "payments", "weight": 2,
             "set": ["amount"]},
            {"name": "del_p", "kind": "delete", "table": "payments", "weight": 1},
        ],
    }  # fmt: skip


def _acc(d: dict[str, Any]) -> dict[str, Any]:
    return d["tables"][0]


def _pay(d: dict[str, Any]) -> dict[str, Any]:
    return d["tables"][1]


def _col(d: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for t in d["tables"] for c in t["columns"] if c["name"] == name)


def _op(d: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in d["operations"] if o["name"] == name)


def _set(get: Callable[[dict[str, Any]], dict[str, Any]], **kw: Any) -> Callable[..., None]:
    return lambda d: get(d).update(kw)


def _col_set(name: str, **kw: Any) -> Callable[..., None]:
    return _set(lambda d: _col(d, name), **kw)


def _op_set(name: str, **kw: Any) -> Callable[..., None]:
    return _set(lambda d: _op(d, name), **kw)


def _add_op(**op: Any) -> Callable[..., None]:
    return lambda d: d["operations"].append(op)


def _add_col(table: int, **col: Any) -> Callable[..., None]:
    return lambda d: d["tables"][table]["columns"].append(col)


def _ddl(*statements: str, every_s: float = 10) -> Callable[..., None]:
    return lambda d: d.update(ddl={"every_s": every_s, "statements": list(statements)})


def _swap_tables(d: dict[str, Any]) -> None:
    d["tables"].reverse()


def _all_weights_zero(d: dict[str, Any]) -> None:
    for o in d["operations"]:
        o["weight"] = 0


def _drop_version(d: dict[str, Any]) -> None:
    del _pay(d)["version"]


TXN = {"name": "tx", "kind": "transaction", "weight": 1}

REFUSALS: list[tuple[str, Callable[..., None], tuple[str, ...]]] = [
    ("unknown-top-level-key", lambda d: d.update(bogus=1), ("bogus",)),
    ("unknown-builder", lambda d: d.update(builder="magic"), ("builder", "magic")),
    ("unknown-base", lambda d: d.update(base="sakila"), ("base", "sakila")),
    ("inventory-builder-with-tables", lambda d: d.update(builder="inventory"),
     ("inventory", "tables")),
    ("unknown-sql-type", _col_set("amount", type="MONEY"), ("amount", "MONEY")),
    ("varchar-too-long", _col_set("owner", type="VARCHAR(20000)"), ("owner", "VARCHAR(20000)")),
    ("varchar-zero", _col_set("owner", type="VARCHAR(0)"), ("owner", "VARCHAR(0)")),
    ("decimal-precision-too-big", _col_set("amount", type="DECIMAL(70,2)"),
     ("amount", "DECIMAL(70,2)")),
    ("decimal-scale-above-precision", _col_set("amount", type="DECIMAL(4,6)"),
     ("amount", "DECIMAL(4,6)")),
    ("unknown-generator", _col_set("amount", gen="uuid"), ("amount", "uuid")),
    ("int-gen-on-varchar", _col_set("owner", gen={"kind": "int"}), ("owner", "'int'")),
    ("text-gen-on-int", _col_set("amount", gen="text"), ("amount", "'text'")),
    ("datetime-gen-on-date", _col_set("amount", type="DATE", gen="datetime"),
     ("amount", "'datetime'", "DATE")),
    ("int-range-beyond-tinyint",
     _col_set("amount", type="TINYINT", gen={"kind": "int", "min": 0, "max": 1000}),
     ("amount", "TINYINT", "1000")),
    ("decimal-range-beyond-precision",
     _col_set("amount", type="DECIMAL(5,2)", gen={"kind": "decimal", "min": 0, "max": 1000}),
     ("amount", "DECIMAL(5,2)")),
    ("choice-not-in-enum",
     _col_set("owner", type="ENUM('ada','alan')", gen={"kind": "choice", "values": ["ada", "bob"]}),
     ("owner", "'bob'")),
    ("choice-longer-than-varchar", _col_set("owner", type="VARCHAR(3)"), ("owner", "VARCHAR(3)")),
    ("text-larger-than-column",
     _add_col(0, name="note", type="TEXT", gen={"kind": "text", "size": {"fixed": 100_000}}),
     ("note", "TEXT", "100,000")),
    ("min-above-max", _col_set("amount", gen={"kind": "int", "min": 10, "max": 5}),
     ("amount", "min 10")),
    ("size-two-kinds",
     _add_col(0, name="note", type="TEXT",
              gen={"kind": "text", "size": {"fixed": 10, "uniform": [1, 2]}}),
     ("note", "size", "exactly one")),
    ("size-weighted-weight-zero",
     _add_col(0, name="note", type="TEXT", gen={"kind": "text", "size": {"weighted": [[10, 0]]}}),
     ("note", "weighted[0] weight")),
    ("size-uniform-one-bound",
     _add_col(0, name="note", type="TEXT", gen={"kind": "text", "size": {"uniform": [10]}}),
     ("note", "size.uniform")),
    ("key-type-not-integer", _set(_acc, key_type="VARCHAR(20)"),
     ("accounts", "key_type", "VARCHAR(20)")),
    ("version-type-date", _set(_acc, version_type="DATE"), ("accounts", "version_type")),
    ("version-type-smallint", _set(_acc, version_type="SMALLINT"),
     ("accounts", "version_type", "SMALLINT")),
    ("version-type-short-varchar", _set(_acc, version_type="VARCHAR(10)"),
     ("accounts", "version_type", "VARCHAR(10)")),
    ("duplicate-column", _add_col(0, name="owner", type="INT", gen="int"), ("accounts", "'owner'")),
    ("column-named-as-version", _add_col(0, name="v", type="INT", gen="int"), ("accounts", "'v'")),
    ("duplicate-table", lambda d: d["tables"].insert(1, copy.deepcopy(_acc(d))),
     ("accounts", "declared twice")),
    ("duplicate-operation", _add_op(name="ins_a", kind="insert", table="accounts"),
     ("ins_a", "declared twice")),
    ("operation-on-unknown-table", _op_set("ins_a", table="ghosts"), ("ins_a", "ghosts")),
    ("unknown-op-kind", _op_set("ins_a", kind="upsert"), ("ins_a", "upsert")),
    ("update-without-version-column", _drop_version, ("upd_p", "payments", "version")),
    ("update-sets-unknown-column", _op_set("upd_p", set=["nope"]), ("upd_p", "'nope'")),
    ("update-sets-the-key", _op_set("upd_p", set=["payment_id"]), ("upd_p", "'payment_id'")),
    ("update-sets-a-ref-column", _op_set("upd_p", set=["account_id"]), ("upd_p", "'account_id'")),
    ("keys-on-an-insert", _op_set("ins_a", keys="uniform"), ("ins_a", "keys")),
    ("set-on-a-delete", _op_set("del_p", set=["amount"]), ("del_p", "set")),
    ("unreferenced-on-an-insert", _op_set("ins_a", unreferenced=True), ("ins_a", "unreferenced")),
    ("unknown-key-dist", _op_set("upd_p", keys={"dist": "gaussian"}), ("upd_p", "'gaussian'")),
    ("zipfian-s-zero", _op_set("upd_p", keys={"dist": "zipfian", "s": 0}), ("upd_p", "keys.s")),
    ("zipfian-s-negative", _op_set("del_p", keys={"dist": "zipfian", "s": -1}),
     ("del_p", "keys.s")),
    ("hotset-hot-keys-zero", _op_set("upd_p", keys={"dist": "hotset", "hot_keys": 0}),
     ("upd_p", "hotset")),
    ("hotset-hot-ops-above-one", _op_set("upd_p", keys={"dist": "hotset", "hot_ops": 1.5}),
     ("upd_p", "hotset")),
    ("transaction-unknown-step", _add_op(**TXN, steps=["ins_a", "nope"]), ("tx", "'nope'")),
    ("transaction-nested",
     lambda d: d["operations"].extend([{**TXN, "steps": ["ins_a"]},
                                       {**TXN, "name": "outer", "steps": ["tx"]}]),
     ("outer", "'tx'")),
    ("transaction-with-table", _add_op(**TXN, steps=["ins_a"], table="accounts"),
     ("tx", "'table'")),
    ("ref-to-unknown-table", _col_set("account_id", gen={"kind": "ref", "table": "ghosts"}),
     ("account_id", "'ghosts'")),
    ("ref-to-table-declared-later", _swap_tables, ("account_id", "'accounts'", "before")),
    ("ref-type-differs-from-parent-key", _col_set("account_id", type="INT"),
     ("account_id", "BIGINT", "INT")),
    ("delete-of-referenced-table", _add_op(name="del_a", kind="delete", table="accounts"),
     ("del_a", "payments.account_id", "ON DELETE", "unreferenced")),
    ("parent-on-an-update", _op_set("upd_p", parent="latest"), ("upd_p", "parent")),
    ("parent-unknown-pick", _op_set("ins_p", parent="oldest"), ("ins_p", "'oldest'")),
    ("no-operation-with-weight", _all_weights_zero, ("operations", "weight > 0")),
    ("weight-negative", _op_set("ins_a", weight=-1), ("ins_a", "weight", "-1")),
    ("rows-zero", _op_set("ins_a", rows=0), ("ins_a", "rows")),
    ("seed-rows-negative", _set(_acc, seed_rows=-5), ("accounts", "seed_rows", "-5")),
    ("ddl-every-zero", _ddl("ALTER TABLE payments ADD COLUMN x INT", every_s=0),
     ("ddl.every_s",)),
    ("ddl-not-alter-table", _ddl("DROP TABLE x"), ("ddl.statements[0]", "DROP TABLE x")),
    ("ddl-on-table-not-written", _ddl("ALTER TABLE customers ADD COLUMN x INT"),
     ("ddl.statements[0]", "customers")),
    ("ddl-drop-written-column", _ddl("ALTER TABLE payments DROP COLUMN amount"),
     ("ddl.statements[0]", "payments.amount")),
    ("ddl-modify-written-column", _ddl("ALTER TABLE payments MODIFY COLUMN amount BIGINT"),
     ("ddl.statements[0]", "payments.amount")),
    ("ddl-add-without-type",
     _ddl("ALTER TABLE payments ADD COLUMN x INT", "ALTER TABLE payments ADD COLUMN extra"),
     ("ddl.statements[1]", "needs a column type")),
    ("ddl-add-unknown-type", _ddl("ALTER TABLE payments ADD COLUMN x MONEY NULL"),
     ("ddl.statements[0]", "MONEY")),
    ("ddl-add-not-null-without-default", _ddl("ALTER TABLE payments ADD COLUMN x INT NOT NULL"),
     ("ddl.statements[0]", "NOT NULL", "DEFAULT")),
    ("ddl-both-period-and-times",
     lambda d: d.update(ddl={"every_s": 5, "at_s": [1],
                             "statements": ["ALTER TABLE payments ADD COLUMN x INT"]}),
     ("ddl", "exactly one of every_s")),
    ("referenced-table-without-seed-rows", _set(_acc, seed_rows=0),
     ("accounts", "seed_rows", "payments.account_id")),
]  # fmt: skip


def test_the_base_spec_is_valid() -> None:
    s = spec.parse("t", _base())
    assert [t.name for t in s.tables] == ["accounts", "payments"]
    assert [o.name for o in s.operations] == ["ins_a", "ins_p", "upd_p", "del_p"]
    assert s.referenced_tables == {"accounts"}
    assert not s.native


@pytest.mark.parametrize(("mutate", "fragments"), [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])  # fmt: skip
def test_refusal(mutate: Callable[..., None], fragments: tuple[str, ...]) -> None:
    doc = _base()
    mutate(doc)
    with pytest.raises(SpecError) as info:
        spec.parse("t", doc)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("workload 't'")
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_built_in_spec_parses(name: str) -> None:
    s = settings.load_workload(name)
    assert s.name == name
    if s.native:
        assert s.tables == () and s.operations == ()
    else:
        assert s.tables and sum(o.weight for o in s.operations) > 0
    assert name in data.names("workloads")


def test_the_built_ins_are_all_listed() -> None:
    assert set(data.names("workloads")) == set(BUILT_INS)


def test_inventory_is_native_without_tables() -> None:
    s = settings.load_workload("inventory")
    assert s.native and s.builder == "inventory" and s.base == "inventory"
    assert s.tables == () and s.operations == () and s.ddl is None
    assert s.load_tables == ("customers", "orders")


def test_payments_transaction_counts_its_steps_rows() -> None:
    s = settings.load_workload("payments")
    tx = s.operation("open_account")
    assert tx.steps == ("insert_account", "insert_first_payment") and tx.rows == 2
    assert s.operation("insert_first_payment").parent == "latest"


def test_ddl_schedule_is_due_from_start_every_period_cycling_with_n() -> None:
    d = DdlSchedule(5, 10, ("ADD c{n}", "MODIFY c{n}", "DROP c{n}"))
    assert d.due(40) == [(5, "ADD c1"), (15, "MODIFY c1"), (25, "DROP c1"), (35, "ADD c2")]
    assert d.due(35) == [(5, "ADD c1"), (15, "MODIFY c1"), (25, "DROP c1")]
    assert d.due(5) == []
    assert DdlSchedule(0, 2, ("x{n}",)).due(5) == [(0, "x1"), (2, "x2"), (4, "x3")]


def test_built_in_ddl_schedule_is_parsed() -> None:
    d = settings.load_workload("ddl").ddl
    assert d is not None and (d.start_s, d.every_s, len(d.statements)) == (5, 10, 3)
    assert d.due(16)[1][1] == "ALTER TABLE customers MODIFY COLUMN ddl_{run}_1 VARCHAR(32) NULL"


def test_create_table_sql_puts_the_key_first_then_version_then_a_foreign_key() -> None:
    s = spec.parse("t", _base())
    sql = create_table_sql(s.table("payments"), s)
    lines = sql.splitlines()
    assert lines[0] == "CREATE TABLE IF NOT EXISTS payments ("
    assert lines[1] == "  payment_id BIGINT NOT NULL PRIMARY KEY,"
    assert lines[2] == "  v BIGINT NOT NULL,"
    assert lines[3] == "  account_id BIGINT NOT NULL,"
    assert lines[4] == "  amount INT NOT NULL,"
    assert lines[5] == "  FOREIGN KEY (account_id) REFERENCES accounts(account_id)"
    assert lines[-1] == ") ENGINE=InnoDB"
    assert "FOREIGN KEY" not in create_table_sql(s.table("accounts"), s)


def test_create_table_sql_marks_nullable_and_unique_columns() -> None:
    doc = _base()
    _add_col(0, name="email", type="varchar( 40 )", gen="text", nullable=True, unique=True)(doc)
    s = spec.parse("t", doc)
    assert "  email VARCHAR(40) NULL UNIQUE" in create_table_sql(s.table("accounts"), s)


def test_load_workload_of_an_unknown_name_lists_the_built_ins() -> None:
    with pytest.raises(settings.SettingsError) as info:
        settings.load_workload("nonesuch")
    msg = str(info.value)
    assert "\n" not in msg and "'nonesuch'" in msg
    for name in BUILT_INS:
        assert name in msg


def test_load_workload_of_a_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nbogus = 1\n', encoding="utf-8")
    with pytest.raises(settings.SettingsError) as info:
        settings.load_workload(str(path))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "bogus" in msg


def test_load_workload_of_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[[tables]]\nname = "t"\ncolumns = [{ name = "n", type = "INT", gen = "int" }]\n'
        '[[operations]]\nname = "i"\nkind = "insert"\ntable = "t"\n',
        encoding="utf-8",
    )
    s = settings.load_workload(str(path))
    assert s.name == "mine" and s.table("t").key == "id" and s.mix == (("i", 1),)


def test_ddl_add_of_a_column_the_workload_writes_is_refused() -> None:
    doc = _base()
    _ddl("ALTER TABLE payments ADD COLUMN amount INT")(doc)
    with pytest.raises(SpecError, match=r"payments\.amount"):
        spec.parse("t", doc)


def test_ddl_drop_without_a_column_name_is_refused() -> None:
    doc = _base()
    _ddl("ALTER TABLE payments DROP COLUMN")(doc)
    with pytest.raises(SpecError, match=r"ddl\.statements\[0\]"):
        spec.parse("t", doc)


def test_ddl_at_given_times_cycles_through_the_statements() -> None:
    doc = {
        "builder": "inventory",
        "ddl": {
            "at_s": [3, 1.5, 9],
            "statements": [
                "ALTER TABLE customers ADD COLUMN c{n} INT NULL",
                "ALTER TABLE customers DROP COLUMN c{n}",
            ],
        },
    }
    ddl = spec.parse("x", doc).ddl
    assert ddl is not None
    assert ddl.due(10) == [
        (1.5, "ALTER TABLE customers ADD COLUMN c1 INT NULL"),
        (3.0, "ALTER TABLE customers DROP COLUMN c1"),
        (9.0, "ALTER TABLE customers ADD COLUMN c2 INT NULL"),
    ]
    assert [at for at, _ in ddl.due(8)] == [1.5, 3.0]


@pytest.mark.parametrize(
    "ddl",
    [
        {"statements": ["ALTER TABLE customers ADD COLUMN c INT NULL"]},
        {"every_s": 5, "at_s": [1], "statements": ["ALTER TABLE customers ADD COLUMN c INT NULL"]},
        {"at_s": [], "statements": ["ALTER TABLE customers ADD COLUMN c INT NULL"]},
        {"at_s": [-1], "statements": ["ALTER TABLE customers ADD COLUMN c INT NULL"]},
    ],
    ids=["neither", "both", "empty-times", "negative-time"],
)
def test_ddl_needs_one_of_a_period_or_times(ddl: dict) -> None:
    with pytest.raises(spec.SpecError) as err:
        spec.parse("x", {"builder": "inventory", "ddl": ddl})
    assert "\n" not in str(err.value) and "ddl" in str(err.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("key", "customer_id"), ("version", "nickname")],
    ids=["key-not-the-tutorials", "column-the-tutorial-lacks"],
)
def test_an_inventory_base_table_is_the_tutorials_as_it_is(field: str, value: str) -> None:
    doc = {
        "base": "inventory",
        "tables": [
            {
                "name": "customers",
                "key": "id",
                "key_type": "INT",
                "version": "email",
                "version_type": "VARCHAR(255)",
                "columns": [],
            }
        ],
        "operations": [{"name": "i", "kind": "insert", "table": "customers"}],
    }
    doc["tables"][0][field] = value
    with pytest.raises(spec.SpecError, match=f"'{value}'.*the inventory's customers"):
        spec.parse("x", doc)

"""Workload specs: a workload is data (TOML), checked here before anything starts. Pure.

``parse(name, table)`` turns a spec's TOML table into a frozen ``WorkloadSpec`` or raises
``SpecError`` with one line naming the table and field and what is allowed. The format,
line by line, is in docs/workloads.md; the built-in specs are in
``loadengine/data/workloads``.

Two builders run a spec:
- ``builder = "inventory"``: the engine's own statements for Debezium's tutorial schema
  (``core.workload``), unchanged and as fast as ever. The ``inventory`` and ``ddl`` specs
  use it; a spec with this builder has no tables or operations, only (optionally) a DDL
  schedule.
- ``builder = "spec"`` (the default): statements generated from the spec's tables,
  columns and operations (``core.generic``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

BUILDERS = ("spec", "inventory")
BASES = ("", "inventory")
INVENTORY_TABLES = ("products", "products_on_hand", "customers", "addresses", "orders")
OP_KINDS = ("insert", "update", "delete", "transaction")
KEY_DISTS = ("uniform", "zipfian", "hotset", "latest")
REF_PICKS = ("uniform", "latest")
GENERATORS = ("int", "decimal", "float", "choice", "text", "json", "datetime", "date", "ref")
MAX_SEED_ROWS = 1_000_000
MAX_ROWS_PER_OP = 10_000
MAX_VALUE_BYTES = 16 << 20  # one generated value: 16 MiB
MAX_STATEMENTS_PER_TXN = 64  # a transaction's statements: its stamps are batch * 64 + i
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

INT_RANGES = {
    "TINYINT": (-(2**7), 2**7 - 1),
    "SMALLINT": (-(2**15), 2**15 - 1),
    "MEDIUMINT": (-(2**23), 2**23 - 1),
    "INT": (-(2**31), 2**31 - 1),
    "INTEGER": (-(2**31), 2**31 - 1),
    "BIGINT": (-(2**63), 2**63 - 1),
}
TEXT_BYTES = {
    "TINYTEXT": 255, "TEXT": 65_535, "MEDIUMTEXT": 16_777_215, "LONGTEXT": 4_294_967_295,
    "TINYBLOB": 255, "BLOB": 65_535, "MEDIUMBLOB": 16_777_215, "LONGBLOB": 4_294_967_295,
}  # fmt: skip
TYPE_FORMS = (
    "TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT [UNSIGNED], DECIMAL(p,s), FLOAT, DOUBLE, "
    "CHAR(n), VARCHAR(n), TINYTEXT|TEXT|MEDIUMTEXT|LONGTEXT, TINYBLOB|BLOB|MEDIUMBLOB|LONGBLOB, "
    "JSON, DATE, DATETIME, DATETIME(0..6), ENUM('a',...)"
)
_INT = re.compile(r"^(TINYINT|SMALLINT|MEDIUMINT|INT|INTEGER|BIGINT)( UNSIGNED)?$")
_DECIMAL = re.compile(r"^DECIMAL\((\d{1,2}),(\d{1,2})\)$")
_CHAR = re.compile(r"^(CHAR|VARCHAR)\((\d{1,5})\)$")
_DATETIME = re.compile(r"^DATETIME(?:\(([0-6])\))?$")
_ENUM = re.compile(r"^ENUM\(('(?:[^'\\]|'')*'(?:,'(?:[^'\\]|'')*')*)\)$")
DDL_FORMS = (
    "ALTER TABLE <table> ADD [COLUMN] <name> <type> | DROP [COLUMN] <name> | "
    "MODIFY [COLUMN] <name> <type>"
)
_DDL = re.compile(
    r"^ALTER TABLE `?([A-Za-z_][A-Za-z0-9_]*)`? (ADD|DROP|MODIFY)(?: COLUMN)? "
    r"`?([A-Za-z_{}][A-Za-z0-9_{}]*)`?(?: (.+))?$",
    re.I,
)


class SpecError(ValueError):
    """One line: where in the spec (table and field), the value, and what is allowed."""


@dataclass(frozen=True, slots=True)
class SqlType:
    """A column's SQL type, as declared, and what values fit it."""

    text: str  # normalised: upper case, no spaces inside parentheses
    family: str  # int, decimal, float, char, text, json, date, datetime, enum
    low: int = 0  # int: range; decimal: digits before / after the point in (low, high)
    high: int = 0
    max_bytes: int = 0  # char/text: the most bytes (characters for CHAR/VARCHAR) it holds
    choices: tuple[str, ...] = ()  # enum


@dataclass(frozen=True, slots=True)
class Size:
    """Bytes of a variable-width value: ``fixed``, ``uniform`` between two sizes, or
    ``weighted`` sizes (each picked with its weight)."""

    kind: str
    points: tuple[tuple[int, float], ...]  # fixed: ((n, 1),); uniform: ((lo, 1), (hi, 1))

    @property
    def max_bytes(self) -> int:
        return max(n for n, _ in self.points)

    @property
    def mean_bytes(self) -> float:
        if self.kind == "uniform":
            return (self.points[0][0] + self.points[1][0]) / 2
        total = sum(w for _, w in self.points)
        return sum(n * w for n, w in self.points) / total


@dataclass(frozen=True, slots=True)
class Generator:
    """How a column's values are made (docs/workloads.md lists each kind)."""

    kind: str
    low: float = 0
    high: float = 0
    scale: int = 0  # decimal: digits after the point
    choices: tuple[str, ...] = ()
    size: Size | None = None  # text, json
    ref: str = ""  # ref: the table whose key this column holds
    pick: str = "uniform"  # ref: which parent row: uniform among live ones, or the newest


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: SqlType
    gen: Generator
    nullable: bool = False
    unique: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    key: str  # the engine-owned integer primary key
    key_type: SqlType
    version: str  # engine-owned column stamped on every update ("" if never updated)
    version_type: SqlType | None
    columns: tuple[Column, ...]  # written by inserts, in this order (key and version apart)
    seed_rows: int | None  # per shard before the load; None: the engine's rule
    first_key: int  # keys start above this and above every existing row
    create: bool  # False: the table comes from the base schema (inventory)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True, slots=True)
class KeyChoice:
    """Which existing rows an update or delete picks (among the shard's live keys)."""

    dist: str = "uniform"
    s: float = 0.99  # zipfian, latest: the exponent
    hot_keys: float = 0.0  # hotset: this fraction of the keys (the oldest) ...
    hot_ops: float = 0.0  # ... gets this fraction of the picks


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    kind: str  # insert, update, delete, transaction
    table: str  # "" for a transaction
    weight: int
    rows: int  # row changes of one pick (a transaction: the sum of its steps)
    set_columns: tuple[str, ...] = ()  # update: columns given new values (version apart)
    keys: KeyChoice = KeyChoice()
    unreferenced: bool = False  # delete: only rows no other table's row references
    steps: tuple[str, ...] = ()  # transaction: operations, in order, in one commit
    parent: str = ""  # insert: overrides its reference columns' ``pick`` ("latest": the
    # newest parent row, such as the customer inserted by the step before, in one commit)


@dataclass(frozen=True, slots=True)
class DdlSchedule:
    """Statements run during the load, one every ``every_s`` from ``start_s`` (seconds
    after the common start, warmup included), or one at each of ``at_s``, cycling
    through them; ``{n}`` is the cycle (1, 2, ...)
    and ``{run}`` the run id, so columns added by one run never clash with another's."""

    start_s: float
    every_s: float
    statements: tuple[str, ...]
    at_s: tuple[float, ...] = ()  # given times instead of a period (``every_s`` then 0)

    def due(self, total_s: float) -> list[tuple[float, str]]:
        """(seconds after start, SQL) of every statement due before ``total_s``."""
        out: list[tuple[float, str]] = []
        times = iter(self.at_s) if self.at_s else None
        at, i = (next(times, total_s) if times else self.start_s), 0
        while at < total_s:
            n, which = divmod(i, len(self.statements))
            out.append((at, self.statements[which].replace("{n}", str(n + 1))))
            at = next(times, total_s) if times else at + self.every_s
            i += 1
        return out


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    name: str
    description: str
    builder: str
    base: str
    tables: tuple[Table, ...] = ()
    operations: tuple[Operation, ...] = ()
    ddl: DdlSchedule | None = None

    @property
    def native(self) -> bool:
        return self.builder == "inventory"

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def operation(self, name: str) -> Operation:
        return next(o for o in self.operations if o.name == name)

    @property
    def load_tables(self) -> tuple[str, ...]:
        """Tables the load writes (ledger and audit)."""
        if self.native:
            return ("customers", "orders")
        return tuple(t.name for t in self.tables)

    @property
    def referenced_tables(self) -> frozenset[str]:
        """Tables whose rows other tables' rows reference (foreign keys)."""
        return frozenset(c.gen.ref for t in self.tables for c in t.columns if c.gen.kind == "ref")

    @property
    def mix(self) -> tuple[tuple[str, int], ...]:
        return tuple((o.name, o.weight) for o in self.operations)

    def max_row_bytes(self, table: str) -> int:
        """The most bytes one row's values can take as SQL text."""
        t = self.table(table)
        return 64 + sum(24 + _value_bytes(c) for c in t.columns)

    def max_change_bytes(self) -> int:
        """The most SQL text one row change can send (an insert's row, at worst)."""
        rows = [self.max_row_bytes(t.name) for t in self.tables]
        return max(rows, default=96)

    def max_transaction_bytes(self, batch_size: int) -> int:
        """The most bytes one transaction of ``batch_size`` changes can send: a pick of
        several rows can take a batch past its size, and each statement has a head."""
        most = max((o.rows for o in self.operations), default=1)
        return MAX_STATEMENTS_PER_TXN * 64 + (batch_size + most) * self.max_change_bytes()


def generated(spec: WorkloadSpec | None) -> WorkloadSpec | None:
    """The spec whose tables and statements the engine generates; None for the inventory's
    own builder (``inventory``, ``ddl``), which needs neither."""
    return None if spec is None or spec.native else spec


def _value_bytes(c: Column) -> int:
    g = c.gen
    if g.size is not None:
        return g.size.max_bytes + (64 if g.kind == "json" else 2)
    if g.kind == "choice":
        return max(len(x.encode()) for x in g.choices) * 2 + 2
    return 32


def create_table_sql(t: Table, spec: WorkloadSpec) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a spec table: the key first (consumers and the
    binary-log audit read a row's first column as its key), then the version column,
    then the columns in order, and a foreign key per reference column."""
    lines = [f"  {t.key} {t.key_type.text} NOT NULL PRIMARY KEY"]
    if t.version and t.version_type is not None:
        lines.append(f"  {t.version} {t.version_type.text} NOT NULL")
    for c in t.columns:
        null = "NULL" if c.nullable else "NOT NULL"
        lines.append(f"  {c.name} {c.type.text} {null}" + (" UNIQUE" if c.unique else ""))
    for c in t.columns:
        if c.gen.kind == "ref":
            parent = spec.table(c.gen.ref)
            lines.append(f"  FOREIGN KEY ({c.name}) REFERENCES {parent.name}({parent.key})")
    return f"CREATE TABLE IF NOT EXISTS {t.name} (\n" + ",\n".join(lines) + "\n) ENGINE=InnoDB"


# -- parsing ---------------------------------------------------------------------------


def _fail(where: str, what: str) -> SpecError:
    return SpecError(f"{where}: {what}")


def _only(where: str, table: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(where, "must be a table of keys")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise _fail(where, f"unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
    return table


def _ident(where: str, value: Any) -> str:
    if not isinstance(value, str) or not IDENT.match(value):
        raise _fail(where, f"{value!r} is not a name (letters, digits, _; at most 64)")
    return value


def _int_in(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"{value!r}: must be an integer from {low:,} to {high:,}")
    return value


def _num(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, f"{value!r}: must be a number")
    return float(value)


def parse_type(where: str, text: Any) -> SqlType:  # noqa: C901, PLR0911, PLR0912 - one check per case
    """A column's SQL type, or a refusal naming the allowed forms."""
    if not isinstance(text, str):
        raise _fail(where, f"{text!r}: must be a SQL type ({TYPE_FORMS})")
    norm = re.sub(r"\s*([(),])\s*", r"\1", " ".join(text.split())).upper()
    if m := _INT.match(norm):
        low, high = INT_RANGES[m.group(1)]
        if m.group(2):
            low, high = 0, 2 * high + 1
        return SqlType(norm, "int", low, high)
    if m := _DECIMAL.match(norm):
        p, s = int(m.group(1)), int(m.group(2))
        if not 1 <= p <= 65 or s > p or s > 30:
            raise _fail(where, f"{text!r}: DECIMAL(p,s) needs 1 <= p <= 65 and s <= min(p, 30)")
        return SqlType(norm, "decimal", p - s, s)
    if norm in ("FLOAT", "DOUBLE"):
        return SqlType(norm, "float")
    if m := _CHAR.match(norm):
        n = int(m.group(2))
        if not 1 <= n <= (255 if m.group(1) == "CHAR" else 16_383):
            raise _fail(where, f"{text!r}: length out of range for {m.group(1)}")
        return SqlType(norm, "char", max_bytes=n)
    if norm in TEXT_BYTES:
        return SqlType(norm, "text", max_bytes=TEXT_BYTES[norm])
    if norm == "JSON":
        return SqlType(norm, "json", max_bytes=TEXT_BYTES["LONGTEXT"])
    if norm == "DATE":
        return SqlType(norm, "date")
    if m := _DATETIME.match(norm):
        return SqlType(norm, "datetime", high=int(m.group(1) or 0))
    if m := _ENUM.match(" ".join(text.split())):
        values = tuple(v.replace("''", "'") for v in re.findall(r"'((?:[^'\\]|'')*)'", m.group(1)))
        return SqlType("ENUM(" + m.group(1) + ")", "enum", choices=values)
    raise _fail(where, f"unknown type {text!r}; allowed: {TYPE_FORMS}")


def _size(where: str, raw: Any) -> Size:
    raw = _only(where, raw, ("fixed", "uniform", "weighted"))
    if len(raw) != 1:
        raise _fail(where, "give exactly one of fixed, uniform, weighted")
    kind, value = next(iter(raw.items()))
    top = MAX_VALUE_BYTES
    if kind == "fixed":
        return Size(kind, ((_int_in(f"{where}.fixed", value, 1, top), 1.0),))
    if kind == "uniform":
        if not isinstance(value, list) or len(value) != 2:
            raise _fail(f"{where}.uniform", f"{value!r}: must be [min_bytes, max_bytes]")
        lo = _int_in(f"{where}.uniform[0]", value[0], 1, top)
        hi = _int_in(f"{where}.uniform[1]", value[1], lo, top)
        return Size(kind, ((lo, 1.0), (hi, 1.0)))
    if not isinstance(value, list) or not value:
        raise _fail(f"{where}.weighted", f"{value!r}: must be [[bytes, weight], ...]")
    points = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _fail(f"{where}.weighted[{i}]", f"{pair!r}: must be [bytes, weight]")
        n = _int_in(f"{where}.weighted[{i}] bytes", pair[0], 1, top)
        w = _num(f"{where}.weighted[{i}] weight", pair[1])
        if w <= 0:
            raise _fail(f"{where}.weighted[{i}] weight", f"{w!r}: must be > 0")
        points.append((n, w))
    return Size(kind, tuple(points))


GEN_KEYS = {
    "int": ("kind", "min", "max"),
    "decimal": ("kind", "min", "max"),
    "float": ("kind", "min", "max"),
    "choice": ("kind", "values"),
    "text": ("kind", "size"),
    "json": ("kind", "size"),
    "datetime": ("kind",),
    "date": ("kind",),
    "ref": ("kind", "table", "pick"),
}
FITS = {  # generator -> column families it can fill
    "int": ("int", "decimal", "float"),
    "decimal": ("decimal", "float"),
    "float": ("float",),
    "choice": ("char", "text", "enum"),
    "text": ("char", "text"),
    "json": ("json", "text"),
    "datetime": ("datetime",),
    "date": ("date",),
    "ref": ("int",),
}


def _generator(where: str, raw: Any, col_type: SqlType) -> Generator:  # noqa: C901, PLR0912 - one check per case
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict) or raw.get("kind") not in GENERATORS:
        kind = raw.get("kind") if isinstance(raw, dict) else raw
        raise _fail(where, f"unknown generator {kind!r}; allowed: {', '.join(GENERATORS)}")
    kind = raw["kind"]
    raw = _only(where, raw, GEN_KEYS[kind])
    if col_type.family not in FITS[kind]:
        raise _fail(where, f"generator {kind!r} does not fit a {col_type.text} column")
    if kind in ("int", "decimal", "float"):
        return _numeric(where, kind, raw, col_type)
    if kind == "choice":
        values = raw.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            raise _fail(f"{where}.values", f"{values!r}: must be a non-empty list of strings")
        if col_type.family == "enum":
            bad = [v for v in values if v not in col_type.choices]
            if bad:
                raise _fail(f"{where}.values", f"{bad[0]!r} is not one of {col_type.text}")
        elif max(len(v) for v in values) > col_type.max_bytes:
            raise _fail(f"{where}.values", f"a value is longer than {col_type.text} holds")
        return Generator(kind, choices=tuple(values))
    if kind in ("text", "json"):
        size = _size(f"{where}.size", raw.get("size", {"fixed": 16}))
        room = col_type.max_bytes - (64 if kind == "json" else 0)
        if size.max_bytes > room:
            raise _fail(
                f"{where}.size",
                f"up to {size.max_bytes:,} bytes does not fit {col_type.text} (at most {room:,})",
            )
        return Generator(kind, size=size)
    if kind == "ref":
        pick = raw.get("pick", "uniform")
        if pick not in REF_PICKS:
            raise _fail(f"{where}.pick", f"{pick!r}; allowed: {', '.join(REF_PICKS)}")
        return Generator(kind, ref=_ident(f"{where}.table", raw.get("table")), pick=pick)
    return Generator(kind)


def _numeric(where: str, kind: str, raw: dict[str, Any], t: SqlType) -> Generator:
    low = _num(f"{where}.min", raw.get("min", 0))
    high = _num(f"{where}.max", raw.get("max", 1000))
    if low > high:
        raise _fail(where, f"min {low:g} is above max {high:g}")
    if t.family == "int" and (low < t.low or high > t.high):
        raise _fail(where, f"{low:g}..{high:g} does not fit {t.text} ({t.low:,}..{t.high:,})")
    if t.family == "decimal" and round(max(abs(low), abs(high)), t.high) >= 10**t.low:
        raise _fail(where, f"{low:g}..{high:g} does not fit {t.text}")
    return Generator(kind, low, high, t.high if t.family == "decimal" else 0)


def _column(where: str, raw: Any) -> Column:
    raw = _only(where, raw, ("name", "type", "gen", "nullable", "unique"))
    name = _ident(f"{where}.name", raw.get("name"))
    where = f"{where} ({name})"
    col_type = parse_type(f"{where}.type", raw.get("type"))
    if "gen" not in raw:
        raise _fail(f"{where}.gen", "missing: every column the workload writes needs a generator")
    gen = _generator(f"{where}.gen", raw["gen"], col_type)
    return Column(name, col_type, gen, bool(raw.get("nullable", False)), bool(raw.get("unique")))


def _key_choice(where: str, raw: Any) -> KeyChoice:
    if isinstance(raw, str):
        raw = {"dist": raw}
    raw = _only(where, raw, ("dist", "s", "hot_keys", "hot_ops"))
    dist = raw.get("dist", "uniform")
    if dist not in KEY_DISTS:
        raise _fail(f"{where}.dist", f"{dist!r}; allowed: {', '.join(KEY_DISTS)}")
    s = _num(f"{where}.s", raw.get("s", 0.99))
    if dist in ("zipfian", "latest") and not 0 < s <= 5:
        raise _fail(f"{where}.s", f"{s:g}: must be > 0 and <= 5")
    hot_keys = _num(f"{where}.hot_keys", raw.get("hot_keys", 0.01))
    hot_ops = _num(f"{where}.hot_ops", raw.get("hot_ops", 0.9))
    if dist == "hotset" and not (0 < hot_keys <= 1 and 0 <= hot_ops <= 1):
        raise _fail(where, "hotset needs 0 < hot_keys <= 1 and 0 <= hot_ops <= 1")
    return KeyChoice(dist, s, hot_keys, hot_ops)


def _table(where: str, raw: Any, base: str) -> Table:
    allowed = ("name", "key", "key_type", "version", "version_type", "columns", "seed_rows",
               "first_key")  # fmt: skip
    raw = _only(where, raw, allowed)
    name = _ident(f"{where}.name", raw.get("name"))
    where = f"tables ({name})"
    from_base = base == "inventory" and name in INVENTORY_TABLES
    if base == "inventory" and name in INVENTORY_TABLES and name not in ("customers", "orders"):
        raise _fail(where, "the inventory base's load tables are customers and orders")
    key = _ident(f"{where}.key", raw.get("key", "id"))
    key_type = parse_type(f"{where}.key_type", raw.get("key_type", "BIGINT"))
    if key_type.family != "int":
        raise _fail(f"{where}.key_type", f"{key_type.text}: the key must be an integer type")
    version = raw.get("version", "")
    version_type = None
    if version:
        version = _ident(f"{where}.version", version)
        version_type = parse_type(f"{where}.version_type", raw.get("version_type", "BIGINT"))
        _check_version_type(f"{where}.version_type", version_type)
    cols_raw = raw.get("columns", [])
    if not isinstance(cols_raw, list):
        raise _fail(f"{where}.columns", "must be a list of tables ([[tables.columns]])")
    columns = tuple(_column(f"{where}.columns[{i}]", c) for i, c in enumerate(cols_raw))
    names = [key, *([version] if version else []), *(c.name for c in columns)]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise _fail(where, f"column {dup!r} declared twice (key and version are columns too)")
    if from_base:  # the tutorial's table as it is: its key, and columns it has
        have = INVENTORY_WRITTEN[name]
        wrong = next((c for c in names if c not in have), None)
        if key != INVENTORY_KEYS[name] or wrong:
            listed = ", ".join(sorted(have))
            raise _fail(where, f"{wrong or key!r}: the inventory's {name} has key "
                        f"{INVENTORY_KEYS[name]} and columns {listed}")  # fmt: skip
    seed = raw.get("seed_rows")
    if seed is not None:
        seed = _int_in(f"{where}.seed_rows", seed, 0, MAX_SEED_ROWS)
    first_key = _int_in(f"{where}.first_key", raw.get("first_key", 1), 1, key_type.high)
    return Table(name, key, key_type, version, version_type, columns, seed, first_key,
                 not from_base)  # fmt: skip


def _check_version_type(where: str, t: SqlType) -> None:
    if t.family not in ("int", "char"):
        raise _fail(where, f"{t.text}: the version column must be an integer or CHAR/VARCHAR")
    if t.family == "int" and t.high < 2**31 - 1:
        raise _fail(where, f"{t.text} is too small for a version stamp (INT or wider)")
    if t.family == "char" and t.max_bytes < 40:
        raise _fail(where, f"{t.text} is too short for a version stamp (at least 40)")


def _operation(where: str, raw: Any, tables: dict[str, Table]) -> Operation:  # noqa: C901 - one check per case
    allowed = ("name", "kind", "table", "weight", "rows", "set", "keys", "unreferenced", "steps",
               "parent")  # fmt: skip
    raw = _only(where, raw, allowed)
    name = _ident(f"{where}.name", raw.get("name"))
    where = f"operations ({name})"
    kind = raw.get("kind")
    if kind not in OP_KINDS:
        raise _fail(f"{where}.kind", f"{kind!r}; allowed: {', '.join(OP_KINDS)}")
    weight = _int_in(f"{where}.weight", raw.get("weight", 1), 0, 1_000_000)
    rows = _int_in(f"{where}.rows", raw.get("rows", 1), 1, MAX_ROWS_PER_OP)
    if kind == "transaction":
        steps = raw.get("steps")
        if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
            raise _fail(f"{where}.steps", f"{steps!r}: must be a list of operation names")
        extra = sorted(set(raw) - {"name", "kind", "weight", "steps"})
        if extra:
            raise _fail(where, f"{extra[0]!r} does not apply to a transaction (its steps say it)")
        return Operation(name, kind, "", weight, 0, steps=tuple(steps))
    table_name = raw.get("table")
    if table_name not in tables:
        raise _fail(f"{where}.table", f"{table_name!r}: not a table of this spec "
                    f"(tables: {', '.join(tables) or 'none'})")  # fmt: skip
    t = tables[table_name]
    set_cols: tuple[str, ...] = ()
    keys = KeyChoice()
    if kind in ("update", "delete"):
        keys = _key_choice(f"{where}.keys", raw.get("keys", "uniform"))
    elif "keys" in raw:
        raise _fail(f"{where}.keys", "only updates and deletes pick existing keys")
    if kind == "update":
        set_cols = _set_columns(where, raw.get("set", []), t)
    elif "set" in raw:
        raise _fail(f"{where}.set", "only an update sets columns")
    unreferenced = raw.get("unreferenced", False)
    if not isinstance(unreferenced, bool) or (unreferenced and kind != "delete"):
        raise _fail(f"{where}.unreferenced", "true or false, and only for a delete")
    parent = raw.get("parent", "")
    if parent and (kind != "insert" or parent not in REF_PICKS):
        raise _fail(f"{where}.parent", f"{parent!r}: only for an insert; allowed: "
                    f"{', '.join(REF_PICKS)}")  # fmt: skip
    return Operation(name, kind, table_name, weight, rows, set_cols, keys, unreferenced,
                     parent=parent)  # fmt: skip


def _set_columns(where: str, raw: Any, t: Table) -> tuple[str, ...]:
    if not t.version:
        raise _fail(
            f"{where}.table",
            f"{t.name} has no version column: an update stamps one (tables.version), so that "
            "every update changes its row and an in-doubt commit can be looked up",
        )
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise _fail(f"{where}.set", f"{raw!r}: must be a list of column names")
    for c in raw:
        col = t.column(c)
        if col is None:
            raise _fail(f"{where}.set", f"{c!r}: not a generated column of {t.name} "
                        "(the key and the version column are the engine's)")  # fmt: skip
        if col.gen.kind == "ref" or col.unique:
            raise _fail(f"{where}.set", f"{c!r}: a reference or unique column is not updated")
    return tuple(raw)


def _ddl(where: str, raw: Any, tables: dict[str, Table], base: str) -> DdlSchedule:
    raw = _only(where, raw, ("start_s", "every_s", "at_s", "statements"))
    at_s: tuple[float, ...] = ()
    if ("at_s" in raw) == ("every_s" in raw):
        raise _fail(where, "give exactly one of every_s (a period) and at_s (a list of times)")
    if "at_s" in raw:
        times = raw["at_s"]
        if not isinstance(times, list) or not times:
            raise _fail(f"{where}.at_s", f"{times!r}: must be a non-empty list of seconds")
        at_s = tuple(sorted(_num(f"{where}.at_s", t) for t in times))
        if at_s[0] < 0 or at_s[-1] > 604_800:
            raise _fail(f"{where}.at_s", "times must be from 0 to 604,800 seconds")
        if "start_s" in raw:
            raise _fail(f"{where}.start_s", "only with every_s")
    every = _num(f"{where}.every_s", raw.get("every_s", 1))
    if not 1 <= every <= 86_400:
        raise _fail(f"{where}.every_s", f"{every:g}: must be from 1 to 86,400 seconds")
    start = _num(f"{where}.start_s", raw.get("start_s", every))
    if not 0 <= start <= 86_400:
        raise _fail(f"{where}.start_s", f"{start:g}: must be from 0 to 86,400 seconds")
    stmts = raw.get("statements")
    if not isinstance(stmts, list) or not stmts or not all(isinstance(s, str) for s in stmts):
        raise _fail(f"{where}.statements", "must be a non-empty list of SQL strings")
    writable = set(tables) | ({"customers", "orders"} if base == "inventory" else set())
    for i, sql in enumerate(stmts):
        _check_ddl(f"{where}.statements[{i}]", sql, tables, writable)
    return DdlSchedule(start, 0 if at_s else every, tuple(stmts), at_s)


INVENTORY_KEYS = {"customers": "id", "orders": "order_number"}
INVENTORY_WRITTEN = {
    "customers": {"id", "first_name", "last_name", "email"},
    "orders": {"order_number", "order_date", "purchaser", "quantity", "product_id"},
}


def _check_ddl(where: str, sql: str, tables: dict[str, Table], writable: set[str]) -> None:
    m = _DDL.match(" ".join(sql.replace("{run}", "r").split()))
    if not m:
        raise _fail(where, f"{sql!r}: allowed forms: {DDL_FORMS}")
    table, action, column, rest = m.group(1), m.group(2).upper(), m.group(3), m.group(4)
    if column.upper() == "COLUMN":
        raise _fail(where, f"{sql!r}: {action} needs a column name")
    if table not in writable:
        raise _fail(where, f"{sql!r}: {table} is not a table this workload writes")
    if action != "DROP":
        if not rest:
            raise _fail(where, f"{sql!r}: {action} needs a column type")
        parse_type(where, re.sub(r"\s+(NOT\s+)?NULL.*$|\s+DEFAULT\s.*$", "", rest, flags=re.I))
        if re.search(r"\bNOT\s+NULL\b", rest, re.I) and not re.search(r"\bDEFAULT\b", rest, re.I):
            raise _fail(where, f"{sql!r}: a NOT NULL column needs a DEFAULT (the workload's "
                        "inserts do not name it)")  # fmt: skip
    elif rest:
        raise _fail(where, f"{sql!r}: DROP takes only a column name")
    written = INVENTORY_WRITTEN.get(table, set())
    if table in tables:
        t = tables[table]
        written = {t.key, t.version, *(c.name for c in t.columns)} - {""}
    if column in written:
        raise _fail(where, f"{sql!r}: the workload writes {table}.{column}; {action} only "
                    "columns it does not write (an added one, for example)")  # fmt: skip


def parse(name: str, doc: Any) -> WorkloadSpec:
    """A workload spec from its TOML table; ``SpecError`` (one line) if it cannot work."""
    where = f"workload {name!r}"
    doc = _only(where, doc, ("name", "description", "builder", "base", "tables", "operations",
                             "ddl"))  # fmt: skip
    builder = doc.get("builder", "spec")
    if builder not in BUILDERS:
        raise _fail(f"{where} builder", f"{builder!r}; allowed: {', '.join(BUILDERS)}")
    base = doc.get("base", "inventory" if builder == "inventory" else "")
    if base not in BASES:
        raise _fail(f"{where} base", f"{base!r}; allowed: inventory (or none)")
    if builder == "inventory" and (doc.get("tables") or doc.get("operations")):
        raise _fail(where, "builder 'inventory' takes no tables or operations (use --mix)")
    try:
        return _parse_body(name, doc, builder, base)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _named(what: str, raw: Any, parse: Callable[[str, Any], T]) -> dict[str, T]:
    """A ``[[what]]`` list parsed item by item, by name; a name given twice is refused."""
    if not isinstance(raw, list):
        raise _fail(what, f"must be a list ([[{what}]])")
    out: dict[str, T] = {}
    for i, item in enumerate(raw):
        parsed = parse(f"{what}[{i}]", item)
        name = parsed.name  # type: ignore[attr-defined]
        if name in out:
            raise _fail(f"{what} ({name})", "declared twice")
        out[name] = parsed
    return out


def _check_references(tables: dict[str, Table]) -> None:
    """A reference names a table declared before its own, by the type of that table's
    key, and a seeded child needs a seeded parent."""
    order = list(tables)
    for t in tables.values():
        for c in t.columns:
            if c.gen.kind != "ref":
                continue
            where = f"tables ({t.name}).columns ({c.name})"
            parent = tables.get(c.gen.ref)
            if parent is None or order.index(parent.name) >= order.index(t.name):
                raise _fail(f"{where}.gen.table", f"{c.gen.ref!r} is not a table declared "
                            "before this one (parents come first)")  # fmt: skip
            if c.type.text != parent.key_type.text:
                raise _fail(f"{where}.type", f"{c.type.text} must be the type of "
                            f"{parent.name}.{parent.key} ({parent.key_type.text}) for its "
                            "foreign key")  # fmt: skip
            if parent.seed_rows == 0 and t.seed_rows != 0:
                raise _fail(f"tables ({parent.name}).seed_rows",
                            f"0, but {t.name}.{c.name} references it and {t.name} is "
                            "seeded: give it seed rows")  # fmt: skip


def _parse_body(name: str, doc: dict[str, Any], builder: str, base: str) -> WorkloadSpec:
    tables = _named("tables", doc.get("tables", []), lambda w, r: _table(w, r, base))
    _check_references(tables)
    ops = _named("operations", doc.get("operations", []), lambda w, r: _operation(w, r, tables))
    ops = {n: _with_steps(op, ops) for n, op in ops.items()}
    _check_deletes(tables, ops)
    if builder == "spec":
        if not tables:
            raise _fail("tables", "a spec workload needs at least one table")
        if not ops or sum(o.weight for o in ops.values()) == 0:
            raise _fail("operations", "need at least one operation with weight > 0")
    ddl = None if "ddl" not in doc else _ddl("ddl", doc["ddl"], tables, base)
    return WorkloadSpec(
        name=str(doc.get("name", name)),
        description=str(doc.get("description", "")),
        builder=builder,
        base=base,
        tables=tuple(tables.values()),
        operations=tuple(ops.values()),
        ddl=ddl,
    )


def _with_steps(op: Operation, ops: dict[str, Operation]) -> Operation:
    if op.kind != "transaction":
        return op
    rows = 0
    for s in op.steps:
        step = ops.get(s)
        if step is None or step.kind == "transaction":
            raise _fail(f"operations ({op.name}).steps",
                        f"{s!r}: not an insert, update or delete of this spec")  # fmt: skip
        rows += step.rows
    if len(op.steps) > MAX_STATEMENTS_PER_TXN // 4:
        raise _fail(f"operations ({op.name}).steps", "at most 16 steps")
    return Operation(op.name, op.kind, "", op.weight, rows, steps=op.steps)


def _check_deletes(tables: dict[str, Table], ops: dict[str, Operation]) -> None:
    """A delete of a table that another table references must leave referenced rows
    alone (``unreferenced = true``): the foreign key would refuse it. ON DELETE CASCADE
    is not offered: the cascaded row changes are not written to the binary log as row
    events (MySQL and MariaDB apply them inside the engine), so no book could hold them."""
    for op in ops.values():
        if op.kind != "delete" or op.unreferenced:
            continue
        children = [
            f"{t.name}.{c.name}"
            for t in tables.values()
            for c in t.columns
            if c.gen.kind == "ref" and c.gen.ref == op.table
        ]
        if children:
            raise _fail(
                f"operations ({op.name})",
                f"deletes {op.table} rows that {children[0]} references (its foreign key has "
                "no ON DELETE); set unreferenced = true to delete only rows nothing references",
            )

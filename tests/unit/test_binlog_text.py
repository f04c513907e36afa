"""loadengine.server.binlog's pure text functions on realistic ``mariadb-binlog
--base64-output=decode-rows -v`` output, built event by event with consistent positions.

``Log`` writes the text the reader prints (GTID / Annotate_rows + Table_map / row event /
Xid per transaction, rotates) and independently keeps what a correct scan must find.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field

from loadengine.server import binlog
from loadengine.server.binlog import FollowState, RowKey

DB = "inventory"
STAMP = "261128 17:55:26"
CRC = "CRC32 0x279d4afc"
TS0 = 1_795_888_581_000_000  # a heartbeat stamp (unix µs)

PREAMBLE = (
    "/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=1*/;\n"
    "/*!40019 SET @@session.max_delayed_threads=0*/;\n"
    "/*!50003 SET @OLD_COMPLETION_TYPE=@@COMPLETION_TYPE,COMPLETION_TYPE=0*/;\n"
    "DELIMITER /*!*/;\n"
)
TRAILER = (
    "DELIMITER ;\n"
    "# End of log file\n"
    "ROLLBACK /* added by mysqlbinlog */;\n"
    "/*!50003 SET COMPLETION_TYPE=@OLD_COMPLETION_TYPE*/;\n"
    "/*!50530 SET @@SESSION.PSEUDO_SLAVE_MODE=0*/;\n"
)


def image(values: list[object]) -> str:
    return "".join(f"###   @{i}={v}\n" for i, v in enumerate(values, 1))


def insert_row(db: str, table: str, values: list[object]) -> str:
    return f"### INSERT INTO `{db}`.`{table}`\n### SET\n" + image(values)


def update_row(db: str, table: str, before: list[object], after: list[object]) -> str:
    return f"### UPDATE `{db}`.`{table}`\n### WHERE\n" + image(before) + "### SET\n" + image(after)


def delete_row(db: str, table: str, values: list[object]) -> str:
    return f"### DELETE FROM `{db}`.`{table}`\n### WHERE\n" + image(values)


def customer(key: int, email: str | None = None) -> list[object]:
    return [key, "'Omar'", "'Thomas'", f"'{email or f'c{key}@loadengine.test'}'"]


def order(key: int, quantity: int = 3) -> list[object]:
    return [key, "'2026-03-14'", 1006, quantity, 107]


@dataclass
class Log:
    """Text of the log as the reader prints it, and what a correct scan must find in it."""

    file: str = "binlog.000001"
    pos: int = 1234
    parts: list[str] = field(default_factory=list)
    rows: Counter[RowKey] = field(default_factory=Counter)  # rows in DB
    rows_all: int = 0  # row events in any database
    heartbeats: list[int] = field(default_factory=list)  # stamps written in DB
    first_pos: int = 0
    gtid: int = 5
    table_ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.first_pos = self.pos

    def header(self, size: int, what: str, stamp: str = STAMP) -> str:
        self.pos += size
        return f"#{stamp} server id 1  end_log_pos {self.pos} {CRC} \t{what}\n"

    def event(self, size: int, what: str, body: str = "") -> None:
        at = self.pos
        self.parts.append(f"# at {at}\n" + self.header(size, what) + body)

    def transaction(self, db: str, table: str, kind: str, blocks: list[tuple[str, str]]) -> None:
        """One transaction with one row event of ``kind`` holding ``blocks`` (text, key)."""
        self.gtid += 1
        self.event(
            42,
            f"GTID 0-1-{self.gtid} trans",
            f"/*M!100001 SET @@session.gtid_seq_no={self.gtid}*//*!*/;\nSTART TRANSACTION\n"
            "/*!*/;\n",
        )
        # mariadb-binlog prints Annotate_rows and Table_map together: two "# at" lines
        tid = self.table_ids.setdefault((db, table), 33 + len(self.table_ids))
        at_annotate = self.pos
        annotate = self.header(80, "Annotate_rows:")
        at_map = self.pos
        table_map = self.header(60, f"Table_map: `{db}`.`{table}` mapped to number {tid}")
        self.parts.append(
            f"# at {at_annotate}\n# at {at_map}\n{annotate}"
            f"#Q> {kind.upper()} ... {table} /* {len(blocks)} rows */\n{table_map}"
        )
        event = {"insert": "Write_rows", "update": "Update_rows", "delete": "Delete_rows"}[kind]
        text = "".join(b for b, _ in blocks)
        self.event(
            40 + 30 * len(blocks),
            f"{event}: table id {tid} flags: STMT_END_F",
            text + f"# Number of rows: {len(blocks)}\n",
        )
        self.event(31, f"Xid = {1000 + self.gtid}", "COMMIT/*!*/;\n")
        self.rows_all += len(blocks)
        if db == DB:
            for _, key in blocks:
                self.rows[(table, kind, key)] += 1

    def inserts(self, table: str, keys: list[int], db: str = DB) -> None:
        make = customer if table == "customers" else order
        self.transaction(
            db, table, "insert", [(insert_row(db, table, make(k)), str(k)) for k in keys]
        )

    def updates(self, table: str, keys: list[int], tag: str = "f634da27.1.1", db: str = DB) -> None:
        blocks = []
        for k in keys:
            if table == "customers":
                after = customer(k, f"c{k}.{tag}@loadengine.test")
                blocks.append((update_row(db, table, customer(k), after), str(k)))
            else:
                blocks.append((update_row(db, table, order(k, 3), order(k, 4)), str(k)))
        self.transaction(db, table, "update", blocks)

    def deletes(self, table: str, keys: list[int], db: str = DB) -> None:
        self.transaction(
            db, table, "delete", [(delete_row(db, table, customer(k)), str(k)) for k in keys]
        )

    def heartbeat(self, ts_us: int, db: str = DB) -> None:
        before: list[object] = [1, ts_us - 100_000]
        after: list[object] = [1, ts_us]
        self.transaction(
            db,
            binlog.HEARTBEAT_TABLE,
            "update",
            [(update_row(db, binlog.HEARTBEAT_TABLE, before, after), "1")],
        )
        if db == DB:
            self.heartbeats.append(ts_us)

    def rotate(self, new_file: str) -> int:
        """The real Rotate at the end of the file, then the new file's first events; returns
        where the old file ended."""
        self.event(44, f"Rotate to {new_file}  pos: 4")
        end_of_old, self.file, self.pos = self.pos, new_file, 4
        self.parts.append(
            "# at 4\n#700101  0:00:00 server id 1  end_log_pos 0 CRC32 0x00000000 \t"
            f"Rotate to {new_file}  pos: 4\n"
        )
        self.event(252, "Start: binlog v 4, server v 11.4.2-MariaDB-log created " + STAMP)
        self.event(43, "Gtid list [0-1-" + str(self.gtid) + "]")
        self.event(44, f"Binlog checkpoint {new_file}")
        return end_of_old

    def text(self, preamble: bool = True) -> bytes:
        body = "".join(self.parts)
        return (PREAMBLE + body + TRAILER if preamble else body).encode()


def brief_example() -> Log:
    """The example of the brief: one insert, then one update of the same customer."""
    log = Log()
    log.inserts("customers", [1006])
    log.updates("customers", [1006])
    return log


def busy_log(seed: int = 7, transactions: int = 60) -> Log:
    """A mixed stream: inserts/updates/deletes in DB, another database, heartbeats."""
    rng = random.Random(seed)
    log = Log()
    next_c, next_o = 1006, 10003
    for i in range(transactions):
        choice = rng.randrange(6)
        if choice == 0:
            n = rng.randint(1, 5)
            log.inserts("customers", list(range(next_c, next_c + n)))
            next_c += n
        elif choice == 1:
            n = rng.randint(1, 4)
            log.inserts("orders", list(range(next_o, next_o + n)))
            next_o += n
        elif choice == 2:
            log.updates("customers", rng.sample(range(1001, next_c), 3), tag=f"tok.0.{i}")
        elif choice == 3:
            log.updates("orders", [rng.randrange(10001, next_o)])
        elif choice == 4:
            log.heartbeat(TS0 + 100_000 * i)
        else:
            other = rng.choice(["shop", "inventory2", "inv"])
            log.inserts("customers", [rng.randrange(1, 10**6)], db=other)
    log.deletes("customers", [1001])
    return log


def count(text: bytes, database: str = DB) -> tuple[Counter[RowKey], int]:
    rows: Counter[RowKey] = Counter()
    n = binlog.count_rows(text, database, rows)
    return rows, n


# --- count_rows -------------------------------------------------------------------------------


def test_the_briefs_example_counts_one_insert_and_one_update_of_its_key() -> None:
    log = brief_example()
    rows, n = count(log.text())
    assert rows == Counter({("customers", "insert", "1006"): 1, ("customers", "update", "1006"): 1})
    assert n == 2


def test_count_rows_per_key_kind_and_table_in_a_busy_stream() -> None:
    log = busy_log()
    text = log.text()
    rows, n = count(text)
    assert rows == log.rows
    assert n == log.rows_all
    assert n > sum(rows.values())  # other databases were read and left out
    kinds = {kind for _, kind, _ in rows}
    assert kinds == {"insert", "update", "delete"}
    assert rows[("customers", "delete", "1001")] == 1
    assert rows[(binlog.HEARTBEAT_TABLE, "update", "1")] == len(log.heartbeats) > 0


def test_count_rows_filters_by_exact_database_name() -> None:
    log = Log()
    for db in ("inventory", "inventory2", "inv", "shop"):
        log.inserts("customers", [1, 2], db=db)
    log.updates("orders", [10001], db="inventory2")
    text = log.text()
    for db, expected in (("inventory", 2), ("inventory2", 3), ("inv", 2), ("nothere", 0)):
        rows, n = count(text, db)
        assert (sum(rows.values()), n) == (expected, 9), db
    rows, _ = count(text, "inventory2")
    assert rows == Counter(
        {
            ("customers", "insert", "1"): 1,
            ("customers", "insert", "2"): 1,
            ("orders", "update", "10001"): 1,
        }
    )


def test_count_rows_adds_to_an_existing_counter() -> None:
    text = brief_example().text()
    rows: Counter[RowKey] = Counter()
    binlog.count_rows(text, DB, rows)
    binlog.count_rows(text, DB, rows)
    assert rows == Counter({("customers", "insert", "1006"): 2, ("customers", "update", "1006"): 2})


def test_multi_row_events_count_every_row() -> None:
    log = Log()
    log.inserts("customers", list(range(2001, 2011)))
    log.updates("customers", [2001, 2005, 2009])
    rows, n = count(log.text())
    assert n == 13
    assert sum(n for (_, kind, _), n in rows.items() if kind == "insert") == 10
    assert {key for _, kind, key in rows if kind == "update"} == {"2001", "2005", "2009"}


def test_text_without_row_events_counts_nothing() -> None:
    log = Log()
    log.event(42, "GTID 0-1-9 ddl", "/*!*/;\n")
    log.event(
        120, "Query\tthread_id=5\texec_time=0\terror_code=0", "CREATE TABLE t (id INT)\n/*!*/;\n"
    )
    assert count(log.text()) == (Counter(), 0)
    assert count(b"") == (Counter(), 0)


# --- chunks_at_events -------------------------------------------------------------------------


def recount(pieces: list[bytes]) -> tuple[Counter[RowKey], int, list[bytes]]:
    rows: Counter[RowKey] = Counter()
    total = 0
    out = list(binlog.chunks_at_events(pieces))
    for piece in out:
        total += binlog.count_rows(piece, DB, rows)
    return rows, total, out


def check_cut(text: bytes, cuts: list[int], whole: tuple[Counter[RowKey], int]) -> None:
    bounds = [0, *sorted(cuts), len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    rows, total, out = recount(pieces)
    assert (rows, total) == whole, cuts
    assert b"".join(out) == text
    assert all(p.startswith(b"# at ") for p in out[1:]), cuts
    assert all(p.endswith(b"\n") for p in out[:-1]), cuts


def test_recut_at_every_single_split_point_gives_the_whole_texts_counts() -> None:
    log = Log()
    log.inserts("customers", [1006, 1007])
    log.heartbeat(TS0)
    log.updates("customers", [1006])
    log.inserts("customers", [5], db="shop")
    text = log.text()
    whole = count(text)
    assert whole == (log.rows, log.rows_all)
    for cut in range(len(text) + 1):
        check_cut(text, [cut], whole)


def test_recut_at_many_random_split_points_gives_the_whole_texts_counts() -> None:
    text = busy_log().text()
    whole = count(text)
    rng = random.Random(11)
    for _ in range(150):
        check_cut(text, [rng.randrange(len(text) + 1) for _ in range(rng.randint(1, 40))], whole)


def test_recut_of_a_byte_by_byte_stream() -> None:
    text = busy_log(seed=3, transactions=15).text()
    rows, total, out = recount([text[i : i + 1] for i in range(len(text))])
    assert (rows, total) == count(text)
    assert b"".join(out) == text


def test_recut_keeps_text_without_any_event_start_whole() -> None:
    assert list(binlog.chunks_at_events([b"DELIMITER ", b"/*!*/;\n"])) == [b"DELIMITER /*!*/;\n"]
    assert list(binlog.chunks_at_events([])) == []
    assert list(binlog.chunks_at_events([b"", b""])) == []


# --- count_lines / by_table / files_between ---------------------------------------------------


def test_count_lines_by_table_and_kind() -> None:
    log = busy_log()
    lines = log.text().splitlines(keepends=True)
    expected: dict[str, dict[str, int]] = {}
    for (table, kind, _), n in log.rows.items():
        expected.setdefault(table, {}).setdefault(kind, 0)
        expected[table][kind] += n
    assert binlog.count_lines(lines, DB) == expected
    assert binlog.count_lines(lines, DB) == binlog.by_table(log.rows)


def test_count_lines_for_any_database_merges_same_named_tables() -> None:
    log = Log()
    log.inserts("customers", [1, 2])
    log.inserts("customers", [3], db="shop")
    log.updates("orders", [10001, 10002], db="shop")
    log.deletes("customers", [1])
    lines = log.text().splitlines(keepends=True)
    assert binlog.count_lines(lines) == {
        "customers": {"insert": 3, "delete": 1},
        "orders": {"update": 2},
    }
    assert binlog.count_lines(lines, "shop") == {
        "customers": {"insert": 1},
        "orders": {"update": 2},
    }
    assert binlog.count_lines([], DB) == {}


def test_by_table_sums_keys() -> None:
    rows: Counter[RowKey] = Counter(
        {
            ("customers", "insert", "1"): 1,
            ("customers", "insert", "2"): 1,
            ("customers", "update", "1"): 3,
            ("orders", "delete", "9"): 2,
        }
    )
    assert binlog.by_table(rows) == {
        "customers": {"insert": 2, "update": 3},
        "orders": {"delete": 2},
    }


def test_files_between() -> None:
    logs = ["binlog.000001", "binlog.000002", "binlog.000003", "binlog.000010"]
    assert binlog.files_between(logs, "binlog.000002", "binlog.000010") == logs[1:]
    assert binlog.files_between(logs, "binlog.000003", "binlog.000003") == ["binlog.000003"]
    assert binlog.files_between(logs[1:], "binlog.000001", "binlog.000002") == ["binlog.000002"]
    assert binlog.files_between(logs, "binlog.000004", "binlog.000009") == []


# --- following: heartbeat_pattern / scan_follow_text / scan_positions -------------------------


def test_heartbeat_pattern_reads_the_after_image_of_its_database_only() -> None:
    log = Log()
    log.heartbeat(TS0)
    log.heartbeat(TS0 + 7, db="shop")
    log.heartbeat(TS0 + 100_000)
    log.updates("customers", [1006])
    text = log.text()
    pattern = binlog.heartbeat_pattern(DB)
    assert [int(m.group(1)) for m in pattern.finditer(text)] == [TS0, TS0 + 100_000]
    assert [int(m.group(1)) for m in binlog.heartbeat_pattern("shop").finditer(text)] == [TS0 + 7]
    assert binlog.heartbeat_pattern("inv").search(text) is None
    assert binlog.heartbeat_pattern("in.entory").search(text) is None  # name is escaped


def test_scan_follow_text_lag_rows_position_and_bytes() -> None:
    log = Log()
    log.inserts("customers", [1006, 1007])
    log.heartbeat(TS0)
    log.updates("customers", [1006])
    log.heartbeat(TS0 + 100_000)
    log.inserts("customers", [9], db="shop")
    state = FollowState(file="binlog.000001", position=log.first_pos)
    seen = TS0 + 103_500
    binlog.scan_follow_text(log.text(), binlog.heartbeat_pattern(DB), seen, 3, state)
    assert state.lag_us == [(3, 103_500), (3, 3_500)]
    assert state.rows_by_second == {3: 6}  # every row event, any database
    assert (state.file, state.position) == ("binlog.000001", log.pos)
    assert state.bytes_by_second == {3: log.pos - log.first_pos}
    assert state.error is None


def test_scan_follow_text_accumulates_per_run_second() -> None:
    first, second = Log(), Log()
    first.heartbeat(TS0)
    first.inserts("customers", [1006])
    second.pos = second.first_pos = first.pos
    second.updates("customers", [1006, 1007])
    second.heartbeat(TS0 + 100_000)
    third = Log(pos=second.pos)
    third.inserts("orders", [10001])
    state = FollowState(file="binlog.000001", position=first.first_pos)
    pattern = binlog.heartbeat_pattern(DB)
    binlog.scan_follow_text(first.text(False), pattern, TS0 + 2_000, 0, state)
    binlog.scan_follow_text(second.text(False), pattern, TS0 + 1_100_000, 1, state)
    binlog.scan_follow_text(third.text(False), pattern, TS0 + 1_200_000, 1, state)
    assert state.lag_us == [(0, 2_000), (1, 1_000_000)]
    assert state.rows_by_second == {0: 2, 1: 4}
    assert state.bytes_by_second == {
        0: first.pos - first.first_pos,
        1: third.pos - second.first_pos,
    }
    assert state.position == third.pos


def test_scan_positions_is_idempotent_for_text_seen_twice() -> None:
    text = busy_log().text()
    once = FollowState(file="binlog.000001", position=1234)
    binlog.scan_positions(text, 2, once)
    twice = FollowState(file="binlog.000001", position=1234)
    binlog.scan_positions(text, 2, twice)
    binlog.scan_positions(text, 2, twice)
    binlog.scan_positions(text, 5, twice)
    assert once.position > 1234
    assert twice == once
    assert once.bytes_by_second == {2: once.position - 1234}


def test_scan_positions_ignores_events_before_the_start_position() -> None:
    log = brief_example()
    cut = log.pos
    log.updates("customers", [1006])
    state = FollowState(file="binlog.000001", position=cut)
    binlog.scan_positions(log.text(), 0, state)
    assert (state.position, state.bytes_by_second) == (log.pos, {0: log.pos - cut})


def rotated_log() -> tuple[Log, int]:
    """Events in binlog.000001, a rotate, events in binlog.000002; and the rotate's end."""
    log = Log()
    log.inserts("customers", [1006])
    log.heartbeat(TS0)
    end_of_first = log.rotate("binlog.000002")
    log.updates("customers", [1006])
    log.heartbeat(TS0 + 100_000)
    return log, end_of_first


def test_scan_positions_follows_a_rotate_to_the_next_file() -> None:
    log, end_of_first = rotated_log()
    state = FollowState(file="binlog.000001", position=1234)
    binlog.scan_follow_text(log.text(), binlog.heartbeat_pattern(DB), TS0 + 150_000, 4, state)
    assert (state.file, state.position) == ("binlog.000002", log.pos)
    assert state.bytes_by_second == {4: (end_of_first - 1234) + (log.pos - 4)}
    assert state.lag_us == [(4, 150_000), (4, 50_000)]
    assert state.rows_by_second == {4: 4}


def test_scan_positions_ignores_a_rotate_to_an_older_or_the_same_file() -> None:
    log = Log(pos=4)
    log.inserts("customers", [1])
    state = FollowState(file="binlog.000003", position=4)
    binlog.scan_positions(log.text(), 0, state)
    old = b"#261128 server id 1  end_log_pos 0 CRC32 0x0 \tRotate to binlog.000002  pos: 4\n"
    binlog.scan_positions(old, 0, state)
    assert (state.file, state.position) == ("binlog.000003", log.pos)


def test_scan_positions_is_idempotent_across_a_rotate() -> None:
    log, _ = rotated_log()
    text = log.text()
    once = FollowState(file="binlog.000001", position=1234)
    binlog.scan_positions(text, 4, once)
    assert (once.file, once.position) == ("binlog.000002", log.pos)
    twice = FollowState(file="binlog.000001", position=1234)
    binlog.scan_positions(text, 4, twice)
    binlog.scan_positions(text, 4, twice)
    assert twice == once


def follow(text: bytes, cuts: list[int], seen_us: int, second: int) -> FollowState:
    """What ``binlog.Follower._read`` does with pipe reads cut at ``cuts``."""
    state = FollowState(file="binlog.000001", position=1234)
    pattern = binlog.heartbeat_pattern(DB)
    bounds = [0, *sorted(cuts), len(text)]
    rest = b""
    for a, b in itertools.pairwise(bounds):
        buf = rest + text[a:b]
        cut = buf.rfind(binlog.EVENT_START) + 1
        rest = buf[cut:]
        binlog.scan_follow_text(buf[:cut], pattern, seen_us, second, state)
        binlog.scan_positions(rest[: rest.rfind(b"\n") + 1], second, state)
    binlog.scan_follow_text(rest, pattern, seen_us, second, state)
    return state


def test_following_a_stream_cut_anywhere_sees_what_one_scan_sees() -> None:
    log = busy_log(seed=5, transactions=25)
    text = log.text()
    whole = follow(text, [], TS0 + 10**7, 1)
    assert whole.position == log.pos
    assert [lag for _, lag in whole.lag_us] == [TS0 + 10**7 - ts for ts in log.heartbeats]
    assert whole.rows_by_second == {1: log.rows_all}
    rng = random.Random(2)
    for _ in range(200):
        cuts = [rng.randrange(len(text) + 1) for _ in range(rng.randint(1, 12))]
        assert follow(text, cuts, TS0 + 10**7, 1) == whole, cuts


def test_following_a_stream_cut_inside_the_rotate_sees_what_one_scan_sees() -> None:
    log, _ = rotated_log()
    text = log.text()
    whole = follow(text, [], TS0 + 10**6, 0)
    assert (whole.file, whole.position) == ("binlog.000002", log.pos)
    at = text.index(b"Rotate to binlog.000002")
    line_end = text.index(b"\n", at) + 1  # the rotate's header line is complete
    assert follow(text, [line_end], TS0 + 10**6, 0) == whole


# --- count_lines on the brief's exact sample ----------------------------------------------------

HEAD = "#261128 17:55:26 server id 1  end_log_pos {} CRC32 0x279d4afc \t{}\n"
SAMPLE = (
    "# at 1234\n"
    + HEAD.format(1300, "Table_map: `inventory`.`customers` mapped to number 33")
    + "# at 1300\n"
    + HEAD.format(1400, "Write_rows: table id 33 flags: STMT_END_F")
    + "### INSERT INTO `inventory`.`customers`\n"
    + "### SET\n"
    + "###   @1=1006\n"
    + "###   @2='Omar'\n"
    + "###   @3='Thomas'\n"
    + "###   @4='c1006@loadengine.test'\n"
    + "# at 1400\n"
    + HEAD.format(1500, "Update_rows: table id 33 flags: STMT_END_F")
    + "### UPDATE `inventory`.`customers`\n"
    + "### WHERE\n"
    + "###   @1=1006\n"
    + "###   @2='Omar'\n"
    + "###   @3='Thomas'\n"
    + "###   @4='c1006@loadengine.test'\n"
    + "### SET\n"
    + "###   @1=1006\n"
    + "###   @2='Omar'\n"
    + "###   @3='Thomas'\n"
    + "###   @4='c1006.f634da27.1.1@loadengine.test'\n"
).encode()


def test_the_briefs_literal_sample() -> None:
    assert binlog.count_lines(SAMPLE.splitlines(keepends=True), DB) == {
        "customers": {"insert": 1, "update": 1}
    }
    state = FollowState(file="binlog.000001", position=1234)
    binlog.scan_follow_text(SAMPLE, binlog.heartbeat_pattern(DB), 0, 0, state)
    assert (state.position, state.bytes_by_second, state.rows_by_second) == (
        1500,
        {0: 266},
        {0: 2},
    )
    assert state.lag_us == []

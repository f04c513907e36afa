"""loadengine.server.cdc.readiness: problems that stop a CDC reader, and notes that do not."""

from __future__ import annotations

from typing import Any

import pytest

from loadengine.server import cdc

MARIADB: dict[str, Any] = {
    "flavor": "mariadb",
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
    "log_bin_compress": "OFF",
    "gtid_strict_mode": "ON",
}
MYSQL: dict[str, Any] = {
    "flavor": "mysql",
    "log_bin": "1",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
    "binlog_transaction_compression": "OFF",
    "gtid_mode": "ON",
}


def check(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return cdc.readiness({**base, **changes})


def test_a_ready_mariadb() -> None:
    assert check(MARIADB) == {"ready": True, "problems": [], "notes": []}
    assert cdc.one_line(check(MARIADB)) == ""


def test_a_ready_mysql() -> None:
    assert check(MYSQL) == {"ready": True, "problems": [], "notes": []}


@pytest.mark.parametrize("value", ["on", "1", 1, "TRUE", "yes"])
def test_log_bin_spellings_that_mean_on(value: Any) -> None:
    assert check(MARIADB, log_bin=value)["ready"] is True


@pytest.mark.parametrize("value", ["OFF", "0", 0, None, ""])
def test_binary_log_off_is_the_only_problem(value: Any) -> None:
    r = check(MARIADB, log_bin=value, binlog_format="STATEMENT", binlog_row_image="MINIMAL")
    assert r == {"ready": False, "problems": ["binary log is off (log_bin=OFF)"], "notes": []}


def test_missing_log_bin_is_off() -> None:
    env = {k: v for k, v in MARIADB.items() if k != "log_bin"}
    assert cdc.readiness(env)["problems"] == ["binary log is off (log_bin=OFF)"]


@pytest.mark.parametrize("fmt", ["STATEMENT", "MIXED"])
def test_statement_or_mixed_format_is_a_problem(fmt: str) -> None:
    r = check(MARIADB, binlog_format=fmt)
    assert r["ready"] is False
    assert r["problems"] == [f"binlog_format={fmt} (CDC needs ROW)"]


def test_row_format_in_lower_case_is_fine() -> None:
    assert check(MARIADB, binlog_format="row", binlog_row_image="full")["ready"] is True


@pytest.mark.parametrize("image", ["MINIMAL", "NOBLOB"])
def test_a_partial_row_image_is_a_problem(image: str) -> None:
    r = check(MYSQL, binlog_row_image=image)
    assert r == {
        "ready": False,
        "problems": [f"binlog_row_image={image} (CDC needs FULL)"],
        "notes": [],
    }


def test_both_problems_are_listed_in_order() -> None:
    r = check(MARIADB, binlog_format="STATEMENT", binlog_row_image="MINIMAL")
    assert r["problems"] == [
        "binlog_format=STATEMENT (CDC needs ROW)",
        "binlog_row_image=MINIMAL (CDC needs FULL)",
    ]
    assert cdc.one_line(r) == (
        "binlog_format=STATEMENT (CDC needs ROW); binlog_row_image=MINIMAL (CDC needs FULL)"
    )


@pytest.mark.parametrize("metadata", ["NO_LOG", "MINIMAL"])
def test_row_metadata_short_of_full_is_a_note(metadata: str) -> None:
    r = check(MARIADB, binlog_row_metadata=metadata)
    assert r["ready"] is True and r["problems"] == []
    assert r["notes"] == [f"binlog_row_metadata={metadata}: readers needing column names lack them"]


def test_row_metadata_unknown_to_the_server_is_no_note() -> None:
    env = {k: v for k, v in MARIADB.items() if k != "binlog_row_metadata"}
    assert cdc.readiness(env)["notes"] == []


@pytest.mark.parametrize("mode", ["OFF", "OFF_PERMISSIVE", None])
def test_mysql_without_gtids_gets_a_note(mode: str | None) -> None:
    r = check(MYSQL, gtid_mode=mode)
    assert r["ready"] is True
    assert r["notes"] == [
        "gtid_mode is off: Debezium's source.ts_ms then has one-second resolution"
    ]


def test_mariadb_has_no_gtid_mode_note() -> None:
    assert check(MARIADB, gtid_mode="OFF")["notes"] == []


@pytest.mark.parametrize(
    ("base", "name"),
    [(MYSQL, "binlog_transaction_compression"), (MARIADB, "log_bin_compress")],
)
def test_compression_is_a_note(base: dict[str, Any], name: str) -> None:
    r = check(base, **{name: "ON"})
    assert r == {
        "ready": True,
        "problems": [],
        "notes": [f"{name}=ON: some readers skip compressed transactions"],
    }


def test_notes_accumulate_beside_problems() -> None:
    r = check(
        MYSQL,
        binlog_row_image="MINIMAL",
        binlog_row_metadata="MINIMAL",
        gtid_mode="OFF",
        binlog_transaction_compression="1",
        log_bin_compress="ON",
    )
    assert r["ready"] is False
    assert len(r["problems"]) == 1 and len(r["notes"]) == 4
    line = cdc.one_line(r)
    assert line.startswith("binlog_row_image=MINIMAL (CDC needs FULL); binlog_row_metadata=")
    assert line.count("; ") == 4

"""loadengine.dsn: parsing, defaults, redaction, and errors that never show the password."""

from __future__ import annotations

import pytest

from loadengine.core.dsn import Dsn, DsnError, dsn_from_parts, parse_dsn, redact_text

PASSWORD = "hunter2-Secret"
EXPECTED_FORM = "expected mysql://user:password@host:port/database[?unix_socket=/path]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "mysql://app:pw@db.example:3307/shop",
            Dsn("app", "pw", "db.example", 3307, "shop"),
        ),
        (
            "mariadb://app:pw@10.0.0.5:3310/inventory",
            Dsn("app", "pw", "10.0.0.5", 3310, "inventory"),
        ),
        ("mysql://root@localhost/inventory", Dsn("root", "", "localhost", 3306, "inventory")),
        ("mysql://root:@127.0.0.1/inventory", Dsn("root", "", "127.0.0.1", 3306, "inventory")),
        (
            "mysql://root:pw@localhost/inventory?unix_socket=/run/mysqld/mysqld.sock",
            Dsn("root", "pw", "localhost", 3306, "inventory", "/run/mysqld/mysqld.sock"),
        ),
        (
            "mysql://u%40corp:p%40ss%3Aw%2Frd%23@db:3306/my%20db",
            Dsn("u@corp", "p@ss:w/rd#", "db", 3306, "my db"),
        ),
        ("mysql://u:p@ss@db/x", Dsn("u", "p@ss", "db", 3306, "x")),
        ("mysql://u@DB.Example/x", Dsn("u", "", "db.example", 3306, "x")),
    ],
)
def test_parse_dsn(text: str, expected: Dsn) -> None:
    assert parse_dsn(text) == expected


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        (Dsn("app", PASSWORD, "db", 3307, "shop"), "mysql://app:***@db:3307/shop"),
        (Dsn("root", "", "localhost", 3306, "inventory"), "mysql://root@localhost:3306/inventory"),
        (
            Dsn("root", PASSWORD, "localhost", 3306, "inv", "/tmp/m.sock"),
            "mysql://root:***@localhost:3306/inv?unix_socket=/tmp/m.sock",
        ),
    ],
)
def test_redacted(dsn: Dsn, redacted: str) -> None:
    assert dsn.redacted() == redacted
    assert PASSWORD not in dsn.redacted()
    assert PASSWORD not in repr(dsn.redacted())


@pytest.mark.parametrize(
    "password", [PASSWORD, "p@ss:w/rd", "a b%c#d?e&f", "ünïcødé", "::", "@@", "%40"]
)
def test_to_url_round_trips_and_redacted_hides_the_password(password: str) -> None:
    dsn = Dsn("app user", password, "db", 3306, "shop", None)
    assert parse_dsn(dsn.to_url()) == dsn
    assert password not in dsn.redacted()
    assert ":***@" in dsn.redacted()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"mysql://u:{PASSWORD}@h/db", "mysql://u:***@h/db"),
        (
            f"mysql://u:{PASSWORD}@h:3306/db?unix_socket=/s",
            "mysql://u:***@h:3306/db?unix_socket=/s",
        ),
        (f"postgres://u:{PASSWORD}@h/db", "postgres://u:***@h/db"),
        (f"mysql://u:p@{PASSWORD}@h/db", "mysql://u:***@h/db"),
        ("mysql://u@h/db", "mysql://u@h/db"),
        ("mysql://h/db", "mysql://h/db"),
        ("no dsn here", "no dsn here"),
        ("", ""),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert PASSWORD not in redact_text(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"postgres://u:{PASSWORD}@h/db", "scheme must be mysql:// or mariadb://"),
        (f"http://u:{PASSWORD}@h/db", "scheme must be mysql:// or mariadb://"),
        (f"mysql://u:{PASSWORD}@h:99999/db", "port must be a number from 1 to 65535"),
        (f"mysql://u:{PASSWORD}@h:abc/db", "port must be a number from 1 to 65535"),
        (f"mysql://u:{PASSWORD}@h:-1/db", "port must be a number from 1 to 65535"),
        (f"mysql://u:{PASSWORD}@h:3306/", "database name is missing"),
        (f"mysql://u:{PASSWORD}@h", "database name is missing"),
        (f"mysql://u:{PASSWORD}@h/a/b", "database name is missing"),
        (f"mysql://u:{PASSWORD}@:3306/db", "host is missing"),
        (f"mysql://:{PASSWORD}@h/db", "user is missing"),
        (f"mysql://u:{PASSWORD}@h/db?ssl=1", "unknown option 'ssl' (allowed: unix_socket, ssl_ca"),
    ],
)
def test_errors_name_the_problem_and_never_the_password(text: str, reason: str) -> None:
    with pytest.raises(DsnError) as excinfo:
        parse_dsn(text)
    message = str(excinfo.value)
    assert reason in message
    assert EXPECTED_FORM in message
    assert message.startswith("invalid DSN ")
    assert "\n" not in message
    assert PASSWORD not in message
    assert PASSWORD not in repr(excinfo.value)


def test_dsn_error_is_a_value_error() -> None:
    assert issubclass(DsnError, ValueError)


@pytest.mark.parametrize(
    "text", [f"mysql:/u:{PASSWORD}@h/db", f"mysql:u:{PASSWORD}@h/db", f"u:{PASSWORD}@h/db"]
)
def test_error_for_dsn_missing_a_slash_hides_the_password(text: str) -> None:
    with pytest.raises(DsnError) as excinfo:
        parse_dsn(text)
    assert PASSWORD not in str(excinfo.value)


def test_port_zero_is_refused() -> None:
    with pytest.raises(DsnError, match="port must be a number from 1 to 65535"):
        parse_dsn("mysql://u@h:0/db")


# --- dsn_from_parts (old MYSQL_* variables) -----------------------------------------------


def test_dsn_from_parts_needs_mysql_host() -> None:
    assert dsn_from_parts({}) is None
    assert dsn_from_parts({"MYSQL_USER": "app", "MYSQL_PASSWORD": "x"}) is None


def test_dsn_from_parts_defaults() -> None:
    assert dsn_from_parts({"MYSQL_HOST": "db"}) == "mysql://root@db:3306/inventory"
    assert dsn_from_parts({"MYSQL_HOST": "db", "MYSQL_PORT": ""}) == (
        "mysql://root@db:3306/inventory"
    )


def test_dsn_from_parts_all_values() -> None:
    text = dsn_from_parts(
        {
            "MYSQL_HOST": "db.example",
            "MYSQL_PORT": "3307",
            "MYSQL_USER": "app",
            "MYSQL_PASSWORD": "a b/c@d:e%",
            "MYSQL_DATABASE": "shop",
        }
    )
    assert text == "mysql://app:a%20b%2Fc%40d%3Ae%25@db.example:3307/shop"
    assert parse_dsn(text) == Dsn("app", "a b/c@d:e%", "db.example", 3307, "shop")


def test_dsn_from_parts_bad_port() -> None:
    with pytest.raises(ValueError):
        dsn_from_parts({"MYSQL_HOST": "db", "MYSQL_PORT": "abc"})


def test_dsn_from_parts_ipv6_host() -> None:
    text = dsn_from_parts({"MYSQL_HOST": "::1"})
    assert text is not None
    assert parse_dsn(text).host == "::1"


def test_to_url_round_trips_an_ipv6_host() -> None:
    dsn = parse_dsn("mysql://root@[::1]:3306/inventory")
    assert dsn.host == "::1"
    assert parse_dsn(dsn.to_url()) == dsn

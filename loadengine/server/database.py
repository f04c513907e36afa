"""The only module that imports the MySQL driver: connections, prepared statements, errors.

mysql-connector-python's C extension is loaded by importing ``_mysql_connector`` before
``mysql.connector``: on some hosts a plain import silently falls back to pure Python
because the extension's bundled libssl clashes with an older system OpenSSL that was
loaded first. ``driver_info()`` reports which implementation actually runs; callers
record it in the results and say it out loud when it is the slow one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

try:  # must come before mysql.connector (see module docstring)
    import _mysql_connector  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - the driver falls back; driver_info() reports it
    pass

import mysql.connector
from mysql.connector import errorcode, errors
from mysql.connector.constants import ClientFlag

from loadengine.core.dsn import Dsn
from loadengine.core.workload import CommitProbe, Statement

CONNECTION_LOST_ERRNOS = frozenset({2006, 2013, 2055, 1053, 1927, 4031})
ERROR_CLASSES = {
    errorcode.ER_LOCK_DEADLOCK: "deadlock",
    errorcode.ER_LOCK_WAIT_TIMEOUT: "lock_wait_timeout",
    errorcode.ER_DUP_ENTRY: "duplicate_key",
    errorcode.ER_NO_REFERENCED_ROW_2: "foreign_key",
    errorcode.ER_ACCESS_DENIED_ERROR: "access_denied",
    errorcode.ER_BAD_DB_ERROR: "unknown_database",
    errorcode.ER_NO_SUCH_TABLE: "no_such_table",
    2003: "connection_refused",
    2002: "connection_refused",
    2005: "unknown_host",
    2026: "tls_error",
}
RETRYABLE_CLASSES = frozenset({"deadlock", "lock_wait_timeout"})
# The C extension sometimes raises its own MySQLInterfaceError unwrapped (seen when the
# server dies mid-statement); it carries errno like the connector's errors.
try:
    DRIVER_ERRORS: tuple[type[BaseException], ...] = (
        errors.Error,
        _mysql_connector.MySQLInterfaceError,
    )
except NameError:  # pragma: no cover - pure Python driver
    DRIVER_ERRORS = (errors.Error,)


class DatabaseError(Exception):
    """A classified database error; ``error_class`` is a short stable name."""

    def __init__(self, error_class: str, message: str, in_commit: bool = False) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.in_commit = in_commit  # raised by COMMIT itself: the outcome may be unknown


@dataclass(frozen=True, slots=True)
class DriverInfo:
    name: str
    version: str
    implementation: str  # "c-extension" or "pure-python"


MULTIPLEXED = "multiplexed-wire"  # the driver's handshake, then ``wire``'s round trips


def driver_info(multiplexed: bool = False) -> DriverInfo:
    """Which implementation runs the round trips: the C extension, pure Python (the slow
    fallback), or, for multiplexed shards (``wire``), loadengine's own ``COM_QUERY`` on
    the connector's socket."""
    impl = "c-extension" if mysql.connector.HAVE_CEXT else "pure-python"
    if multiplexed:
        impl = MULTIPLEXED
    return DriverInfo("mysql-connector-python", mysql.connector.__version__, impl)


def classify(exc: BaseException) -> str:
    """Short stable class of a driver exception (used as the errors-by-class key)."""
    errno = getattr(exc, "errno", None)
    if errno in ERROR_CLASSES:
        return ERROR_CLASSES[errno]
    if errno in CONNECTION_LOST_ERRNOS or isinstance(exc, errors.OperationalError):
        return "connection_lost"
    if isinstance(exc, errors.InterfaceError):
        return "connection_lost"
    return f"mysql_{errno}" if errno else type(exc).__name__.lower()


def classify_server_error(errno: int, sqlstate: str, message: str) -> str:
    """The class of an error the server sent (``wire``), exactly as the driver's own
    exception for it would be classified."""
    return classify(errors.get_mysql_exception(errno, message, sqlstate or None))


def is_connection_lost(error_class: str) -> bool:
    return error_class in ("connection_lost", "connection_refused")


def scrub(text: str, dsn: Dsn) -> str:
    """``text`` without the password, should a server or driver message quote it."""
    return text.replace(dsn.password, "***") if dsn.password else text


def _safe_message(exc: BaseException, dsn: Dsn) -> str:
    return scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, dsn)


def connect(
    dsn: Dsn,
    *,
    with_database: bool = True,
    timeout_s: int = 5,
    multi_statements: bool = False,
    pure: bool = False,
) -> Any:
    """Open a connection (C extension when available, unless ``pure``: the pure-Python
    connection exposes its socket, which ``wire`` drives). Raises ``DatabaseError``."""
    # Affected rows must be *changed* rows: that is what the binary log holds.
    flags = [-ClientFlag.FOUND_ROWS]
    if multi_statements:
        flags.append(ClientFlag.MULTI_STATEMENTS)
    kwargs: dict[str, Any] = {
        "user": dsn.user,
        "password": dsn.password,
        "connection_timeout": timeout_s,
        "autocommit": False,
        "use_pure": pure or not mysql.connector.HAVE_CEXT,
        "client_flags": flags,
    }
    if dsn.unix_socket:
        kwargs["unix_socket"] = dsn.unix_socket
    else:
        kwargs["host"], kwargs["port"] = dsn.host, dsn.port
    if with_database:
        kwargs["database"] = dsn.database
    if dsn.tls:
        kwargs.update(
            {
                k: v
                for k, v in (
                    ("ssl_ca", dsn.ssl_ca),
                    ("ssl_cert", dsn.ssl_cert),
                    ("ssl_key", dsn.ssl_key),
                )
                if v
            }
        )
        kwargs["ssl_verify_cert"] = bool(dsn.ssl_verify and dsn.ssl_ca)
        kwargs["ssl_verify_identity"] = bool(dsn.ssl_verify and dsn.ssl_ca)
    try:
        return mysql.connector.connect(**kwargs)
    except errors.Error as exc:
        raise DatabaseError(classify(exc), _safe_message(exc, dsn)) from None


def query(conn: Any, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params or None)
        return list(cur.fetchall()) if cur.with_rows else []
    finally:
        cur.close()


def execute(conn: Any, sql: str) -> int:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return int(cur.rowcount)
    finally:
        cur.close()


PROTOCOLS = ("text", "prepared")


def transaction_text(stmts: list[Statement]) -> str:
    """What the text protocol sends for a transaction in one round trip: a single
    statement as it is (run in autocommit, it is its own commit), several joined and
    ending in ``COMMIT`` (run with autocommit off)."""
    if len(stmts) == 1:
        return stmts[0].text
    return ";".join(st.text for st in stmts) + ";COMMIT"


def text_sql(sql: str) -> str:
    """``?`` placeholders as the text protocol's ``%s``. The connector substitutes
    ``%s`` only (it does not %-format), so a literal ``%`` (``quantity % 100``) stays."""
    return sql.replace("?", "%s")


class Session:
    """One connection and its statements, executed by one of two protocols:

    - ``text`` (default): the statement's own literal SQL text (``Statement.text``, built
      by the workload) goes straight to the C extension's raw ``query``: no per-parameter
      conversion, no Python cursor. A transaction of one statement runs in autocommit
      mode, which saves the COMMIT round trip; its statement is then its commit. A
      transaction of several statements travels as one multi-statement text ending in
      ``COMMIT``: one round trip instead of one per statement plus one for COMMIT. The
      server stops at the first failing statement (then we roll back); a connection lost
      during the round trip leaves the COMMIT in doubt, so it is reported as such.
    - ``prepared``: server-side prepared statements, one cached cursor per SQL shape.
      mysql-connector-python 26.10's C extension leaks about 8 bytes per parameter on
      every prepared execute (measured: RSS +560 KiB per 6,000 executes of an 11-parameter
      UPDATE; none with the text protocol or the pure-Python driver) and sends a
      COM_STMT_RESET round trip before each execute, so a long run grows without bound.
    """

    def __init__(self, dsn: Dsn, protocol: str = "text") -> None:
        self._dsn = dsn
        self._prepared = protocol == "prepared"
        self._cursors: dict[str, Any] = {}
        self._open()

    def _open(self) -> None:
        self._conn = connect(self._dsn, multi_statements=not self._prepared)
        # The C extension's raw connection object; None for prepared or pure Python.
        self._raw = None if self._prepared else getattr(self._conn, "_cmysql", None)
        self._autocommit = False

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        """Execute ``stmts`` and commit; return rows changed per statement.

        Raises ``DatabaseError``; the transaction is then rolled back (or the connection
        is gone), and nothing of it may be counted as committed.
        """
        if self._raw is not None:
            return self._run_raw(stmts)
        in_commit = False
        try:
            counts = [self._execute(s) for s in stmts]
            in_commit = True
            self._conn.commit()
            return counts
        except DRIVER_ERRORS as exc:
            self._rollback_quietly()
            raise DatabaseError(classify(exc), _safe_message(exc, self._dsn), in_commit) from None

    def _run_raw(self, stmts: list[Statement]) -> list[int]:
        raw: Any = self._raw
        single = len(stmts) == 1
        in_commit = False
        try:
            if single != self._autocommit:
                raw.autocommit(single)
                self._autocommit = single
            in_commit = True  # the COMMIT (or the autocommit statement) is in this round trip
            raw.query(transaction_text(stmts).encode())
            if single:
                return [int(raw.affected_rows())]
            counts = [int(raw.affected_rows())]
            while raw.more_results():
                raw.next_result()
                counts.append(int(raw.affected_rows()))
            return counts[: len(stmts)]
        except DRIVER_ERRORS as exc:
            self._rollback_quietly()
            raise DatabaseError(classify(exc), _safe_message(exc, self._dsn), in_commit) from None

    def committed(self, probe: CommitProbe) -> bool:
        """Whether a transaction whose COMMIT lost its connection did commit (see
        ``workload.commit_probe``). Raises ``DatabaseError`` if the server cannot say."""
        try:
            self._set_autocommit_off()
        except DRIVER_ERRORS as exc:
            raise DatabaseError(classify(exc), _safe_message(exc, self._dsn)) from None
        return probe_commit(self._conn, probe, self._dsn)

    def _set_autocommit_off(self) -> None:
        if self._autocommit and self._raw is not None:
            self._raw.autocommit(False)
            self._autocommit = False

    def _execute(self, stmt: Statement) -> int:
        cur = self._cursors.get(stmt.sql)
        if cur is None:
            cur = self._conn.cursor(prepared=self._prepared)
            self._cursors[stmt.sql] = cur
        if self._prepared:
            cur.execute(stmt.sql, stmt.params)
        else:  # pure-Python driver: the same literal text, through a cursor
            cur.execute(stmt.text)
        return int(cur.rowcount)

    def _rollback_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.rollback()

    def reconnect(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        for cur in self._cursors.values():
            with contextlib.suppress(Exception):
                cur.close()
        self._cursors.clear()
        with contextlib.suppress(Exception):
            self._conn.close()


def probe_commit(conn: Any, probe: CommitProbe, dsn: Dsn) -> bool:
    """Run ``probe`` in a transaction of its own (autocommit off): True if all of the
    probed transaction's rows are there, False if none; raises ``DatabaseError`` if the
    server cannot say or the answer is partial."""
    try:
        rows = query(conn, text_sql(probe.sql), probe.params)
        conn.commit()
    except DRIVER_ERRORS as exc:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise DatabaseError(classify(exc), _safe_message(exc, dsn)) from None
    found = int(rows[0][0])
    if found not in (probe.absent, probe.expect):
        raise DatabaseError(
            "inconsistent", f"{found} of {probe.expect} rows of one transaction found"
        )
    return found == probe.expect

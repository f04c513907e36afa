"""Connection addresses: ``mysql://user:password@host:port/database[?unix_socket=/path]``.

Pure parsing and redaction. The password lives only in ``Dsn.password`` and in the string
handed to shard processes; everything printed or written uses ``redacted()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_PORT = 3306
ALLOWED_QUERY = ("unix_socket",)


class DsnError(ValueError):
    """A DSN that cannot be parsed; the message names what is allowed, never the password."""


@dataclass(frozen=True, slots=True)
class Dsn:
    user: str
    password: str
    host: str
    port: int
    database: str
    unix_socket: str | None = None

    def redacted(self) -> str:
        pw = ":***" if self.password else ""
        sock = f"?unix_socket={self.unix_socket}" if self.unix_socket else ""
        return f"mysql://{self.user}{pw}@{self.host}:{self.port}/{self.database}{sock}"

    def to_url(self) -> str:
        """Full URL including the password (for shard processes only, never for output)."""
        pw = ":" + quote(self.password, safe="") if self.password else ""
        sock = f"?unix_socket={self.unix_socket}" if self.unix_socket else ""
        user = quote(self.user, safe="")
        return f"mysql://{user}{pw}@{self.host}:{self.port}/{self.database}{sock}"


def _bad(text: str, why: str) -> DsnError:
    return DsnError(
        f"invalid DSN {redact_text(text)!r}: {why}; "
        "expected mysql://user:password@host:port/database[?unix_socket=/path]"
    )


def redact_text(text: str) -> str:
    """Mask a password in a DSN-like string without needing it to parse."""
    if "://" not in text or "@" not in text:
        return text
    scheme, rest = text.split("://", 1)
    creds, _, tail = rest.rpartition("@")
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{tail}"


def parse_dsn(text: str) -> Dsn:
    """Parse a DSN, raising ``DsnError`` with one line naming what is wrong."""
    parts = urlsplit(text)
    if parts.scheme not in ("mysql", "mariadb"):
        raise _bad(text, "scheme must be mysql:// or mariadb://")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise _bad(text, "port must be a number from 1 to 65535") from exc
    if not parts.hostname:
        raise _bad(text, "host is missing")
    if not parts.username:
        raise _bad(text, "user is missing")
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise _bad(text, "database name is missing")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - set(ALLOWED_QUERY))
    if unknown:
        raise _bad(text, f"unknown option {unknown[0]!r} (allowed: unix_socket)")
    sock = query.get("unix_socket", [None])[0]
    return Dsn(
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        host=parts.hostname,
        port=port,
        database=unquote(database),
        unix_socket=sock,
    )


def dsn_from_parts(env: dict[str, str]) -> str | None:
    """Build a DSN from the old generator's MYSQL_HOST/PORT/USER/PASSWORD/DATABASE, if set."""
    if "MYSQL_HOST" not in env:
        return None
    dsn = Dsn(
        user=env.get("MYSQL_USER", "root"),
        password=env.get("MYSQL_PASSWORD", ""),
        host=env["MYSQL_HOST"],
        port=int(env.get("MYSQL_PORT", str(DEFAULT_PORT)) or DEFAULT_PORT),
        database=env.get("MYSQL_DATABASE", "inventory"),
    )
    return dsn.to_url()

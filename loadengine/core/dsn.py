"""Connection addresses: ``mysql://user:password@host:port/database[?unix_socket=/path]``.

Pure parsing and redaction. The password lives only in ``Dsn.password`` and in the string
handed to shard processes; everything printed or written uses ``redacted()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_PORT = 3306
ALLOWED_QUERY = ("unix_socket", "ssl_ca", "ssl_cert", "ssl_key", "ssl_verify")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


# The local RabbitMQ as its packages install it (guest may only log in from localhost): the
# default sink of sink-check, run --sink's examples and the reference pipeline.
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


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
    ssl_ca: str | None = None  # TLS: CA file; with it the server certificate is checked
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify: bool = True  # check the server certificate and host name (needs ssl_ca)

    @property
    def tls(self) -> bool:
        return bool(self.ssl_ca or self.ssl_cert)

    def _query(self) -> str:
        opts = [
            (k, v)
            for k, v in (
                ("unix_socket", self.unix_socket),
                ("ssl_ca", self.ssl_ca),
                ("ssl_cert", self.ssl_cert),
                ("ssl_key", self.ssl_key),
            )
            if v
        ]
        if self.tls:
            opts.append(("ssl_verify", "1" if self.ssl_verify else "0"))
        return ("?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in opts)) if opts else ""

    def redacted(self) -> str:
        pw = ":***" if self.password else ""
        host = _host(self.host)
        return f"mysql://{self.user}{pw}@{host}:{self.port}/{self.database}{self._query()}"

    def to_url(self) -> str:
        """Full URL including the password (for shard processes only, never for output)."""
        pw = ":" + quote(self.password, safe="") if self.password else ""
        user = quote(self.user, safe="")
        host = _host(self.host)
        return f"mysql://{user}{pw}@{host}:{self.port}/{self.database}{self._query()}"


def _host(host: str) -> str:
    """IPv6 literals need brackets inside a URL."""
    return f"[{host}]" if ":" in host else host


def _bad(text: str, why: str) -> DsnError:
    return DsnError(
        f"invalid DSN {redact_text(text)!r}: {why}; "
        "expected mysql://user:password@host:port/database[?unix_socket=/path]"
    )


def redact_text(text: str) -> str:
    """Mask a password in a DSN-like string, even one that does not parse.

    Everything between the first ``:`` of the credentials (after any ``scheme://``) and the
    last ``@`` is masked, so a malformed DSN is never echoed with its password.
    """
    left, at, right = text.rpartition("@")
    if not at:
        return text
    prefix, sep, creds = left.partition("://")
    if not sep:
        prefix, creds = "", left
    user, colon, _ = creds.partition(":")
    masked = f"{user}:***" if colon else creds
    return f"{prefix}{sep}{masked}@{right}"


def parse_dsn(text: str) -> Dsn:
    """Parse a DSN, raising ``DsnError`` with one line naming what is wrong."""
    parts = urlsplit(text)
    if parts.scheme not in ("mysql", "mariadb"):
        raise _bad(text, "scheme must be mysql:// or mariadb://")
    try:
        port = DEFAULT_PORT if parts.port is None else parts.port
    except ValueError as exc:
        raise _bad(text, "port must be a number from 1 to 65535") from exc
    if not 1 <= port <= 65535:
        raise _bad(text, "port must be a number from 1 to 65535")
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
        raise _bad(text, f"unknown option {unknown[0]!r} (allowed: {', '.join(ALLOWED_QUERY)})")
    sock = query.get("unix_socket", [None])[0]
    verify = query.get("ssl_verify", ["1"])[0].lower()
    if verify not in TRUE_WORDS + FALSE_WORDS:
        raise _bad(text, f"ssl_verify {verify!r} must be 1 or 0")
    return Dsn(
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        host=parts.hostname,
        port=port,
        database=unquote(database),
        unix_socket=sock,
        ssl_ca=query.get("ssl_ca", [None])[0],
        ssl_cert=query.get("ssl_cert", [None])[0],
        ssl_key=query.get("ssl_key", [None])[0],
        ssl_verify=verify in TRUE_WORDS,
    )


def dsn_from_parts(env: dict[str, str]) -> str | None:
    """Build a DSN from the old generator's MYSQL_HOST/PORT/USER/PASSWORD/DATABASE, if set."""
    if "MYSQL_HOST" not in env:
        return None
    port_text = env.get("MYSQL_PORT", "") or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise DsnError(f"MYSQL_PORT {port_text!r}: must be a port number from 1 to 65535")
    dsn = Dsn(
        user=env.get("MYSQL_USER", "root"),
        password=env.get("MYSQL_PASSWORD", ""),
        host=env["MYSQL_HOST"].strip("[]"),
        port=int(port_text),
        database=env.get("MYSQL_DATABASE", "inventory"),
    )
    return dsn.to_url()

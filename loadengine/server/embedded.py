"""The private server: a MariaDB/MySQL found on this machine, in a temporary data dir.

Started when no DSN is configured. It uses the project's CDC-ready config
(``loadengine/data/mysql/cdc.cnf``), listens on a free port on 127.0.0.1 only, and is shut down at
the end of the run unless ``--keep-server``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from loadengine import data as package_data
from loadengine.core.dsn import Dsn

SERVER_BINARIES = ("mariadbd", "mysqld")
SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/libexec")
READY_TIMEOUT_S = 30.0


class EmbeddedError(RuntimeError):
    """The private server cannot be had; the message says what to install or pass."""


@dataclass(frozen=True, slots=True)
class ServerBinary:
    path: str
    flavor: str  # "mariadb" or "mysql"


@dataclass(slots=True)
class EmbeddedServer:
    binary: ServerBinary
    base_dir: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: str
    command: tuple[str, ...] = ()

    @property
    def socket_path(self) -> str:
        return os.path.join(self.base_dir, "mysql.sock")

    @property
    def data_dir(self) -> str:
        return os.path.join(self.base_dir, "data")

    def dsn(self, database: str = "inventory") -> Dsn:
        return Dsn("root", "", "127.0.0.1", self.port, database)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def relaunch(self) -> None:
        """Start the server again on the same data dir and port (after a stop or a kill)."""
        self.process = _spawn(list(self.command))
        _wait_ready(self)

    def remove(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)


def find_binary() -> ServerBinary | None:
    for name in SERVER_BINARIES:
        path = shutil.which(name) or next(
            (
                os.path.join(d, name)
                for d in SEARCH_DIRS
                if os.access(os.path.join(d, name), os.X_OK)
            ),
            None,
        )
        if path:
            real = os.path.basename(os.path.realpath(path))
            return ServerBinary(path, "mariadb" if "mariadb" in real else "mysql")
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _install(binary: ServerBinary, data_dir: str, log: str) -> None:
    if binary.flavor == "mariadb":
        tool = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not tool:
            raise EmbeddedError(
                "mariadb-install-db not found; install mariadb-server or pass --dsn"
            )
        cmd = [
            tool,
            "--no-defaults",
            f"--datadir={data_dir}",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
        ]
    else:
        cmd = [binary.path, "--no-defaults", "--initialize-insecure", f"--datadir={data_dir}"]
    if _as_root():
        cmd.append("--user=mysql")
    with open(log, "ab") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    if rc != 0:
        raise EmbeddedError(f"initialising the private server failed (exit {rc}); see {log}")


def _wait_ready(server: EmbeddedServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise EmbeddedError(f"private server exited at start; see {server.log_path}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), 0.2),
        ):
            return
        time.sleep(0.05)
    raise EmbeddedError(
        f"private server not ready after {READY_TIMEOUT_S:.0f}s; see {server.log_path}"
    )


def _spawn(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def start(
    config: str | None = None, port: int | None = None, extra_args: tuple[str, ...] = ()
) -> EmbeddedServer:
    """Install a fresh data dir and start the server; returns when it accepts connections.

    ``config`` is the text of its option file (default: the package's ``mysql/cdc.cnf``),
    written into the temporary dir, so the server never reads a file of the checkout."""
    binary = find_binary()
    if binary is None:
        raise EmbeddedError(
            "no MariaDB/MySQL server binary (mariadbd or mysqld) found: install mariadb-server "
            "(apt-get install mariadb-server) or pass --dsn mysql://user:pass@host:port/db"
        )
    base = tempfile.mkdtemp(prefix="loadengine-server-")
    data, log = os.path.join(base, "data"), os.path.join(base, "server.log")
    tmp = os.path.join(base, "tmp")
    os.makedirs(data)
    os.makedirs(tmp)
    if _as_root():
        for path in (base, data, tmp):
            shutil.chown(path, "mysql", "mysql")
    _install(binary, data, log)
    port = port or free_port()
    cnf = os.path.join(base, "cdc.cnf")
    with open(cnf, "w", encoding="utf-8") as fh:
        fh.write(package_data.server_config() if config is None else config)
    cmd = [
        binary.path,
        f"--defaults-file={cnf}",
        f"--datadir={data}",
        f"--port={port}",
        f"--socket={os.path.join(base, 'mysql.sock')}",
        "--bind-address=127.0.0.1",
        f"--pid-file={os.path.join(base, 'server.pid')}",
        f"--log-error={log}",
        f"--tmpdir={tmp}",
    ]
    if _as_root():
        cmd.append("--user=mysql")
    cmd.extend(extra_args)
    server = EmbeddedServer(binary, base, port, _spawn(cmd), log, tuple(cmd))
    try:
        _wait_ready(server)
    except EmbeddedError:
        server.stop(5)
        raise
    return server

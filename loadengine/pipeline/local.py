"""The whole reference pipeline on one machine: a private server Debezium accepts, a real
Debezium (``loadengine debezium``, a process of its own so that it can be killed and
restarted like a production one) and RabbitMQ. Used by ``loadengine pipeline``, the
pipeline tests and the pipeline benchmarks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from loadengine.core.dsn import DEFAULT_AMQP_URL, Dsn
from loadengine.pipeline.debezium import DebeziumError
from loadengine.pipeline.setup import MARIADB_VERSION_FOR_DEBEZIUM
from loadengine.server import embedded, schema_admin

READY_TIMEOUT_S = 60.0


class ReferencePipeline:
    """``with ReferencePipeline() as p:`` a server at ``p.dsn`` whose changes Debezium
    publishes to ``p.amqp``. ``kill_debezium`` / ``start_debezium`` make outages."""

    def __init__(self, amqp: str = DEFAULT_AMQP_URL, inject_fault: str | None = None) -> None:
        self.amqp, self.inject_fault = amqp, inject_fault
        self.state_dir = Path(tempfile.mkdtemp(prefix="loadengine-debezium-"))
        self.server: embedded.EmbeddedServer | None = None
        self.debezium: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    @property
    def dsn(self) -> Dsn:
        assert self.server is not None
        return self.server.dsn()

    @property
    def log_path(self) -> Path:
        return self.state_dir / "debezium.log"

    def __enter__(self) -> ReferencePipeline:
        binary = embedded.find_binary()
        extra: tuple[str, ...] = ()
        if binary is not None and binary.flavor == "mariadb":
            extra = (f"--version={MARIADB_VERSION_FOR_DEBEZIUM}",)
        self.server = embedded.start(extra_args=extra)
        try:
            schema_admin.init(self.server.dsn())
            self.start_debezium(resume=False)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start_debezium(self, resume: bool = True) -> None:
        """Start ``loadengine debezium`` and wait until it streams."""
        (self.state_dir / "ready.json").unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "loadengine",
            "debezium",
            "--dsn",
            self.dsn.to_url(),
            "--amqp",
            self.amqp,
            "--state-dir",
            str(self.state_dir),
            "--resume" if resume else "--from-start",
        ]
        if self.inject_fault and not resume:
            cmd += ["--inject-fault", self.inject_fault]
        self.log = self.log_path.open("ab")
        self.debezium = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (self.state_dir / "ready.json").exists():
            if self.debezium.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-600:]
                self.kill_debezium()
                raise DebeziumError(f"loadengine debezium did not start streaming: {tail}")
            time.sleep(0.2)

    def kill_debezium(self, sig: int = signal.SIGKILL) -> None:
        if self.debezium is not None and self.debezium.poll() is None:
            os.killpg(self.debezium.pid, sig)
            try:
                self.debezium.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.debezium.pid, signal.SIGKILL)
                self.debezium.wait(10)
        if self.log is not None:
            self.log.close()
            self.log = None

    def close(self) -> None:
        self.kill_debezium(signal.SIGTERM)
        if self.server is not None:
            self.server.stop(30)
            self.server = None

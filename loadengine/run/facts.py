"""What a run learns about its server, as one typed record (the results' ``server``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class ServerFacts:
    """Filled by the runner before and after the load; None where not (yet) known.

    ``row_counters_*`` are the server's ``Handler_*`` counters; ``row_changes`` their
    difference (None when they went backwards: the server restarted mid-run);
    ``binlog_start`` / ``binlog_end`` bound the run's window of the binary log."""

    cdc: dict[str, Any] | None = None  # cdc.readiness: problems and notes
    pid: int | None = None
    binlog_start: dict[str, Any] | None = None
    binlog_end: dict[str, Any] | None = None
    row_counters_before: dict[str, int] | None = None
    row_counters_after: dict[str, int] | None = None
    row_changes: dict[str, int] | None = None
    after_error: str | None = None  # the closing sample could not be taken: why

    def document(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Environment:
    """Where the run ran: versions, the driver that loaded, and the server's settings
    (``queries.server_environment``: an open set, as ``SHOW VARIABLES`` gives them)."""

    loadengine: str = ""
    python: str = ""
    platform: str = ""
    cpu_count: int | None = None
    driver: dict[str, str] = field(default_factory=dict)  # name, version, implementation
    server: dict[str, Any] = field(default_factory=dict)  # empty until connected

    @property
    def flavor(self) -> str:
        return str(self.server.get("flavor", "mariadb"))

    def document(self) -> dict[str, Any]:
        doc = asdict(self)
        if not self.server:
            del doc["server"]  # never connected: nothing to say
        return doc

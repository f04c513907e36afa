"""A run's status and exit codes: the one place they are defined.

The CLI, the runner, the coordinator and the suite all read them from here, so a
results file's ``status`` and the process's exit code can never disagree on spelling.
Pure: signal numbers are constants of the platform, not I/O.
"""

from __future__ import annotations

import signal
from enum import IntEnum
from typing import Final, Literal

Status = Literal["completed", "interrupted", "aborted", "failed"]
COMPLETED: Final[Status] = "completed"
INTERRUPTED: Final[Status] = "interrupted"  # a signal (Ctrl-C, SIGTERM) stopped the load
ABORTED: Final[Status] = "aborted"  # --on-overload abort gave up on the target
FAILED: Final[Status] = "failed"  # the load could not go on (server gone, shard died...)
STATUSES: Final[tuple[Status, ...]] = (COMPLETED, INTERRUPTED, ABORTED, FAILED)


class Exit(IntEnum):
    """Exit codes of ``loadengine run`` (and, where they apply, the other commands)."""

    OK = 0
    FAILED = 1  # the run failed, or an internal error
    USAGE = 2  # bad input: one line, nothing started
    ABORTED = 3  # overload policy 'abort' stopped the run
    AUDIT = 4  # the binary-log audit found a difference
    THRESHOLD = 5  # a threshold failed (or, for ``suite``, a scenario failed)
    SINK = 6  # the sink lost, duplicated, added or reordered changes
    SIGINT = 130
    SIGTERM = 143


EXIT_BY_SIGNAL: Final[dict[int, int]] = {
    int(signal.SIGINT): Exit.SIGINT,
    int(signal.SIGTERM): Exit.SIGTERM,
}

# Exit codes of a run that finished and was judged: its results are a verdict, not a crash.
JUDGED: Final[frozenset[int]] = frozenset(
    {Exit.OK, Exit.ABORTED, Exit.AUDIT, Exit.THRESHOLD, Exit.SINK}
)


def exit_for_status(status: Status) -> Exit:
    """The exit code of a run that ended with ``status`` and no later finding."""
    return {COMPLETED: Exit.OK, ABORTED: Exit.ABORTED}.get(status, Exit.FAILED)


def exit_for_signal(signum: int | None) -> int:
    return EXIT_BY_SIGNAL.get(signum or int(signal.SIGINT), Exit.SIGINT)


class RunError(Exception):
    """A one-line, user-facing reason the run cannot go on; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = Exit.FAILED) -> None:
        super().__init__(message)
        self.code = int(code)

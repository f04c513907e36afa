"""The stop request: set from a signal handler, read by whoever runs the load.

``install`` is called first thing in the entry point, before the heavy imports, so that a
Ctrl-C or SIGTERM at any moment becomes a clean stop with a results file, never a
traceback (see ``__main__``).
"""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Set from a signal handler; read by the coordinator loop."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def set(self, signum: int) -> None:
        self.signum = self.signum or signum

    @property
    def is_set(self) -> bool:
        return self.signum is not None


def install(stop: StopFlag) -> None:
    """Route SIGINT/SIGTERM to ``stop``."""

    def handler(signum: int, _frame: object) -> None:
        stop.set(signum)

    for s in STOP_SIGNALS:
        signal.signal(s, handler)


def restore_defaults() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

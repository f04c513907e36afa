"""A fault the reference pipeline can inject between Debezium and RabbitMQ. Pure.

``drop=N`` leaves out the Nth table change event Debezium hands over; ``duplicate=N``
publishes it twice. A sink checker that misses either is not checking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KINDS = ("drop", "duplicate")


class FaultError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Fault:
    kind: Literal["drop", "duplicate"]
    nth: int  # 1-based, counting table change events (not schema changes)


def parse_fault(text: str) -> Fault:
    kind, _, raw = text.partition("=")
    if kind not in KINDS or not raw.strip().isdigit() or int(raw) < 1:
        raise FaultError(
            f"--inject-fault {text!r}: allowed: drop=N or duplicate=N (N >= 1, the Nth change "
            "event)"
        )
    return Fault("drop" if kind == "drop" else "duplicate", int(raw))

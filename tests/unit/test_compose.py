"""compose/: what can be checked without Docker. The files parse; services, ports and
mounts are consistent; every mounted file exists; the queues RabbitMQ pre-declares are
exactly the topics Debezium will produce, bound by those routing keys."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from loadengine import data
from loadengine.core.schema import ALL_TABLES
from loadengine.pipeline import properties
from loadengine.server.binlog import HEARTBEAT_TABLE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def _properties() -> dict[str, str]:
    out = {}
    out.update(properties.parse(data.debezium_properties()))
    return out


def test_services_images_pinned_and_start_order() -> None:
    services = _compose()["services"]
    assert {"mysql", "rabbitmq", "debezium", "loadengine", "schema"} <= set(services)
    for name in ("mysql", "rabbitmq", "debezium"):
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image
    assert services["mysql"]["image"].startswith("mysql:8")
    deb = services["debezium"]["depends_on"]
    assert deb["mysql"]["condition"] == "service_healthy"
    assert deb["rabbitmq"]["condition"] == "service_healthy"
    assert "healthcheck" in services["mysql"] and "healthcheck" in services["rabbitmq"]
    ports = {p for s in services.values() for p in s.get("ports", [])}
    assert {"3306:3306", "5672:5672", "15672:15672"} <= ports


def test_every_mounted_file_exists_and_debezium_reads_its_config_dir() -> None:
    for name, svc in _compose()["services"].items():
        for vol in svc.get("volumes", []):
            src, _, dst = vol.partition(":")
            if src.startswith(".") and vol.endswith(":ro"):  # inputs; outputs are created
                assert (COMPOSE / src).exists(), f"{name}: {src} missing"
            if name == "debezium" and src.endswith("application.properties"):
                assert dst.startswith("/debezium/config/")
        build = svc.get("build")
        if build:
            assert (COMPOSE / build["context"] / build["dockerfile"]).is_file()


def _pinned_version() -> str:
    return _compose()["services"]["debezium"]["image"].rsplit(":", 1)[1]


def test_compose_pins_the_debezium_server_loadengine_debezium_runs() -> None:
    """One configuration, one version: the routing rules loadengine debezium applies are
    those of the Debezium Server image compose/ runs."""
    assert _pinned_version() == properties.SERVER_VERSION
    mounts = _compose()["services"]["debezium"]["volumes"]
    assert any(v.startswith("../loadengine/data/debezium/application.properties:") for v in mounts)


def test_every_topic_reaches_a_queue_under_the_pinned_versions_routing() -> None:
    """Each table's topic, and the schema-change topic, routed as the pinned Debezium
    Server routes it, lands in a pre-declared durable queue (RabbitMQ drops the rest)."""
    props = _properties()
    config = properties.from_properties(props, _pinned_version())
    assert config.ignored == ()
    assert props["debezium.format.value.schemas.enable"] == "false"
    prefix, db = config.topic_prefix, config.source["database.include.list"]
    topics = {f"{prefix}.{db}.{t}" for t in (*ALL_TABLES, HEARTBEAT_TABLE)} | {prefix}
    defs = json.loads((ROOT / "loadengine" / "data" / "rabbitmq" / "definitions.json").read_text())
    exchange = config.sink.exchange
    assert [e["name"] for e in defs["exchanges"]] == [exchange]
    assert defs["exchanges"][0]["type"] == "direct" and defs["exchanges"][0]["durable"]
    assert all(q["durable"] for q in defs["queues"])
    bound = {(b["source"], b["routing_key"]) for b in defs["bindings"]}
    for topic in topics:
        key = config.sink.routing_key_for(topic, '{"id":1}')
        assert (config.sink.exchange_for(topic), key) in bound, topic


def test_the_old_pin_would_have_dropped_every_event() -> None:
    """Debezium Server 3.0.7 does not read routingKey.source: with this file every event
    would carry routing key "" and no queue is bound to it."""
    config = properties.from_properties(_properties(), "3.0.7.Final")
    assert config.ignored == ("debezium.sink.rabbitmq.routingKey.source",)
    assert config.sink.routing_key_for("inventory.inventory.customers", None) == ""


def test_mysql_config_is_the_projects_cdc_config_with_gtids() -> None:
    mounts = _compose()["services"]["mysql"]["volumes"]
    assert any(v.startswith("../loadengine/data/mysql/cdc.cnf:") for v in mounts)
    cnf = (ROOT / "loadengine" / "data" / "mysql" / "cdc.cnf").read_text()
    for setting in ("binlog_format", "binlog_row_image", "server-id", "log-bin", "gtid_mode"):
        assert setting in cnf
    init = (COMPOSE / "mysql" / "init.sql").read_text()
    assert "REPLICATION SLAVE" in init and "REPLICATION CLIENT" in init and "debezium" in init

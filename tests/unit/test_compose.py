"""compose/: what can be checked without Docker. The files parse; services, ports and
mounts are consistent; every mounted file exists; the queues RabbitMQ pre-declares are
exactly the topics Debezium will produce, bound by those routing keys."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from loadengine.core.schema import ALL_TABLES
from loadengine.server.binlog import HEARTBEAT_TABLE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def _properties() -> dict[str, str]:
    out = {}
    for line in (COMPOSE / "debezium" / "application.properties").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
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


def test_queues_match_the_topics_debezium_produces() -> None:
    props = _properties()
    assert props["debezium.sink.type"] == "rabbitmq"
    assert props["debezium.sink.rabbitmq.routingKey.source"] == "topic"
    assert props["debezium.format.value.schemas.enable"] == "false"
    prefix, db = (
        props["debezium.source.topic.prefix"],
        props["debezium.source.database.include.list"],
    )
    topics = {f"{prefix}.{db}.{t}" for t in (*ALL_TABLES, HEARTBEAT_TABLE)}
    defs = json.loads((COMPOSE / "rabbitmq" / "definitions.json").read_text())
    exchange = props["debezium.sink.rabbitmq.exchange"]
    assert [e["name"] for e in defs["exchanges"]] == [exchange]
    assert defs["exchanges"][0]["type"] == "direct" and defs["exchanges"][0]["durable"]
    assert {q["name"] for q in defs["queues"]} == topics
    assert all(q["durable"] for q in defs["queues"])
    bound = {(b["source"], b["destination"], b["routing_key"]) for b in defs["bindings"]}
    assert bound == {(exchange, t, t) for t in topics}


def test_mysql_config_is_the_projects_cdc_config_with_gtids() -> None:
    mounts = _compose()["services"]["mysql"]["volumes"]
    assert any(v.startswith("../loadengine/data/mysql/cdc.cnf:") for v in mounts)
    cnf = (ROOT / "loadengine" / "data" / "mysql" / "cdc.cnf").read_text()
    for setting in ("binlog_format", "binlog_row_image", "server-id", "log-bin", "gtid_mode"):
        assert setting in cnf
    init = (COMPOSE / "mysql" / "init.sql").read_text()
    assert "REPLICATION SLAVE" in init and "REPLICATION CLIENT" in init and "debezium" in init

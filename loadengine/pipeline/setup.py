"""From ``loadengine debezium``'s options to a ``DebeziumPlan``.

The Debezium Server configuration is read whole (``properties``); only where the database
and the broker are, and where offsets and schema history go, are replaced. Against
MariaDB the connector needs MariaDB Connector/J and a server that reports a 5.7-style
version (Debezium 3.6 asks a server above 8.2 for ``SHOW BINARY LOG STATUS``, which
MariaDB 10.11 does not have): ``loadengine server --debezium`` starts one.
"""

from __future__ import annotations

from pathlib import Path

from loadengine import data
from loadengine.core.dsn import Dsn
from loadengine.pipeline import debezium, properties
from loadengine.pipeline.fault import Fault

MARIADB_VERSION_FOR_DEBEZIUM = "5.7.44-MariaDB-log"


def read_config(path: str | None, version: str) -> properties.DebeziumServerConfig:
    if path is None:
        return properties.from_properties(
            properties.parse(data.debezium_properties()), version, "loadengine/data/debezium"
        )
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise properties.PropertiesError(f"--config {path!r}: cannot read it ({exc})") from None
    return properties.from_properties(properties.parse(text, path), version, path)


def server_version(dsn: Dsn) -> str:
    from loadengine.server import database

    conn = database.connect(dsn)
    try:
        return str(database.query(conn, "SELECT VERSION()")[0][0])
    finally:
        conn.close()


def jdbc_for(version: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """Connector properties and extra classpath for the server that reports ``version``."""
    if "mariadb" not in version.lower():
        return {}, ()
    if not version.startswith("5.7"):
        raise debezium.DebeziumError(
            f"server version {version!r}: Debezium 3.6 needs a 5.7-style version from "
            f"MariaDB (mariadbd --version={MARIADB_VERSION_FOR_DEBEZIUM}; "
            "loadengine server --debezium starts one)"
        )
    if not Path(debezium.MARIADB_JAR).is_file():
        raise debezium.DebeziumError(
            "MariaDB needs MariaDB Connector/J: apt-get install libmariadb-java"
        )
    jdbc = {"database.jdbc.driver": "org.mariadb.jdbc.Driver", "database.protocol": "jdbc:mariadb"}
    return jdbc, (debezium.MARIADB_JAR,)


def build_plan(
    config: properties.DebeziumServerConfig,
    dsn: Dsn,
    version: str,
    amqp_url: str,
    state_dir: Path,
    interval_s: float,
    fault: Fault | None,
    declare: bool = True,
) -> debezium.DebeziumPlan:
    if dsn.unix_socket or not dsn.host:
        raise debezium.DebeziumError("--dsn: Debezium connects over TCP; give host:port")
    jdbc, classpath = jdbc_for(version)
    engine = {
        **config.source,
        "database.hostname": dsn.host,
        "database.port": str(dsn.port),
        "database.user": dsn.user,
        "database.password": dsn.password,
        "offset.storage.file.filename": str(state_dir / "offsets.dat"),
        "schema.history.internal.file.filename": str(state_dir / "schema_history.dat"),
        **jdbc,
    }
    definitions = data.rabbitmq_definitions() if declare else None
    return debezium.DebeziumPlan(
        config, engine, amqp_url, state_dir.resolve(), classpath, interval_s, fault, definitions
    )

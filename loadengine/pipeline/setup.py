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

# A 5.7-style version without "MariaDB" in it: with the word, Debezium's binlog client asks
# for MariaDB's transaction markers, which the MySQL connector does not understand; its
# offsets then say "N rows into the next event" and a restart skips those rows (seen:
# 18 and 118 rows lost after SIGKILL). Without it the server sends plain BEGIN events.
MARIADB_VERSION_FOR_DEBEZIUM = "5.7.44-log"


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


def server_identity(dsn: Dsn) -> tuple[str, str]:
    """The server's version and flavor (``mariadb`` or ``mysql``)."""
    from loadengine.server import database, queries

    conn = database.connect(dsn)
    try:
        env = queries.server_environment(conn)
    finally:
        conn.close()
    return str(env.get("version", "")), str(env["flavor"])


def jdbc_for(version: str, flavor: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """Connector properties and extra classpath for the server that reports ``version``."""
    if flavor != "mariadb":
        return {}, ()
    if not version.startswith("5.7") or "mariadb" in version.lower():
        raise debezium.DebeziumError(
            f"server version {version!r}: Debezium 3.6's MySQL connector needs MariaDB to "
            f"report a MySQL 5.7 version (mariadbd --version={MARIADB_VERSION_FOR_DEBEZIUM}; "
            "loadengine server --debezium starts one; docs/pipeline.md says why)"
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
    server: tuple[str, str],
    amqp_url: str,
    state_dir: Path,
    interval_s: float,
    fault: Fault | None,
    declare: bool = True,
) -> debezium.DebeziumPlan:
    if dsn.unix_socket or not dsn.host:
        raise debezium.DebeziumError("--dsn: Debezium connects over TCP; give host:port")
    jdbc, classpath = jdbc_for(*server)
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

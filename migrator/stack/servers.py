"""The stack's servers, started from the resolved jars: Kafka broker, Apicurio, Connect, QStash.

Each ``start_*`` writes the server's config into the run directory, spawns it detached and
returns the process; each ``*_ready`` is the readiness check ``migrator dev up`` waits on.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from migrator.errors import StackError
from migrator.stack.java import find_java
from migrator.stack.maven import StackJars
from migrator.stack.process import free_port, spawn
from migrator.stack.tls import make_tls_files

__all__ = [
    "BrokerPorts",
    "broker_ready",
    "connect_ready",
    "format_storage",
    "new_cluster_id",
    "qstash_available",
    "qstash_ready",
    "registry_ready",
    "start_broker",
    "start_connect",
    "start_qstash",
    "start_registry",
]

JVM_OPTS = ["-Xss512k", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]
QUICK_START = ["-XX:TieredStopAtLevel=1"]

_LOG4J = """\
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.err.ref = ERR
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


_SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class BrokerPorts:
    plaintext: int
    sasl: int
    controller: int
    ssl: int


def new_cluster_id() -> str:
    """A Kafka cluster id (base64url of 16 random bytes, no padding), made without a JVM."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def _log4j(run: Path, level: str = "warn") -> Path:
    path = run / f"log4j2-{level}.properties"
    if not path.exists():
        path.write_text(_LOG4J.format(level=level), encoding="utf-8")
    return path


def _java(jars: StackJars, run: Path, heap: str, main: str, *args: str,
          quick: bool = False, level: str = "warn") -> list[str]:
    opts = [*JVM_OPTS, *(QUICK_START if quick else []), f"-Xmx{heap}",
            f"-Dlog4j2.configurationFile={_log4j(run, level)}", f"-Dkafka.logs.dir={run / 'logs'}"]
    extra = os.environ.get("MIGRATOR_STACK_JVM_OPTS", "").split()
    return ["java", *opts, *extra, "-cp", jars.classpath, main, *args]


def _broker_properties(run: Path, ports: BrokerPorts,
                       extra_properties: Mapping[str, str] | None = None) -> Path:
    """Write server.properties; ``extra_properties`` are appended (a later key wins in Java's
    Properties, so they can also override a default line)."""
    make_tls_files(run / "tls")
    p = ports
    text = f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{p.controller}
listeners=PLAINTEXT://127.0.0.1:{p.plaintext},SASL_PLAINTEXT://127.0.0.1:{p.sasl},SSL://127.0.0.1:{p.ssl},CONTROLLER://127.0.0.1:{p.controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{p.plaintext},SASL_PLAINTEXT://127.0.0.1:{p.sasl},SSL://127.0.0.1:{p.ssl},CONTROLLER://127.0.0.1:{p.controller}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location={run / "tls" / "broker-keystore.pem"}
sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={_SCRAM_JAAS}
log.dirs={run / "data" / "kafka"}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
background.threads=2
num.recovery.threads.per.data.dir=1
auto.create.topics.enable=true
message.max.bytes=10485760
"""
    for key, value in (extra_properties or {}).items():
        text += f"{key}={value}\n"
    path = run / "server.properties"
    path.write_text(text, encoding="utf-8")
    return path


def format_storage(jars: StackJars, run: Path, ports: BrokerPorts, cluster_id: str,
                   sasl_user: str, sasl_password: str,
                   extra_properties: Mapping[str, str] | None = None) -> None:
    """Format the KRaft log dir with the SCRAM user; raises StackError with Kafka's words.

    ``extra_properties`` are appended to the server.properties this writes (and the broker
    started by :func:`start_broker` reads), e.g. an authorizer for a test broker.
    """
    props = _broker_properties(run, ports, extra_properties)
    scram = f"SCRAM-SHA-256=[name={sasl_user},password={sasl_password}]"
    cmd = _java(jars, run, "256m", "kafka.tools.StorageTool", "format", "--standalone",
                "-t", cluster_id, "-c", str(props), "--add-scram", scram, quick=True)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        out = (result.stdout + result.stderr).replace(sasl_password, "**********")
        raise StackError(f"Formatting Kafka's storage failed:\n{out.strip()[-2000:]}")


def start_broker(jars: StackJars, run: Path) -> subprocess.Popen[bytes]:
    cmd = _java(jars, run, "768m", "kafka.Kafka", str(run / "server.properties"))
    return spawn(cmd, run / "logs" / "kafka.log")


def broker_ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0})
    cluster = admin.describe_cluster(request_timeout=2).result()
    return bool(cluster.nodes)


def start_registry(jars: StackJars, run: Path, port: int) -> subprocess.Popen[bytes]:
    java = find_java(21, purpose="Apicurio Registry 3.3")
    cmd = [java, *JVM_OPTS, *QUICK_START, "-Xmx384m",
           "-Dquarkus.http.host=127.0.0.1", f"-Dquarkus.http.port={port}",
           # Apicurio serves health/metrics on a management port (9000, all interfaces, by default).
           "-Dquarkus.management.host=127.0.0.1", f"-Dquarkus.management.port={free_port()}",
           "-Dapicurio.rules.global.compatibility=BACKWARD",
           "-Dapicurio.datasource.jdbc.initial-size=2", "-Dapicurio.datasource.jdbc.min-size=2",
           "-Dquarkus.log.level=WARN",
           "-jar", str(jars.apicurio_jar)]
    return spawn(cmd, run / "logs" / "registry.log", cwd=jars.apicurio_jar.parent)


def registry_ready(url: str) -> bool:
    return httpx.get(f"{url}/subjects", timeout=2).status_code == 200


def start_connect(jars: StackJars, run: Path, bootstrap: str, port: int) -> subprocess.Popen[bytes]:
    text = f"""\
bootstrap.servers={bootstrap}
group.id=migrator-dev-connect
listeners=http://127.0.0.1:{port}
rest.advertised.host.name=127.0.0.1
rest.advertised.port={port}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=false
config.storage.topic=_connect-configs
offset.storage.topic=_connect-offsets
status.storage.topic=_connect-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.storage.partitions=1
status.storage.partitions=1
offset.flush.interval.ms=1000
plugin.discovery=service_load
"""
    props = run / "connect.properties"
    props.write_text(text, encoding="utf-8")
    cmd = _java(jars, run, "512m", "org.apache.kafka.connect.cli.ConnectDistributed", str(props),
                quick=True)
    return spawn(cmd, run / "logs" / "connect.log")


def connect_ready(url: str) -> bool:
    return httpx.get(f"{url}/health", timeout=2).status_code == 200


def start_qstash(run: Path, port: int, token: str, current_key: str, next_key: str,
                 backoff_scale: float = 1.0) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "migrator.qstash_server", "--host", "127.0.0.1",
           "--port", str(port), "--db", str(run / "data" / "qstash.sqlite3"),
           "--token", token, "--current-signing-key", current_key, "--next-signing-key", next_key,
           "--backoff-scale", str(backoff_scale)]
    return spawn(cmd, run / "logs" / "qstash.log")


def qstash_ready(url: str, token: str) -> bool:
    reply = httpx.get(f"{url}/v2/queues", headers={"Authorization": f"Bearer {token}"}, timeout=2)
    return reply.status_code == 200


def qstash_available() -> bool:
    """Whether the local QStash server's package is importable in this installation."""
    import importlib.util

    try:
        return importlib.util.find_spec("migrator.qstash_server.__main__") is not None
    except ModuleNotFoundError:
        return False


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

from migrator.config import QStashConnection
from migrator.errors import StackError
from migrator.stack.java import find_java
from migrator.stack.maven import StackJars
from migrator.stack.process import free_port, spawn
from migrator.stack.tls import make_tls_files

__all__ = [
    "SASL_SSL_MECHANISMS",
    "BrokerPorts",
    "broker_ready",
    "connect_ready",
    "format_storage",
    "new_cluster_id",
    "oidc_jvm_options",
    "oidc_ready",
    "qstash_missing",
    "qstash_ready",
    "registry_ready",
    "start_broker",
    "start_connect",
    "start_oidc",
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
# The SASL_SSL listener's mechanisms, as managed services offer them (Upstash Kafka: SCRAM over
# TLS; Confluent Cloud: PLAIN API keys over TLS). One user for all, created at format time.
SASL_SSL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class BrokerPorts:
    plaintext: int
    sasl: int
    controller: int
    ssl: int
    sasl_ssl: int | None = None
    """SASL_SSL listener (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN); None: no such listener."""
    mtls: int | None = None
    """SSL listener requiring a client certificate signed by the stack's CA; None: none."""
    oauth: int | None = None
    """SASL_SSL listener with OAUTHBEARER tokens from the stack's OIDC issuer; None: none."""


def new_cluster_id() -> str:
    """A Kafka cluster id (base64url of 16 random bytes, no padding), made without a JVM.

    Never one starting with ``-`` (1 in 64 would): the storage tool's argument parser takes it
    for an option and `dev up` failed with "argument --cluster-id/-t: expected one argument";
    Kafka's own ``Uuid.randomUuid`` skips those too."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


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


def _sasl_ssl_lines(run: Path, user: str, password: str) -> str:
    """The SASL_SSL listener's settings: the stack's TLS keystore, SCRAM (users in the metadata
    log, added at format) and PLAIN (a static JAAS user; this file is readable by its owner only)."""
    plain = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
             f'user_{user}="{password}";')
    return f"""\
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={run / "tls" / "broker-keystore.pem"}
listener.name.sasl_ssl.sasl.enabled.mechanisms={",".join(SASL_SSL_MECHANISMS)}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={_SCRAM_JAAS}
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={_SCRAM_JAAS}
listener.name.sasl_ssl.plain.sasl.jaas.config={plain}
"""


def _oauth_lines(run: Path, oidc_url: str) -> str:
    """The OAUTHBEARER listener: TLS, then a JWT the issuer at ``oidc_url`` signed (KIP-768)."""
    handler = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
    module = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
    return f"""\
listener.name.oauth.ssl.keystore.type=PEM
listener.name.oauth.ssl.keystore.location={run / "tls" / "broker-keystore.pem"}
listener.name.oauth.sasl.enabled.mechanisms=OAUTHBEARER
listener.name.oauth.oauthbearer.sasl.jaas.config={module} required;
listener.name.oauth.oauthbearer.sasl.server.callback.handler.class={handler}
sasl.oauthbearer.jwks.endpoint.url={oidc_url}/jwks
sasl.oauthbearer.expected.audience=kafka
sasl.oauthbearer.expected.issuer={oidc_url}
"""


def oidc_jvm_options(oidc_url: str | None) -> list[str]:
    """Kafka 4 fetches OAuth URLs only when they are allowed by this system property."""
    if oidc_url is None:
        return []
    return [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={oidc_url}/jwks,{oidc_url}/token"]


def _broker_properties(run: Path, ports: BrokerPorts,
                       extra_properties: Mapping[str, str] | None = None,
                       sasl_user: str = "", sasl_password: str = "",
                       oidc_url: str | None = None) -> Path:
    """Write server.properties; ``extra_properties`` are appended (a later key wins in Java's
    Properties, so they can also override a default line)."""
    make_tls_files(run / "tls")
    p = ports
    listeners = (f"PLAINTEXT://127.0.0.1:{p.plaintext},SASL_PLAINTEXT://127.0.0.1:{p.sasl},"
                 f"SSL://127.0.0.1:{p.ssl},CONTROLLER://127.0.0.1:{p.controller}")
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL"
    if p.sasl_ssl is not None:
        listeners += f",SASL_SSL://127.0.0.1:{p.sasl_ssl}"
        protocols += ",SASL_SSL:SASL_SSL"
    if p.mtls is not None:
        listeners += f",MTLS://127.0.0.1:{p.mtls}"
        protocols += ",MTLS:SSL"
    if p.oauth is not None:
        if oidc_url is None:
            raise StackError("the OAUTHBEARER listener needs the OIDC issuer's URL")
        listeners += f",OAUTH://127.0.0.1:{p.oauth}"
        protocols += ",OAUTH:SASL_SSL"
    text = f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{p.controller}
listeners={listeners}
advertised.listeners={listeners}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map={protocols}
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
    if p.sasl_ssl is not None:
        text += _sasl_ssl_lines(run, sasl_user, sasl_password)
    if p.mtls is not None:
        tls = run / "tls"
        text += f"""\
listener.name.mtls.ssl.keystore.type=PEM
listener.name.mtls.ssl.keystore.location={tls / "broker-keystore.pem"}
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location={tls / "ca.pem"}
listener.name.mtls.ssl.client.auth=required
"""
    if p.oauth is not None and oidc_url is not None:
        text += _oauth_lines(run, oidc_url)
    for key, value in (extra_properties or {}).items():
        text += f"{key}={value}\n"
    path = run / "server.properties"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")
    return path


def format_storage(jars: StackJars, run: Path, ports: BrokerPorts, cluster_id: str,
                   sasl_user: str, sasl_password: str,
                   extra_properties: Mapping[str, str] | None = None,
                   oidc_url: str | None = None) -> None:
    """Format the KRaft log dir with the SCRAM user; raises StackError with Kafka's words.

    ``extra_properties`` are appended to the server.properties this writes (and the broker
    started by :func:`start_broker` reads), e.g. an authorizer for a test broker.
    """
    props = _broker_properties(run, ports, extra_properties, sasl_user, sasl_password, oidc_url)
    scram = []
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        scram += ["--add-scram", f"{mechanism}=[name={sasl_user},password={sasl_password}]"]
    cmd = _java(jars, run, "256m", "kafka.tools.StorageTool", "format", "--standalone",
                "-t", cluster_id, "-c", str(props), *scram, quick=True)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        out = (result.stdout + result.stderr).replace(sasl_password, "**********")
        raise StackError(f"Formatting Kafka's storage failed:\n{out.strip()[-2000:]}")


def start_broker(jars: StackJars, run: Path, oidc_url: str | None = None
                 ) -> subprocess.Popen[bytes]:
    cmd = _java(jars, run, "768m", "kafka.Kafka", str(run / "server.properties"))
    cmd[1:1] = oidc_jvm_options(oidc_url)
    return spawn(cmd, run / "logs" / "kafka.log")


def start_oidc(run: Path, port: int, client_id: str, client_secret: str
               ) -> subprocess.Popen[bytes]:
    """The local OIDC issuer (:mod:`migrator.stack.oidc`); the secret travels in the environment."""
    cmd = [sys.executable, "-m", "migrator.stack.oidc", "--port", str(port),
           "--client-id", client_id]
    env = {**os.environ, "MIGRATOR_OIDC_CLIENT_SECRET": client_secret}
    return spawn(cmd, run / "logs" / "oidc.log", env=env)


def oidc_ready(url: str) -> bool:
    return httpx.get(f"{url}/jwks", timeout=2).status_code == 200


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
    cmd = [sys.executable, "-m", "qstash_server", "--host", "127.0.0.1",
           "--port", str(port), "--db", str(run / "data" / "qstash.sqlite3"),
           "--token", token, "--current-signing-key", current_key, "--next-signing-key", next_key,
           "--backoff-scale", str(backoff_scale)]
    return spawn(cmd, run / "logs" / "qstash.log")


def qstash_ready(qstash: QStashConnection | None) -> bool:
    if qstash is None:
        return False
    reply = httpx.get(f"{qstash.url}/v2/queues", headers={"Authorization": f"Bearer {qstash.bearer}"},
                      timeout=2)
    return reply.status_code == 200


def qstash_missing() -> str | None:
    """Why the local QStash server cannot run here (one line), or None when it can."""
    try:
        from qstash_server import missing_dependencies
    except ImportError:
        return ("the local QStash server is not installed; install it with: "
                "pip install 'kafka-qstash-migrator[server]'")
    return missing_dependencies()

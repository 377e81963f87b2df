"""The optional container engine: the same stack on a Docker engine, through testcontainers.

Only for machines that have a Docker engine (`pip install 'kafka-qstash-migrator[testcontainers]'`).
The containers outlive this process (the testcontainers reaper is disabled for them) and are
recorded in the state file so `migrator dev down` removes them. The local QStash server still runs
as a local process. Untested in this project's CI, which has no Docker engine.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from migrator.errors import StackError
from migrator.stack import servers
from migrator.stack.process import free_port, wait_until
from migrator.stack.state import StackInfo, load_state, save_state

__all__ = ["KAFKA_IMAGE", "REGISTRY_IMAGE", "docker_available", "down_containers", "up_containers"]

KAFKA_IMAGE = "apache/kafka:4.1.1"
REGISTRY_IMAGE = "apicurio/apicurio-registry:3.3.3"


def docker_available() -> bool:
    try:
        import docker  # installed with testcontainers

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def up_containers(run_dir: Path, *, timeout: float = 180.0) -> tuple[StackInfo, bool]:
    """Start Kafka (KRaft, PLAINTEXT + SCRAM), Apicurio and Connect as containers."""
    current = load_state(run_dir)
    if current is not None:
        return current, True
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError:
        raise StackError(
            "--engine testcontainers needs the optional extra: "
            "pip install 'kafka-qstash-migrator[testcontainers]'."
        ) from None
    if not docker_available():
        raise StackError(
            "--engine testcontainers needs a running Docker engine and none answers; "
            "use the default engine (--engine jars), which needs only Java and Maven."
        )
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    run_dir.mkdir(parents=True, exist_ok=True)
    plain, sasl, sr_port, connect_port = free_port(), free_port(), free_port(), free_port()
    user, password = "migrator", secrets.token_urlsafe(18)
    cluster_id = servers.new_cluster_id()
    kafka: Any = (
        DockerContainer(KAFKA_IMAGE).with_kwargs(network_mode="host")
        .with_env("KAFKA_NODE_ID", "1").with_env("CLUSTER_ID", cluster_id)
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},"
                  f"CONTROLLER://127.0.0.1:{free_port()}")
        .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                  "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
        .with_env("KAFKA_SASL_ENABLED_MECHANISMS", "SCRAM-SHA-256")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    kafka.start()
    ids = [kafka.get_wrapped_container().id]
    bootstrap = f"127.0.0.1:{plain}"
    wait_until(lambda: servers.broker_ready(bootstrap), timeout=timeout, what="Kafka container")
    code, _out = kafka.exec(["/opt/kafka/bin/kafka-configs.sh", "--bootstrap-server", bootstrap,
                            "--alter", "--add-config",
                            f"SCRAM-SHA-256=[password={password}]", "--entity-type", "users",
                            "--entity-name", user])
    if code != 0:
        raise StackError("Could not create the SCRAM user in the Kafka container.")
    registry: Any = (DockerContainer(REGISTRY_IMAGE).with_kwargs(network_mode="host")
                     .with_env("QUARKUS_HTTP_PORT", str(sr_port))
                     .with_env("APICURIO_RULES_GLOBAL_COMPATIBILITY", "BACKWARD"))
    registry.start()
    ids.append(registry.get_wrapped_container().id)
    connect: Any = (DockerContainer(KAFKA_IMAGE).with_kwargs(network_mode="host")
                    .with_command(["bash", "-c",
                                   "printf 'bootstrap.servers=%s\\ngroup.id=dev-connect\\nlisteners=http://127.0.0.1:%s\\n"
                                   "key.converter=org.apache.kafka.connect.storage.StringConverter\\n"
                                   "value.converter=org.apache.kafka.connect.json.JsonConverter\\n"
                                   "value.converter.schemas.enable=false\\nconfig.storage.topic=_connect-configs\\n"
                                   "offset.storage.topic=_connect-offsets\\nstatus.storage.topic=_connect-status\\n"
                                   "config.storage.replication.factor=1\\noffset.storage.replication.factor=1\\n"
                                   "status.storage.replication.factor=1\\nplugin.path=/opt/kafka/libs\\n' "
                                   f"{bootstrap} {connect_port} > /tmp/c.properties && "
                                   "/opt/kafka/bin/connect-distributed.sh /tmp/c.properties"]))
    connect.start()
    ids.append(connect.get_wrapped_container().id)
    registry_url = f"http://127.0.0.1:{sr_port}/apis/ccompat/v7"
    connect_url = f"http://127.0.0.1:{connect_port}"
    wait_until(lambda: servers.registry_ready(registry_url), timeout=timeout, what="Apicurio container")
    wait_until(lambda: servers.connect_ready(connect_url), timeout=timeout, what="Connect container")
    (run_dir / "containers.txt").write_text("\n".join(ids), encoding="utf-8")
    info = StackInfo(engine="testcontainers", bootstrap_servers=bootstrap,
                     sasl_bootstrap_servers=f"127.0.0.1:{sasl}", sasl_username=user,
                     sasl_password=password, schema_registry_url=registry_url,
                     connect_url=connect_url, cluster_id=cluster_id, run_dir=str(run_dir),
                     lib_dir="")
    save_state(info)
    return info, False


def down_containers(run_dir: Path) -> None:
    """Remove the containers recorded for this run directory."""
    listing = run_dir / "containers.txt"
    if not listing.exists():
        return
    import docker

    client = docker.from_env(timeout=10)
    for container_id in listing.read_text(encoding="utf-8").split():
        try:
            client.containers.get(container_id).remove(force=True)
        except Exception:  # already gone
            continue

"""The local stack as a whole: bring it up, describe it, tear it down.

``up`` starts the registry, formats and starts the broker, then Connect and the local QStash
server; it returns a :class:`StackInfo` once every server answers its readiness check. The state
file in the run directory lets later commands (``status``, ``logs``, ``down``, the test harness)
find the running stack. ``up`` on a running stack returns it unchanged.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from migrator.config import QStashConnection
from migrator.errors import StackError
from migrator.stack import servers
from migrator.stack.java import find_java
from migrator.stack.maven import StackJars, cached_jars, require_tools, resolve_jars
from migrator.stack.process import free_port, is_alive, port_taken, stop, tail, wait_until
from migrator.stack.state import ProcessInfo, StackInfo, load_state, save_state

__all__ = ["ServerStatus", "down", "logs", "status", "up"]

log = logging.getLogger(__name__)

SERVERS = ("oidc", "registry", "kafka", "connect", "qstash")
_BIND_ATTEMPTS = 3


@dataclass(frozen=True)
class ServerStatus:
    name: str
    pid: int
    alive: bool
    ready: bool


def up(run_dir: Path, *, timeout: float = 180.0, qstash_backoff_scale: float = 1.0,
       progress: Callable[[str], None] = lambda _msg: None) -> tuple[StackInfo, bool]:
    """Start the stack (or find it running). Returns the stack and whether it was already up."""
    current = load_state(run_dir)
    if current is not None:
        if all(s.alive for s in status(run_dir)):
            return current, True
        log.warning("a previous stack in %s is partly dead; cleaning it up", run_dir)
        down(run_dir)
    require_tools("java")
    if cached_jars() is None:
        require_tools("mvn")
    find_java(21, purpose="Apicurio Registry 3.3")
    progress("resolving jars (Maven Central, cached after the first run)")
    shutil.rmtree(run_dir / "data", ignore_errors=True)  # leftovers of a failed start
    run_dir.mkdir(parents=True, exist_ok=True)
    jars = resolve_jars(log=run_dir / "logs" / "maven.log")
    for attempt in range(1, _BIND_ATTEMPTS + 1):
        started: list[tuple[str, subprocess.Popen[bytes]]] = []
        chosen: list[int] = []
        try:
            info = _start_all(jars, run_dir, timeout, qstash_backoff_scale, started, progress,
                              chosen)
        except BaseException as exc:
            for _name, proc in reversed(started):
                stop(proc, grace=5)
            # A free port can be taken by another process between choosing and binding it: with
            # ours stopped, a chosen port some other process listens on tells (EADDRINUSE).
            if isinstance(exc, StackError) and attempt < _BIND_ATTEMPTS \
                    and any(port_taken(port) for port in chosen):
                progress("a chosen port was taken meanwhile; starting again on other ports")
                shutil.rmtree(run_dir / "data", ignore_errors=True)
                shutil.rmtree(run_dir / "logs", ignore_errors=True)
                continue
            raise
        save_state(info)
        return info, False
    raise AssertionError("unreachable")


def _start_all(jars: StackJars, run: Path, timeout: float, backoff_scale: float,
               started: list[tuple[str, subprocess.Popen[bytes]]],
               progress: Callable[[str], None], chosen: list[int]) -> StackInfo:
    def port() -> int:
        chosen.append(free_port())
        return chosen[-1]

    ports = servers.BrokerPorts(port(), port(), port(), port(), port(), port(), port())
    sr_port, connect_port, qstash_port = port(), port(), port()
    bootstrap = f"127.0.0.1:{ports.plaintext}"
    sasl_user, sasl_password = "migrator", secrets.token_urlsafe(18)
    cluster_id = servers.new_cluster_id()
    registry_url = f"http://127.0.0.1:{sr_port}/apis/ccompat/v7"
    connect_url = f"http://127.0.0.1:{connect_port}"
    logs_dir = run / "logs"

    progress("starting Apicurio Registry")
    started.append(("registry", servers.start_registry(jars, run, sr_port)))
    progress("starting the OIDC issuer (OAUTHBEARER listener)")
    oidc_url, oidc_secret = f"http://127.0.0.1:{port()}", secrets.token_urlsafe(18)
    oidc = servers.start_oidc(run, int(oidc_url.rsplit(":", 1)[1]), sasl_user, oidc_secret)
    started.append(("oidc", oidc))
    wait_until(lambda: servers.oidc_ready(oidc_url), timeout=60, what="OIDC issuer", proc=oidc,
               log=logs_dir / "oidc.log")
    progress("formatting and starting the Kafka broker (KRaft)")
    servers.format_storage(jars, run, ports, cluster_id, sasl_user, sasl_password,
                           oidc_url=oidc_url)
    broker = servers.start_broker(jars, run, oidc_url=oidc_url)
    started.append(("kafka", broker))
    qstash: tuple[str, str, str] | None = None
    qstash_proc = None
    qstash_problem = servers.qstash_missing()
    if qstash_problem is not None:
        log.warning("not starting the local QStash server: %s", qstash_problem)
    else:
        token = secrets.token_urlsafe(24)
        keys = ("sig_" + secrets.token_urlsafe(32), "sig_" + secrets.token_urlsafe(32))
        progress("starting the local QStash server")
        qstash = (token, *keys)
        qstash_proc = servers.start_qstash(run, qstash_port, token, *keys,
                                           backoff_scale=backoff_scale)
        started.append(("qstash", qstash_proc))
    wait_until(lambda: servers.broker_ready(bootstrap), timeout=timeout, what="Kafka broker",
               proc=broker, log=logs_dir / "kafka.log")
    progress("Kafka is up; starting Kafka Connect")
    connect = servers.start_connect(jars, run, bootstrap, connect_port)
    started.append(("connect", connect))
    wait_until(lambda: servers.registry_ready(registry_url), timeout=timeout,
               what="Apicurio Registry", proc=started[0][1], log=logs_dir / "registry.log")
    qstash_url = f"http://127.0.0.1:{qstash_port}" if qstash else None
    if qstash is not None and qstash_url is not None:
        endpoint = QStashConnection(url=qstash_url, token=SecretStr(qstash[0]))
        wait_until(lambda: servers.qstash_ready(endpoint), timeout=60,
                   what="local QStash server", proc=qstash_proc, log=logs_dir / "qstash.log")
    wait_until(lambda: servers.connect_ready(connect_url), timeout=timeout, what="Kafka Connect",
               proc=connect, log=logs_dir / "connect.log")
    progress("all servers ready")
    return StackInfo(
        bootstrap_servers=bootstrap,
        sasl_bootstrap_servers=f"127.0.0.1:{ports.sasl}",
        ssl_bootstrap_servers=f"127.0.0.1:{ports.ssl}",
        ssl_ca_file=str(run / "tls" / "ca.pem"),
        sasl_ssl_bootstrap_servers=f"127.0.0.1:{ports.sasl_ssl}",
        sasl_ssl_mechanisms=list(servers.SASL_SSL_MECHANISMS),
        mtls_bootstrap_servers=f"127.0.0.1:{ports.mtls}",
        ssl_client_certificate_file=str(run / "tls" / "client.pem"),
        ssl_client_key_file=str(run / "tls" / "client-key.pem"),
        oauth_bootstrap_servers=f"127.0.0.1:{ports.oauth}",
        oidc_token_endpoint_url=f"{oidc_url}/token",
        oidc_client_id=sasl_user,
        oidc_client_secret=oidc_secret,
        sasl_username=sasl_user,
        sasl_password=sasl_password,
        schema_registry_url=registry_url,
        connect_url=connect_url,
        qstash_url=qstash_url,
        qstash_token=qstash[0] if qstash else None,
        qstash_current_signing_key=qstash[1] if qstash else None,
        qstash_next_signing_key=qstash[2] if qstash else None,
        cluster_id=cluster_id,
        run_dir=str(run),
        lib_dir=str(jars.lib),
        processes=[ProcessInfo(name=n, pid=p.pid, log=str(logs_dir / f"{n}.log")) for n, p in started],
    )


def status(run_dir: Path) -> list[ServerStatus]:
    """Each server of the stack in ``run_dir``: alive, and answering its readiness check."""
    info = load_state(run_dir)
    if info is None:
        return []
    checks: dict[str, Callable[[], bool]] = {
        "kafka": lambda: servers.broker_ready(info.bootstrap_servers),
        "registry": lambda: servers.registry_ready(info.schema_registry_url),
        "connect": lambda: servers.connect_ready(info.connect_url),
        "qstash": lambda: servers.qstash_ready(info.qstash),
        "oidc": lambda: servers.oidc_ready((info.oidc_token_endpoint_url or "").removesuffix("/token")),
    }
    out = []
    for proc in info.processes:
        alive = is_alive(proc.pid)
        ready = False
        if alive:
            try:
                ready = checks[proc.name]()
            except Exception:
                ready = False
        out.append(ServerStatus(proc.name, proc.pid, alive, ready))
    return out


def down(run_dir: Path) -> bool:
    """Stop every server (TERM, then KILL after a grace period) and remove data and state."""
    info = load_state(run_dir)
    if info is None:
        return False
    for proc in sorted(info.processes, key=lambda p: SERVERS.index(p.name) * -1):
        stop(proc.pid)
    if info.engine == "testcontainers":
        from migrator.stack.containers import down_containers

        down_containers(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def logs(run_dir: Path, server: str | None = None, lines: int = 40) -> dict[str, str]:
    """The tail of each server's log (or one server's)."""
    info = load_state(run_dir)
    if info is None:
        raise StackError(f"No stack is running in {run_dir}; start one with `migrator dev up`.")
    names = [p.name for p in info.processes]
    if server is not None and server not in names:
        raise StackError(f"No server named {server!r}; the stack runs: {', '.join(names)}.")
    return {p.name: tail(Path(p.log), lines) for p in info.processes
            if server is None or p.name == server}

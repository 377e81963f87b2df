"""Connection diagnosis (``migrator doctor``): can the toolkit reach and use this Kafka estate?

:func:`diagnose` walks the path a client takes, step by step, and returns one :class:`Check` per
step and target with what it saw and, on failure, the fix: DNS, TCP, TLS (certificate subject,
issuer, expiry, trust, host name), SASL (mechanism and authentication, through librdkafka with the
same settings the audit and the bridge use), the ACLs those commands need (read from Kafka's
authorized operations, KIP-430: nothing is written, no group is joined), then the Schema Registry
and Kafka Connect URLs. A failed step makes the steps that depend on it ``skipped``. Secrets never
appear in a check: only the mechanism and the user name do.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx

from migrator.config import KafkaConnection, RestConnection, redact_url
from migrator.errors import KafkaAuthError

__all__ = ["Check", "Diagnosis", "Needs", "diagnose", "missing_operations"]

Status = Literal["ok", "warn", "fail", "skipped"]
EXPIRY_WARNING_DAYS = 14
# OpenSSL's verify codes for a certificate that does not hold the name or address connected to
# (X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH; the ssl module names neither).
_NAME_MISMATCH = frozenset({62, 64})


@dataclass(frozen=True)
class Check:
    step: str
    target: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def add(self, step: str, target: str, status: Status, detail: str, fix: str = "") -> Check:
        check = Check(step, target, status, detail, fix)
        self.checks.append(check)
        return check

    def to_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "checks": [asdict(c) for c in self.checks]}


@dataclass(frozen=True)
class Needs:
    """ACL operations each kind of resource needs, and for which command."""

    required: dict[str, str]
    """operation -> why (missing: fail)"""
    optional: dict[str, str] = field(default_factory=dict)
    """operation -> why (missing: warn)"""


CLUSTER_NEEDS = Needs({"DESCRIBE": "audit: list topics, groups and brokers"},
                      {"DESCRIBE_CONFIGS": "audit: broker defaults"})
TOPIC_NEEDS = Needs({"DESCRIBE": "audit, bridge: partitions and offsets",
                     "READ": "audit: sample records; bridge: consume"},
                    {"DESCRIBE_CONFIGS": "audit: retention, cleanup policy"})
GROUP_NEEDS = Needs({"DESCRIBE": "audit, bridge check: committed offsets",
                     "READ": "bridge: join and commit; cutover: alter the group's offsets"})


def missing_operations(allowed: Iterable[str], needs: Needs) -> tuple[list[str], list[str]]:
    """(required operations missing, optional operations missing)."""
    have = set(allowed)
    if "ALL" in have:
        return [], []
    return ([op for op in needs.required if op not in have],
            [op for op in needs.optional if op not in have])


def _hosts(servers: str) -> list[tuple[str, int]]:
    out = []
    for item in servers.split(","):
        item = item.strip()
        if not item:
            continue
        item = item.split("://", 1)[-1]
        host, _, port = item.rpartition(":")
        out.append((host.strip("[]") or item, int(port) if port.isdigit() else 9092))
    return out


def _dns_tcp(diag: Diagnosis, host: str, port: int, timeout: float) -> bool:
    target = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        diag.add("dns", target, "fail", f"cannot resolve {host}: {exc.strerror}",
                 "check the host name in bootstrap.servers and the machine's DNS (or /etc/hosts)")
        diag.add("tcp", target, "skipped", "no address")
        return False
    addresses = sorted({str(info[4][0]) for info in infos})
    diag.add("dns", target, "ok", f"{host} -> {', '.join(addresses)}")
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        diag.add("tcp", target, "fail", f"no answer within {timeout:g} s",
                 "a firewall, security group or private network drops the traffic: allow this "
                 "machine to reach the port, or raise --timeout")
        return False
    except OSError as exc:
        diag.add("tcp", target, "fail", f"connection failed: {exc.strerror or exc}",
                 "nothing listens there: check the port (managed services: 9092 or 9093 for "
                 "SASL_SSL, 9094/9096/9098 on MSK) and that the broker is up")
        return False
    diag.add("tcp", target, "ok", f"connected in {(time.monotonic() - started) * 1000:.0f} ms")
    return True


def _peer_certificate(host: str, port: int, timeout: float, context: ssl.SSLContext
                      ) -> tuple[bytes, str]:
    with socket.create_connection((host, port), timeout=timeout) as sock, \
            context.wrap_socket(sock, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
        return der or b"", tls.version() or "?"


def _describe_cert(der: bytes) -> tuple[str, str, datetime.datetime]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc


def _tls(diag: Diagnosis, conn: KafkaConnection, host: str, port: int, timeout: float) -> bool:
    target = f"{host}:{port}"
    context = ssl.create_default_context()
    if conn.ssl_ca_location:
        try:
            context.load_verify_locations(cafile=conn.ssl_ca_location)
        except (OSError, ssl.SSLError) as exc:
            diag.add("tls", target, "fail", f"cannot read the CA file {conn.ssl_ca_location}: {exc}",
                     "point ssl.truststore.location at a readable PEM file")
            return False
    if conn.ssl_ca_pem:
        context.load_verify_locations(cadata=conn.ssl_ca_pem)
    context.check_hostname = conn.ssl_endpoint_identification
    try:
        der, version = _peer_certificate(host, port, timeout, context)
    except ssl.SSLCertVerificationError as exc:
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        try:
            der, _ = _peer_certificate(host, port, timeout, insecure)
            subject, issuer, _until = _describe_cert(der)
            seen = f"; the broker presents {subject}, issued by {issuer}"
        except (OSError, ssl.SSLError):
            seen = ""
        reason = exc.verify_message or str(exc)
        if exc.verify_code in _NAME_MISMATCH:
            fix = ("connect with a name the certificate holds (bootstrap.servers), or set "
                   "ssl.endpoint.identification.algorithm= only for a test broker")
        else:
            fix = ("trust the CA that issued it: ssl.truststore.location=<its PEM file> "
                   "(ssl.truststore.type=PEM)")
        diag.add("tls", target, "fail", f"certificate not trusted ({reason}){seen}", fix)
        return False
    except ssl.SSLError as exc:
        diag.add("tls", target, "fail", f"TLS handshake failed: {exc.reason or exc}",
                 "the port may not speak TLS: check security.protocol (SSL/SASL_SSL vs "
                 "PLAINTEXT/SASL_PLAINTEXT) against the listener")
        return False
    except OSError as exc:
        diag.add("tls", target, "fail", f"TLS connection failed: {exc}", "check the port")
        return False
    subject, issuer, until = _describe_cert(der)
    days = (until - datetime.datetime.now(datetime.UTC)).days
    detail = f"{version}, {subject}, issued by {issuer}, expires {until:%Y-%m-%d} ({days} days), trusted"
    if days < EXPIRY_WARNING_DAYS:
        diag.add("tls", target, "warn", detail, "the broker certificate expires soon: renew it")
    else:
        diag.add("tls", target, "ok", detail)
    return True


def _names(operations: Iterable[Any] | None) -> list[str]:
    return sorted(getattr(op, "name", str(op)) for op in (operations or []))


def _acl_check(diag: Diagnosis, step: str, target: str, allowed: list[str], needs: Needs,
               grant: str, principal: str) -> None:
    required, optional = missing_operations(allowed, needs)
    if required:
        why = "; ".join(f"{op} ({needs.required[op]})" for op in required)
        diag.add(step, target, "fail", f"missing {why}",
                 f"kafka-acls --add --allow-principal {principal} "
                 + " ".join(f"--operation {op.title().replace('_', '')}" for op in required)
                 + f" {grant}")
    elif optional:
        why = "; ".join(f"{op} ({needs.optional[op]})" for op in optional)
        diag.add(step, target, "warn", f"missing {why}: that part of the audit is left out",
                 f"kafka-acls --add --allow-principal {principal} "
                 + " ".join(f"--operation {op.title().replace('_', '')}" for op in optional)
                 + f" {grant}")
    else:
        diag.add(step, target, "ok", "allowed: " + ", ".join(allowed))


def _kafka(diag: Diagnosis, conn: KafkaConnection, topics: Sequence[str], groups: Sequence[str],
           timeout: float, admin_factory: Callable[[dict[str, Any]], Any]) -> None:
    from confluent_kafka import KafkaException, TopicCollection

    from migrator.kafka.client_log import librdkafka_logger
    from migrator.kafka.errors import SASL_CODES, error_code

    how = conn.sasl_mechanism if "SASL" in conn.security_protocol else None
    user = conn.sasl_username or conn.oauth_client_id
    who = f"{how} as {user}" if how else conn.security_protocol
    if conn.msk_iam is not None:
        who = f"AWS_MSK_IAM with {conn.msk_iam.describe()}, region {conn.msk_iam.region}"
    reported: list[Any] = []  # librdkafka reports a refused login here, the call only times out
    try:
        settings = conn.to_librdkafka()
    except KafkaAuthError as exc:  # AWS_MSK_IAM: no token could be signed (no AWS credentials)
        diag.add("sasl", conn.bootstrap_servers, "fail", str(exc),
                 "give the bridge's process AWS credentials (environment, ~/.aws, pod or "
                 "instance role) or name a profile or role in sasl.jaas.config")
        return
    conf: dict[str, Any] = {**settings, "logger": librdkafka_logger(),
                            "socket.timeout.ms": int(timeout * 1000), "error_cb": reported.append}
    admin = admin_factory(conf)

    def refused() -> list[Any]:
        return [e for e in reported if e.code() in SASL_CODES]

    future = admin.describe_cluster(request_timeout=timeout, include_authorized_operations=True)
    while not future.done() and not refused():
        admin.poll(0.1)  # serves error_cb
    try:
        if refused():
            raise KafkaException(refused()[0])
        cluster = future.result()
    except KafkaException as exc:
        auth = refused()
        err = auth[0] if auth else exc.args[0] if exc.args else exc
        text = err.str() if hasattr(err, "str") else str(err)
        if auth or error_code(err) in SASL_CODES:
            fix = ("check that this AWS identity may kafka-cluster:Connect to the cluster (its IAM "
                   "policy), that the region is the cluster's, and that the bootstrap servers are "
                   "MSK's IAM listener (port 9098)") if conn.msk_iam is not None else \
                (f"check the user and secret in sasl.jaas.config (OAUTHBEARER: clientId, "
                   f"clientSecret and sasl.oauthbearer.token.endpoint.url) and that the cluster "
                   f"offers {how} (the error names the mechanisms it offers)") if how else \
                "the cluster wants SASL: set security.protocol=SASL_SSL and sasl.mechanism"
            diag.add("sasl", conn.bootstrap_servers, "fail", f"{who}: {text}", fix)
        else:
            diag.add("kafka", conn.bootstrap_servers, "fail", f"{who}: {text}",
                     "check security.protocol against the listener and the steps above")
        diag.add("acl:cluster", conn.bootstrap_servers, "skipped", "not connected")
        for topic in topics:
            diag.add("acl:topic", topic, "skipped", "not connected")
        for group in groups:
            diag.add("acl:group", group, "skipped", "not connected")
        return
    nodes = ", ".join(f"{n.host}:{n.port}" for n in cluster.nodes)
    diag.add("sasl" if how else "kafka", conn.bootstrap_servers, "ok",
             f"{'authenticated, ' + who if how else who}; cluster {cluster.cluster_id}, "
             f"brokers {nodes}")
    principal = f"User:{user}" if user else "<principal>"
    _acl_check(diag, "acl:cluster", conn.bootstrap_servers,
               _names(cluster.authorized_operations), CLUSTER_NEEDS, "--cluster", principal)
    if topics:
        _resource_acls(diag, "topic", admin.describe_topics(
            TopicCollection(list(topics)), request_timeout=timeout,
            include_authorized_operations=True), TOPIC_NEEDS, principal,
            lambda name: "the topic does not exist or Describe is not granted (Kafka answers both "
            f"alike): create it, or kafka-acls --add --allow-principal {principal} --operation "
            f"Describe --topic {name}")
    if groups:
        _resource_acls(diag, "group", admin.describe_consumer_groups(
            list(groups), request_timeout=timeout, include_authorized_operations=True),
            GROUP_NEEDS, principal,
            lambda name: f"kafka-acls --add --allow-principal {principal} --operation Describe "
            f"--operation Read --group {name}")


def _resource_acls(diag: Diagnosis, kind: str, described: dict[str, Any], needs: Needs,
                   principal: str, fix: Callable[[str], str]) -> None:
    """One ``acl:<kind>`` check per described topic or group (``fix``: when it cannot be)."""
    from confluent_kafka import KafkaException

    for name, future in described.items():
        try:
            ops = _names(future.result().authorized_operations)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            diag.add(f"acl:{kind}", name, "fail",
                     f"cannot describe: {err.str() if hasattr(err, 'str') else err}", fix(name))
            continue
        _acl_check(diag, f"acl:{kind}", name, ops, needs, f"--{kind} {name}", principal)


def _rest(diag: Diagnosis, step: str, rest: RestConnection, path: str, what: str,
          count: Callable[[Any], str], client: httpx.Client) -> None:
    target = redact_url(rest.url)
    try:
        response = client.get(rest.url + path, auth=rest.httpx_auth(), timeout=rest.timeout)
    except httpx.HTTPError as exc:
        diag.add(step, target, "fail", f"no answer: {exc}",
                 f"check the {what} URL and that this machine can reach it")
        return
    if response.status_code in (401, 403):
        diag.add(step, target, "fail", f"HTTP {response.status_code}: credentials refused",
                 f"check the {what} user and password (or the API key) and its permissions")
    elif response.status_code >= 400:
        diag.add(step, target, "fail", f"HTTP {response.status_code} on {path}",
                 f"check the {what} URL: is this its base URL (e.g. with /apis/ccompat/v7 for "
                 "Apicurio)?" if step == "registry" else f"check the {what} URL")
    else:
        try:
            detail = count(response.json())
        except ValueError:
            diag.add(step, target, "fail", f"HTTP {response.status_code} but not JSON",
                     f"this does not look like the {what} API: check the URL")
            return
        diag.add(step, target, "ok", detail)


def diagnose(
    connection: KafkaConnection,
    *,
    topics: Sequence[str] = (),
    groups: Sequence[str] = (),
    registry: RestConnection | None = None,
    connect: RestConnection | None = None,
    timeout: float = 10.0,
    admin_factory: Callable[[dict[str, Any]], Any] | None = None,
) -> Diagnosis:
    """Every step from name resolution to ACLs and the REST services; never raises for what it
    finds (that is the result), only for a bug."""
    diag = Diagnosis()
    reachable = []
    for host, port in _hosts(connection.bootstrap_servers):
        if not _dns_tcp(diag, host, port, timeout):
            continue
        if connection.security_protocol in ("SSL", "SASL_SSL"):
            if not _tls(diag, connection, host, port, timeout):
                continue
        else:
            diag.add("tls", f"{host}:{port}", "skipped",
                     f"{connection.security_protocol}: no TLS (credentials and records travel "
                     "in clear)" if connection.security_protocol == "SASL_PLAINTEXT" else
                     f"{connection.security_protocol}: no TLS")
        reachable.append((host, port))
    if reachable:
        if admin_factory is None:
            from confluent_kafka.admin import AdminClient

            admin_factory = AdminClient
        _kafka(diag, connection, topics, groups, timeout, admin_factory)
    else:
        diag.add("kafka", connection.bootstrap_servers, "skipped", "no broker reachable")
    with httpx.Client() as client:
        if registry is not None:
            _rest(diag, "registry", registry, "/subjects", "Schema Registry",
                  lambda body: f"{len(body)} subjects", client)
        if connect is not None:
            _rest(diag, "connect", connect, "/connectors", "Kafka Connect",
                  lambda body: f"{len(body)} connectors", client)
    return diag

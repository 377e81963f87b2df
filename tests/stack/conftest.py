"""Fixtures of the stack tests: the TLS listeners managed services' clients connect to (SASL_SSL
with each mechanism, SSL with a client certificate)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator.stack import servers
from migrator.stack.maven import resolve_jars
from migrator.stack.process import free_port, stop, wait_until
from tests.fixtures.stack import EstateInfo

MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
            "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
            "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}


@dataclass(frozen=True)
class SaslSslBroker:
    bootstrap: str  # PLAINTEXT, to seed topics
    sasl_ssl: str
    ca_file: str
    user: str
    password: str
    ssl: str  # SSL, server certificate only
    mtls: str  # SSL, client certificate required
    client_cert: str
    client_key: str
    oauth: str  # SASL_SSL, OAUTHBEARER
    token_url: str
    client_id: str
    client_secret: str

    def oauth_properties(self, path: Path, secret: str | None = None) -> Path:
        """OIDC client credentials as Java clients write them (KIP-768)."""
        path.write_text(
            f"bootstrap.servers={self.oauth}\n"
            "security.protocol=SASL_SSL\n"
            "sasl.mechanism=OAUTHBEARER\n"
            "sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer."
            "OAuthBearerLoginCallbackHandler\n"
            f"sasl.oauthbearer.token.endpoint.url={self.token_url}\n"
            "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
            f'required \\\n    clientId="{self.client_id}" clientSecret="{secret or self.client_secret}"'
            ' scope="kafka";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={self.ca_file}\n"
        )
        return path

    def properties(self, mechanism: str, path: Path, password: str | None = None) -> Path:
        """A Java client properties file as a user of a managed service writes it."""
        path.write_text(
            f"bootstrap.servers={self.sasl_ssl}\n"
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={mechanism}\n"
            f"sasl.jaas.config={_MODULES[mechanism]} required \\\n"
            f'    username="{self.user}" password="{password or self.password}";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={self.ca_file}\n"
        )
        return path


@pytest.fixture(scope="session")
def sasl_ssl_broker(kafka_stack: EstateInfo, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[SaslSslBroker]:
    """The session stack's SASL_SSL listener, or (a stack started before it had one) a broker of
    the session's own, formatted and started by the same stack code."""
    s = kafka_stack
    if (s.sasl_ssl_bootstrap_servers and s.ssl_ca_file and s.sasl_username and s.sasl_password
            and s.ssl_bootstrap_servers and s.mtls_bootstrap_servers
            and s.ssl_client_certificate_file and s.ssl_client_key_file
            and s.oauth_bootstrap_servers and s.oidc_token_endpoint_url and s.oidc_client_id
            and s.oidc_client_secret):
        yield SaslSslBroker(s.bootstrap_servers, s.sasl_ssl_bootstrap_servers, s.ssl_ca_file,
                            s.sasl_username, s.sasl_password, s.ssl_bootstrap_servers,
                            s.mtls_bootstrap_servers, s.ssl_client_certificate_file,
                            s.ssl_client_key_file, s.oauth_bootstrap_servers,
                            s.oidc_token_endpoint_url, s.oidc_client_id, s.oidc_client_secret)
        return
    run = tmp_path_factory.mktemp("sasl-ssl-broker")
    jars = resolve_jars(log=run / "logs" / "maven.log")
    ports = servers.BrokerPorts(free_port(), free_port(), free_port(), free_port(), free_port(),
                                free_port(), free_port())
    password, oidc_secret = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    oidc_port = free_port()
    oidc_url = f"http://127.0.0.1:{oidc_port}"
    oidc = servers.start_oidc(run, oidc_port, "migrator", oidc_secret)
    proc = None
    try:
        wait_until(lambda: servers.oidc_ready(oidc_url), timeout=60, what="the OIDC issuer",
                   proc=oidc, log=run / "logs" / "oidc.log")
        servers.format_storage(jars, run, ports, servers.new_cluster_id(), "migrator", password,
                               oidc_url=oidc_url)
        proc = servers.start_broker(jars, run, oidc_url=oidc_url)
        plaintext = f"127.0.0.1:{ports.plaintext}"
        wait_until(lambda: servers.broker_ready(plaintext), timeout=120,
                   what="the SASL_SSL test broker", proc=proc, log=run / "logs" / "kafka.log")
        tls = run / "tls"
        yield SaslSslBroker(plaintext, f"127.0.0.1:{ports.sasl_ssl}", str(tls / "ca.pem"),
                            "migrator", password, f"127.0.0.1:{ports.ssl}",
                            f"127.0.0.1:{ports.mtls}", str(tls / "client.pem"),
                            str(tls / "client-key.pem"), f"127.0.0.1:{ports.oauth}",
                            f"{oidc_url}/token", "migrator", oidc_secret)
    finally:
        if proc is not None:
            stop(proc, grace=10)
        stop(oidc, grace=5)

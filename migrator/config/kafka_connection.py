"""How to reach a Kafka cluster: :class:`KafkaConnection`, built from flags, environment, a Java
client properties file and ``-X`` pass-through, and turned into librdkafka's configuration in
exactly one place, :meth:`KafkaConnection.to_librdkafka`: string settings, plus the one callable
a connection may need (``oauth_cb``, the AWS MSK IAM token provider).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator

from migrator.config.client_properties import take_jaas, take_ssl
from migrator.config.frozen import Frozen
from migrator.config.java_properties import parse_properties, parse_x_options
from migrator.config.msk_iam import MskIam, TokenCallback
from migrator.errors import ConfigError

__all__ = ["KafkaConnection", "LibrdkafkaConfig", "SaslMechanism", "SecurityProtocol"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"]
# librdkafka's settings as confluent_kafka takes them: strings, and ``oauth_cb`` a callable.
LibrdkafkaConfig = dict[str, str | TokenCallback]


class KafkaConnection(Frozen):
    """How to reach a Kafka cluster. Convert with :meth:`to_librdkafka`, nowhere else."""

    bootstrap_servers: str = Field(description="Comma-separated host:port list.")
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_pem: str | None = Field(None, description="CA certificate(s), PEM text.")
    ssl_certificate_pem: str | None = None
    ssl_key_pem: SecretStr | None = None
    ssl_key_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_endpoint_identification: bool = True
    oauth_token_endpoint_url: str | None = Field(
        None, description="OIDC client-credentials token endpoint (sasl.oauthbearer.token.endpoint.url).")
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_scope: str | None = None
    msk_iam: MskIam | None = Field(None, description="AWS MSK IAM (sasl.mechanism=AWS_MSK_IAM).")
    extra: Mapping[str, str] = Field(default_factory=dict, description="-X key=value overrides.")

    @model_validator(mode="after")
    def _msk_iam_is_whole(self) -> KafkaConnection:
        if (self.sasl_mechanism == "AWS_MSK_IAM") != (self.msk_iam is not None):
            raise ValueError("sasl.mechanism=AWS_MSK_IAM and the MSK IAM settings go together")
        if self.msk_iam is not None and self.security_protocol != "SASL_SSL":
            raise ValueError("AWS_MSK_IAM needs security.protocol=SASL_SSL (MSK's IAM listener, "
                             "port 9098, is TLS)")
        return self

    def to_librdkafka(self) -> LibrdkafkaConfig:
        """The librdkafka configuration dict for this connection (secrets in clear: handle with care).

        The one place it is built. The connection's own settings come first, then ``-X`` (the
        ``extra`` mapping) overrides them key by key, as :meth:`build` documents. AWS MSK IAM is
        librdkafka's OAUTHBEARER with ``oauth_cb`` (:class:`~migrator.config.msk_iam.MskIamTokenProvider`,
        which signs a first token here: no credentials or no ``msk`` extra fail now, in one line).
        """
        conf: LibrdkafkaConfig = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.msk_iam is not None:
            conf["sasl.mechanism"] = "OAUTHBEARER"
            conf["oauth_cb"] = self.msk_iam.token_callback()
        elif self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_pem:
            conf["ssl.ca.pem"] = self.ssl_ca_pem
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        if self.ssl_certificate_pem:
            conf["ssl.certificate.pem"] = self.ssl_certificate_pem
        if self.ssl_key_pem is not None:
            conf["ssl.key.pem"] = self.ssl_key_pem.get_secret_value()
        if self.ssl_key_password is not None:
            conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        if not self.ssl_endpoint_identification:
            conf["ssl.endpoint.identification.algorithm"] = "none"
        if self.oauth_token_endpoint_url:
            conf["sasl.oauthbearer.method"] = "oidc"
            conf["sasl.oauthbearer.token.endpoint.url"] = self.oauth_token_endpoint_url
            if self.oauth_client_id is not None:
                conf["sasl.oauthbearer.client.id"] = self.oauth_client_id
            if self.oauth_client_secret is not None:
                conf["sasl.oauthbearer.client.secret"] = self.oauth_client_secret.get_secret_value()
            if self.oauth_scope:
                conf["sasl.oauthbearer.scope"] = self.oauth_scope
        conf.update(self.extra)
        return conf

    def describe(self) -> str:
        """A one-line description safe to print (no secrets)."""
        mechanism = f" {self.sasl_mechanism}" if self.sasl_mechanism and "SASL" in \
            self.security_protocol else ""
        user = self.sasl_username or self.oauth_client_id
        who = f" as {user}" if user else ""
        if self.msk_iam is not None:
            who = f" with {self.msk_iam.describe()}, region {self.msk_iam.region}"
        return f"{self.bootstrap_servers} ({self.security_protocol}{mechanism}{who})"

    @classmethod
    def build(
        cls,
        *,
        bootstrap_servers: str | None = None,
        properties_file: str | Path | None = None,
        x_options: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
        config: Mapping[str, str] | None = None,
        config_properties_file: str | Path | None = None,
        config_name: str = "command line",
    ) -> KafkaConnection:
        """The connection from every source of settings; the one place their precedence lives.

        Lowest to highest precedence (a later source wins key by key):

        1. the environment: ``KAFKA_BOOTSTRAP_SERVERS``;
        2. the config file's properties file (``config_properties_file``, e.g. bridge.yaml's
           ``kafka.properties_file``), read only when no ``properties_file`` flag is given;
        3. the config file's own settings (``config``: librdkafka/Java names, e.g. bridge.yaml's
           ``kafka`` fields and ``kafka.options``);
        4. the properties file given on the command line (``--kafka-config``);
        5. ``--bootstrap-servers``;
        6. ``-X key=value`` options.
        """
        env = os.environ if environ is None else environ
        props: dict[str, str] = {}
        if env.get("KAFKA_BOOTSTRAP_SERVERS"):
            props["bootstrap.servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
        file = properties_file if properties_file is not None else config_properties_file
        if properties_file is None and config_properties_file is not None:
            props.update(parse_properties(Path(config_properties_file)))
        props.update(config or {})
        if properties_file is not None:
            props.update(parse_properties(Path(properties_file)))
        if bootstrap_servers:
            props["bootstrap.servers"] = bootstrap_servers
        props.update(parse_x_options(x_options))
        return cls.from_properties(props, where=str(file) if file is not None else config_name)

    @classmethod
    def from_properties(cls, props: Mapping[str, str], *, where: str = "config") -> KafkaConnection:
        """Map Java client properties (and librdkafka names) onto the model."""
        props = dict(props)
        fields: dict[str, object] = {}
        servers = props.pop("bootstrap.servers", None)
        if not servers:
            raise ConfigError(
                f"{where}: no bootstrap servers; pass --bootstrap-servers, set "
                "KAFKA_BOOTSTRAP_SERVERS or put bootstrap.servers in the properties file."
            )
        fields["bootstrap_servers"] = servers
        if "security.protocol" in props:
            fields["security_protocol"] = props.pop("security.protocol").upper()
        if "sasl.mechanism" in props:
            fields["sasl_mechanism"] = props.pop("sasl.mechanism").upper()
        if fields.get("sasl_mechanism") == "AWS_MSK_IAM":
            fields["msk_iam"] = MskIam.from_properties(props, props.pop("sasl.jaas.config", None),
                                                       servers, where)
        else:
            take_jaas(props, fields, where)
        for key, name in (("sasl.username", "sasl_username"), ("sasl.password", "sasl_password")):
            if key in props:
                fields[name] = props.pop(key)
        take_ssl(props, fields, where)
        fields["extra"] = props
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{where}: {loc}: {err['msg']}") from None

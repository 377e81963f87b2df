"""Connection settings, validated once at the edge into frozen models.

``KafkaConnection`` is built from flags, environment, a Java client properties file and ``-X``
pass-through, and becomes librdkafka's dict in exactly one place: :meth:`KafkaConnection.to_librdkafka`.
Secrets are ``SecretStr``: they print as ``**********`` and never reach logs or reports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from migrator.errors import ConfigError

__all__ = [
    "UPSTASH_URL",
    "BasicAuth",
    "KafkaConnection",
    "QStashConnection",
    "RestConnection",
    "parse_properties",
    "parse_x_options",
    "redact",
    "redact_url",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

# librdkafka keys whose values are secret: never printed, never logged.
SECRET_KEYS = frozenset(
    {
        "sasl.password",
        "sasl.jaas.config",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
        "ssl.truststore.password",
        "sasl.oauthbearer.client.secret",
        "basic.auth.user.info",
    }
)
UPSTASH_URL = "https://qstash.upstash.io"
_SECRET_HINT = re.compile(r"(password|secret|token|credential|jaas|api[._-]?key|user\.info)", re.I)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BasicAuth(_Frozen):
    """HTTP basic credentials for a REST service."""

    username: str
    password: SecretStr


class RestConnection(_Frozen):
    """A REST service (Schema Registry or Kafka Connect): base URL and optional basic auth."""

    url: str
    auth: BasicAuth | None = None
    timeout: float = Field(10.0, gt=0)

    def httpx_auth(self) -> tuple[str, str] | None:
        if self.auth is None:
            return None
        return (self.auth.username, self.auth.password.get_secret_value())


class QStashConnection(_Frozen):
    """A QStash endpoint: Upstash's service or the local server, and the token it takes.

    The one type every command passes a QStash endpoint around as (never a ``(url, token)``
    tuple); the token stays a ``SecretStr`` until the HTTP client needs it.
    """

    url: str = Field(UPSTASH_URL, description="QStash base URL.")
    token: SecretStr = Field(description="QStash bearer token.")

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        token: str | SecretStr | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        where: str = "pass --qstash-token",
    ) -> QStashConnection:
        """``url``/``token`` as given, else QSTASH_URL / QSTASH_TOKEN, else Upstash's URL.
        No token: ConfigError saying to set QSTASH_TOKEN or ``where``."""
        env = os.environ if environ is None else environ
        url = url or env.get("QSTASH_URL") or UPSTASH_URL
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        secret = secret or env.get("QSTASH_TOKEN")
        if not secret:
            raise ConfigError(
                f"No QStash token: set QSTASH_TOKEN or {where} "
                "(for the local server, `migrator dev up --json` prints one)."
            )
        return cls(url=url.rstrip("/"), token=SecretStr(secret))

    @property
    def bearer(self) -> str:
        """The token, for the HTTP client's Authorization header only."""
        return self.token.get_secret_value()


class KafkaConnection(_Frozen):
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
    extra: Mapping[str, str] = Field(default_factory=dict, description="-X key=value overrides.")

    def to_librdkafka(self) -> dict[str, str]:
        """The librdkafka configuration dict for this connection (secrets in clear: handle with care)."""
        conf: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
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
        jaas = props.pop("sasl.jaas.config", None)
        if jaas is not None and "OAuthBearerLoginModule" in jaas:
            _take_oauth(jaas, props, fields, where)
        elif jaas is not None:
            user, password = _parse_jaas(jaas, where)
            fields["sasl_username"], fields["sasl_password"] = user, password
        for key, name in (("sasl.username", "sasl_username"), ("sasl.password", "sasl_password")):
            if key in props:
                fields[name] = props.pop(key)
        _take_ssl(props, fields, where)
        fields["extra"] = props
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{where}: {loc}: {err['msg']}") from None


_JAAS_RE = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _take_oauth(jaas: str, props: dict[str, str], fields: dict[str, object], where: str) -> None:
    """OAUTHBEARER as Java clients configure OIDC (KIP-768): ``OAuthBearerLoginModule required
    clientId="..." clientSecret="..." [scope="..."];`` and sasl.oauthbearer.token.endpoint.url."""
    values = dict(_JAAS_RE.findall(jaas))
    url = props.pop("sasl.oauthbearer.token.endpoint.url", None)
    if not url or "clientId" not in values or "clientSecret" not in values:
        raise ConfigError(
            f"{where}: OAUTHBEARER needs sasl.oauthbearer.token.endpoint.url and "
            'sasl.jaas.config=...OAuthBearerLoginModule required clientId="..." '
            'clientSecret="...";  (client credentials; unsecured tokens are not supported).'
        )
    fields["oauth_token_endpoint_url"] = url
    fields["oauth_client_id"], fields["oauth_client_secret"] = values["clientId"], values["clientSecret"]
    if values.get("scope"):
        fields["oauth_scope"] = values["scope"]


def _parse_jaas(jaas: str, where: str) -> tuple[str, str]:
    """Username and password from a PlainLoginModule / ScramLoginModule JAAS line."""
    if "LoginModule" not in jaas:
        raise ConfigError(f"{where}: sasl.jaas.config is not a JAAS login module line.")
    values = dict(_JAAS_RE.findall(jaas))
    if "username" not in values or "password" not in values:
        raise ConfigError(
            f'{where}: sasl.jaas.config needs username="..." and password="..." '
            "(PlainLoginModule or ScramLoginModule)."
        )
    return values["username"], values["password"]


def _read_pkcs12(props: dict[str, str], store: str, where: str) -> tuple[str, str | None]:
    """(certificates PEM, private key PEM or None) of the PKCS12 file ``<store>.location``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    location = props.pop(f"{store}.location", None)
    if not location:
        raise ConfigError(f"{where}: {store}.type=PKCS12 needs {store}.location (the .p12 file).")
    password = props.pop(f"{store}.password", None)
    try:
        data = Path(location).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: {store}.location {location}: cannot read it "
                          f"({exc.strerror}).") from None
    try:
        loaded = pkcs12.load_pkcs12(data, password.encode() if password else None)
    except ValueError:
        raise ConfigError(f"{where}: {store}.location {location}: not a PKCS12 store, or "
                          f"{store}.password is wrong.") from None
    certs = ([loaded.cert.certificate] if loaded.cert else []) + \
        [c.certificate for c in loaded.additional_certs]
    if not certs:
        raise ConfigError(f"{where}: {store}.location {location} holds no certificate.")
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    key = None if loaded.key is None else loaded.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    return pem, key


def _take_ssl(props: dict[str, str], fields: dict[str, object], where: str) -> None:
    """Java ssl.* properties onto the model: PEM (files or inline) and PKCS12 stores (read here
    into PEM, as librdkafka takes them); JKS is refused with the conversion command."""
    for store in ("ssl.truststore", "ssl.keystore"):
        kind = props.pop(f"{store}.type", "PEM").upper()
        if kind == "PKCS12":
            pem, key = _read_pkcs12(props, store, where)
            if store == "ssl.truststore":
                fields["ssl_ca_pem"] = pem
            elif key is None:
                raise ConfigError(f"{where}: ssl.keystore.location holds no private key; a "
                                  "keystore needs the client's key and certificate.")
            else:
                fields["ssl_certificate_pem"], fields["ssl_key_pem"] = pem, key
                props.pop("ssl.key.password", None)  # the key came out decrypted
        elif kind != "PEM":
            raise ConfigError(
                f"{where}: {store}.type={kind} is not supported; convert the store to PKCS12 "
                f"(keytool -importkeystore -srckeystore <file> -srcstoretype {kind} "
                "-destkeystore store.p12 -deststoretype PKCS12) or to PEM files."
            )
    if "ssl.truststore.certificates" in props:
        fields["ssl_ca_pem"] = _pem(props.pop("ssl.truststore.certificates"), where, "ssl.truststore.certificates")
    if "ssl.truststore.location" in props:
        fields["ssl_ca_location"] = props.pop("ssl.truststore.location")
    if "ssl.keystore.certificate.chain" in props:
        fields["ssl_certificate_pem"] = _pem(props.pop("ssl.keystore.certificate.chain"), where,
                                             "ssl.keystore.certificate.chain")
    if "ssl.keystore.key" in props:
        fields["ssl_key_pem"] = _pem(props.pop("ssl.keystore.key"), where, "ssl.keystore.key")
    if "ssl.key.password" in props:
        fields["ssl_key_password"] = props.pop("ssl.key.password")
    props.pop("ssl.truststore.password", None)
    props.pop("ssl.keystore.password", None)
    algo = props.pop("ssl.endpoint.identification.algorithm", None)
    if algo is not None and algo.strip().lower() in ("", "none"):
        fields["ssl_endpoint_identification"] = False
    # Java-only client settings with no librdkafka meaning are dropped rather than rejected.
    for java_only in ("key.serializer", "value.serializer", "key.deserializer", "value.deserializer",
                      "client.dns.lookup", "sasl.login.callback.handler.class"):
        props.pop(java_only, None)


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def _pem(value: str, where: str, key: str) -> str:
    """PEM text as OpenSSL reads it, from a Java property value.

    Java properties join continuation lines, so PEM given inline arrives as one line with spaces
    (or literal ``\\n``) where the newlines were; Java's PEM reader accepts that, OpenSSL does not.
    """
    blocks = _PEM_BLOCK.findall(value.replace("\\n", "\n"))
    if not blocks:
        raise ConfigError(f"{where}: {key} holds no PEM block (-----BEGIN ...----- ... -----END ...-----).")
    out = []
    for label, body in blocks:
        data = re.sub(r"\s+", "", body)
        lines = [data[i:i + 64] for i in range(0, len(data), 64)]
        out.append("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]))
    return "\n".join(out) + "\n"


def parse_properties(path: Path) -> dict[str, str]:
    """Read a Java .properties file (key=value or key: value, # and ! comments, \\ continuations)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the properties file ({exc.strerror}).") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: byte {exc.start} is not UTF-8; save the properties file as UTF-8."
        ) from None
    props: dict[str, str] = {}
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip() if not buf else raw.lstrip()
        if not buf and (not line or line[0] in "#!"):
            continue
        if not buf:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf += line[:-1]
            continue
        logical.append((start, buf + line))
        buf = ""
    if buf:
        logical.append((start, buf))
    for number, line in logical:
        match = re.match(r"^((?:[^=:\s\\]|\\.)+)\s*[=:\s]\s*(.*)$", line)
        if not match:
            raise ConfigError(f"{path}:{number}: expected key=value, got {line.split()[0]!r}.")
        props[match.group(1)] = match.group(2).strip()
    return props


def parse_x_options(options: Iterable[str]) -> dict[str, str]:
    """-X key=value pass-through options."""
    out: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-X {option!r}: expected key=value, for example -X fetch.max.bytes=1048576.")
        out[key.strip()] = value
    return out


def redact(conf: Mapping[str, object]) -> dict[str, object]:
    """A copy of a config dict with secret values replaced, safe to print or log."""
    return {
        k: ("**********" if (k in SECRET_KEYS or _SECRET_HINT.search(k)) else v)
        for k, v in conf.items()
    }


def redact_url(url: str) -> str:
    """``url`` safe to print or log: credentials in it (``user:password@``, a token as the
    user) and every query value masked, the fragment dropped; scheme, host, port and path kept."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    path, _hash, _fragment = (slash + path).partition("#")
    path, qmark, query = path.partition("?")
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    if qmark:
        names = [part.partition("=")[0] for part in query.split("&") if part]
        path += "?" + "&".join(f"{name}=***" for name in names)
    return f"{head}://{netloc}{path}"

"""Java client properties mapped onto :class:`~migrator.config.kafka_connection.KafkaConnection`'s
fields: JAAS login lines (PLAIN, SCRAM, OAUTHBEARER client credentials), TLS stores (PEM, PKCS12)."""

from __future__ import annotations

import re
from pathlib import Path

from migrator.errors import ConfigError

__all__ = ["take_jaas", "take_ssl"]

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


def take_jaas(props: dict[str, str], fields: dict[str, object], where: str) -> None:
    """``sasl.jaas.config`` (and the properties that go with its login module) onto ``fields``."""
    jaas = props.pop("sasl.jaas.config", None)
    if jaas is not None and "IAMLoginModule" in jaas:
        raise ConfigError(f"{where}: sasl.jaas.config is AWS's IAMLoginModule: set "
                          "sasl.mechanism=AWS_MSK_IAM and security.protocol=SASL_SSL with it.")
    if jaas is not None and "OAuthBearerLoginModule" in jaas:
        _take_oauth(jaas, props, fields, where)
    elif jaas is not None:
        user, password = _parse_jaas(jaas, where)
        fields["sasl_username"], fields["sasl_password"] = user, password


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


def take_ssl(props: dict[str, str], fields: dict[str, object], where: str) -> None:
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

"""AWS MSK IAM authentication (``sasl.mechanism=AWS_MSK_IAM``), through Amazon's
``aws-msk-iam-sasl-signer-python`` (the ``msk`` extra).

Java clients configure it as::

    security.protocol=SASL_SSL
    sasl.mechanism=AWS_MSK_IAM
    sasl.jaas.config=software.amazon.msk.auth.iam.IAMLoginModule required;
    (optionally in that line: awsProfileName="p", or awsRoleArn="arn:..." [awsRoleSessionName="s"])
    sasl.client.callback.handler.class=software.amazon.msk.auth.iam.IAMClientCallbackHandler

librdkafka speaks it as OAUTHBEARER whose token is a SigV4-presigned ``kafka-cluster:Connect``
URL: :class:`MskIamTokenProvider` is the ``oauth_cb`` :meth:`KafkaConnection.to_librdkafka` puts
in the client configuration. AWS credentials come from the default chain (environment, ``~/.aws``,
the pod's or instance's role), a named profile, or an assumed role. The region is the
``aws.region`` setting, else the one in the bootstrap host (``b-1.x.kafka.<region>.amazonaws.com``).
Neither the credentials nor the token are ever logged or printed.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from types import ModuleType

from migrator.config.frozen import Frozen
from migrator.errors import ConfigError, ExtraNotInstalledError, KafkaAuthError

__all__ = [
    "IAM_LOGIN_MODULE",
    "MSK_EXTRA",
    "MskIam",
    "MskIamTokenProvider",
    "TokenCallback",
    "region_from_bootstrap",
    "signer",
]

log = logging.getLogger(__name__)

IAM_LOGIN_MODULE = "software.amazon.msk.auth.iam.IAMLoginModule"
MSK_EXTRA = "pip install 'kafka-qstash-migrator[msk]'"
# librdkafka's OAUTHBEARER refresh callback, as confluent_kafka calls it: (sasl.oauthbearer.config)
# -> (token, expiry in seconds since the epoch).
TokenCallback = Callable[[str | None], tuple[str, float]]

# b-1.name.abc123.c2.kafka.us-east-1.amazonaws.com, boot-x.c1.kafka-serverless.eu-west-1.amazonaws.com,
# b-1.x.kafka.cn-north-1.amazonaws.com.cn (port optional)
_MSK_HOST = re.compile(
    r"\.kafka(?:-serverless)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?(?::\d+)?$", re.I)
_JAAS_RE = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def region_from_bootstrap(bootstrap_servers: str) -> str | None:
    """The AWS region in the first MSK broker host of ``bootstrap_servers``, or None."""
    for server in bootstrap_servers.split(","):
        found = _MSK_HOST.search(server.strip())
        if found:
            return found.group(1).lower()
    return None


def signer() -> ModuleType:
    """Amazon's ``MSKAuthTokenProvider`` module; :class:`ExtraNotInstalledError` naming the extra
    when it is not installed."""
    try:
        return importlib.import_module("aws_msk_iam_sasl_signer.MSKAuthTokenProvider")
    except ImportError:
        raise ExtraNotInstalledError(
            f"sasl.mechanism=AWS_MSK_IAM needs Amazon's MSK IAM token signer, which is not "
            f"installed: {MSK_EXTRA}"
        ) from None


class MskIam(Frozen):
    """Where an MSK IAM token's credentials and region come from."""

    region: str
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str | None = None

    @classmethod
    def from_properties(cls, props: dict[str, str], jaas: str | None, bootstrap_servers: str,
                        where: str) -> MskIam:
        """From the Java client's properties (``props``: ``sasl.jaas.config`` already taken out
        as ``jaas``, the keys used here are popped). Checks the extra is installed."""
        if jaas is not None and "IAMLoginModule" not in jaas:
            raise ConfigError(
                f"{where}: sasl.mechanism=AWS_MSK_IAM takes sasl.jaas.config="
                f"{IAM_LOGIN_MODULE} required; (optionally awsProfileName=\"...\" or "
                'awsRoleArn="..."), not another login module.')
        props.pop("sasl.client.callback.handler.class", None)  # the Java handler: ours is built in
        values = dict(_JAAS_RE.findall(jaas or ""))
        region = props.pop("aws.region", None) or region_from_bootstrap(bootstrap_servers)
        if not region:
            raise ConfigError(
                f"{where}: AWS_MSK_IAM needs the cluster's AWS region: none in the bootstrap "
                f"servers ({bootstrap_servers}) as in b-1.x.kafka.<region>.amazonaws.com; set "
                "aws.region=<region> in the properties file, kafka.options or -X.")
        signer()
        return cls(region=region, profile=values.get("awsProfileName") or None,
                   role_arn=values.get("awsRoleArn") or None,
                   role_session_name=values.get("awsRoleSessionName") or None)

    def describe(self) -> str:
        """Whose credentials, safe to print: the role, the profile or the default chain."""
        if self.role_arn:
            return f"role {self.role_arn}"
        return f"profile {self.profile}" if self.profile else "the default AWS credentials"

    def token_callback(self) -> MskIamTokenProvider:
        """The ``oauth_cb`` for librdkafka, after one token was signed here: a missing extra or
        no credentials fail now, in one line, rather than as librdkafka's 10 s token time-out."""
        provider = MskIamTokenProvider(self)
        provider.token()
        return provider


class MskIamTokenProvider:
    """librdkafka's OAUTHBEARER token refresh callback for MSK IAM (called again before expiry)."""

    def __init__(self, settings: MskIam) -> None:
        self.settings = settings

    def __repr__(self) -> str:  # never the token, never a credential
        return f"MskIamTokenProvider(region={self.settings.region!r}, {self.settings.describe()})"

    def token(self) -> tuple[str, float]:
        """A fresh token and its expiry (seconds since the epoch); :class:`KafkaAuthError` naming
        AWS_MSK_IAM (never a credential) when it cannot be signed."""
        provider = signer()
        s = self.settings
        try:
            if s.role_arn:
                token, expiry_ms = provider.generate_auth_token_from_role_arn(
                    s.region, s.role_arn, *([s.role_session_name] if s.role_session_name else []))
            elif s.profile:
                token, expiry_ms = provider.generate_auth_token_from_profile(s.region, s.profile)
            else:
                token, expiry_ms = provider.generate_auth_token(s.region)
        except (AttributeError, ValueError):
            # the signer's own words for "the chain found no credentials" (None.access_key) and
            # "empty credentials"
            raise KafkaAuthError(
                f"AWS_MSK_IAM: no AWS credentials found for {s.describe()} (environment "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, or the pod's or instance's "
                "role); provide some, or name a profile (awsProfileName) or role (awsRoleArn) "
                "in sasl.jaas.config.") from None
        except Exception as exc:  # botocore's errors: unknown profile, AssumeRole refused, ...
            raise KafkaAuthError(
                f"AWS_MSK_IAM: cannot sign a token with {s.describe()}: "
                f"{type(exc).__name__}: {exc}") from None
        return str(token), float(expiry_ms) / 1000.0

    def __call__(self, _oauthbearer_config: str | None = None) -> tuple[str, float]:
        try:
            return self.token()
        except KafkaAuthError as exc:
            # raised into librdkafka's thread, which only records a token failure: say why here
            log.warning("%s", exc)
            raise

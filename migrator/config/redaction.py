"""What is secret in a configuration, and copies of configurations and URLs safe to print or log."""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["SECRET_KEYS", "redact", "redact_url"]

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
_SECRET_HINT = re.compile(r"(password|secret|token|credential|jaas|api[._-]?key|user\.info)", re.I)


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

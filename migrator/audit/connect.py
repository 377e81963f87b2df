"""Read a Kafka Connect worker's REST API: connectors, their state, tasks and redacted config.

Read-only (GET only). Secrets are redacted twice over: keys that name a secret (password,
secret, token, credential, jaas, api key, user info) lose their value, and credentials embedded
in any value (``user:pass@host`` URLs, ``password=...`` fragments in JDBC-style strings) are
masked. ``${...}`` config-provider placeholders are kept: they are references, not secrets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx

from migrator.audit.registry import describe_http_error
from migrator.config import RestConnection, redact
from migrator.inventory import ConnectInfo, ConnectorInfo, SectionStatus

__all__ = ["ConnectReader", "connector_topics", "redact_connector_config"]

log = logging.getLogger(__name__)

MASK = "**********"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@",
                              re.I)
_INLINE_SECRET = re.compile(
    r"(?P<key>(password|passwd|pwd|secret|token|api[._-]?key)\s*[=:]\s*)(?P<value>[^;&,\s]+)",
    re.I,
)
_PLACEHOLDER = re.compile(r"^\$\{[^}]+\}$")


def _mask_value(value: str) -> str:
    value = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
    return _INLINE_SECRET.sub(lambda m: f"{m['key']}{MASK}", value)


def redact_connector_config(config: Mapping[str, Any]) -> dict[str, str]:
    """A connector config safe to print: secret keys masked, embedded credentials masked."""
    text = {k: "" if v is None else str(v) for k, v in config.items()}
    by_key = redact(text)
    out: dict[str, str] = {}
    for key, value in by_key.items():
        original = text[key]
        if value != original and _PLACEHOLDER.match(original):
            out[key] = original  # ${file:...} / ${env:...} references are not secrets
        else:
            out[key] = _mask_value(str(value))
    return out


def connector_topics(config: Mapping[str, Any]) -> list[str]:
    """Topics named in a connector config (sink `topics`, source `topic`, common variants)."""
    topics: list[str] = []
    for key in ("topics", "topic", "kafka.topic", "kafka.topics"):
        raw = config.get(key)
        if raw:
            topics.extend(t.strip() for t in str(raw).split(",") if t.strip())
    return sorted(set(topics))


def _kind(raw: Any) -> Literal["source", "sink", "unknown"]:
    if raw in ("source", "sink"):
        return raw  # type: ignore[no-any-return]
    return "unknown"


class ConnectReader:
    """Reads one Connect cluster's connectors."""

    def __init__(self, connection: RestConnection) -> None:
        self.url = connection.url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url + "/", auth=connection.httpx_auth(), timeout=connection.timeout
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ConnectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, **params: Any) -> Any:
        response = self._client.get(path, params=params or None)
        response.raise_for_status()
        return response.json()

    def read(self, keep: Callable[[str, list[str]], bool] = lambda name, topics: True) -> ConnectInfo:
        """The Connect section (never raises for an unreachable or refusing worker).

        ``keep(name, topics)`` filters connectors (the audit keeps those touching included topics).
        """
        try:
            root = self._get("")
            expanded = self._client.get(
                "connectors", params=[("expand", "info"), ("expand", "status")]
            )
            expanded.raise_for_status()
            data: dict[str, Any] = expanded.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.info("connect at %s unavailable: %s", self.url, describe_http_error(exc))
            return ConnectInfo(
                url=self.url, status=SectionStatus(available=False, error=describe_http_error(exc))
            )
        connectors: list[ConnectorInfo] = []
        for name in sorted(data):
            entry = data[name] or {}
            info = entry.get("info") or {}
            status = entry.get("status") or {}
            config = info.get("config") or {}
            topics = connector_topics(config)
            if not keep(name, topics):
                continue
            connectors.append(
                ConnectorInfo(
                    name=name,
                    connector_class=str(config.get("connector.class", "")),
                    kind=_kind(info.get("type") or status.get("type")),
                    state=str((status.get("connector") or {}).get("state", "UNKNOWN")),
                    task_states=[
                        str(t.get("state", "UNKNOWN"))
                        for t in sorted(status.get("tasks") or [], key=lambda t: t.get("id", 0))
                    ],
                    config=redact_connector_config(config),
                    topics=topics,
                )
            )
        version = root.get("version") if isinstance(root, dict) else None
        return ConnectInfo(url=self.url, version=version, connectors=connectors)

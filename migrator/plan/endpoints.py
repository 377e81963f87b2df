"""The endpoint file: which HTTP endpoint replaces each consumer group.

```yaml
groups:                       # consumer group (glob allowed) -> endpoint URL
  billing: https://billing.example.com/kafka/{topic}
  "analytics-*": https://analytics.example.com/ingest
schedules:                    # source connector (glob allowed) -> URL its schedule calls
  inventory-import: https://jobs.example.com/import/{connector}
failure_callback: https://ops.example.com/qstash-failed   # optional, for every route
latency_ms:                   # consumer group (glob) -> endpoint round trip, ms (default 100)
  billing: 250
ordering:                     # consumer group (glob) -> strict (default) | best_effort
  "analytics-*": best_effort  # a flow-control key instead of FIFO queues: order can break on a retry
```

``{topic}`` and ``{group}`` in a group's URL are replaced per route, ``{connector}`` in a
schedule's URL; any other ``{...}`` field is refused. The first matching pattern wins
(file order). A pattern that matches no group of the inventory is an error naming the file and
line (a typo would otherwise silently leave a placeholder). Unmapped groups get a placeholder.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from migrator.errors import ConfigError
from migrator.plan.spec import placeholder
from migrator.yamlfile import compose, line_of, load_model

__all__ = ["DEFAULT_LATENCY_MS", "EndpointFile", "EndpointMap", "Ordering", "load_endpoints"]

DEFAULT_LATENCY_MS = 100.0
"""Endpoint round trip assumed for an ordered route's capacity when the file gives none."""

Ordering = Literal["strict", "best_effort"]

_V = TypeVar("_V")


_FIELD = re.compile(r"\{([^{}]*)\}")


def _url(*fields: str) -> Callable[[str], str]:
    """A validator: an http(s) URL whose ``{...}`` fields are only ``fields`` (a typo such as
    ``{topics}`` would otherwise reach QStash as a literal URL)."""

    def check(value: str) -> str:
        if not (value.startswith("http://") or value.startswith("https://")) or " " in value:
            raise ValueError(
                f"{value!r} is not an http(s) URL; write it like https://example.com/hook")
        unknown = [f for f in _FIELD.findall(value) if f not in fields]
        if unknown:
            allowed = ", ".join("{" + f + "}" for f in fields) or "none"
            raise ValueError(
                f"{value!r}: unknown field {{{unknown[0]}}} in the URL (allowed here: {allowed})")
        return value

    return check


Url = Annotated[str, AfterValidator(_url())]
GroupUrl = Annotated[str, AfterValidator(_url("topic", "group"))]
ConnectorUrl = Annotated[str, AfterValidator(_url("connector"))]


class EndpointFile(BaseModel):
    """The endpoint file's content."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    groups: dict[str, GroupUrl] = Field(default_factory=dict)
    """Consumer group (glob) -> endpoint URL; {topic} and {group} are replaced."""
    schedules: dict[str, ConnectorUrl] = Field(default_factory=dict)
    """Source connector (glob) -> URL its QStash schedule calls; {connector} is replaced."""
    workflows: list[str] = Field(default_factory=list)
    """Consumer groups (globs) whose endpoints are Upstash Workflows even if not detected."""
    failure_callback: Url | None = None
    """Failure callback URL for every route (QStash calls it when retries are exhausted)."""
    latency_ms: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    """Consumer group (glob) -> its endpoint's round trip in ms, for an ordered route's capacity
    (a FIFO queue delivers one message per round trip); default 100."""
    ordering: dict[str, Ordering] = Field(default_factory=dict)
    """Consumer group (glob) -> how ordered topics reach it: strict (FIFO queues, the default) or
    best_effort (a flow-control key with parallelism 1: order can break on a retry)."""


@dataclass(frozen=True)
class EndpointMap:
    """Resolves groups and connectors to URLs; unmapped ones become placeholders."""

    file: EndpointFile

    @classmethod
    def empty(cls) -> EndpointMap:
        return cls(EndpointFile())

    def for_group(self, group: str, topic: str) -> str:
        url = _first_match(self.file.groups, group)
        if url is None:
            return placeholder(f"endpoint URL for consumer group {group!r} (topic {topic!r})")
        return url.replace("{topic}", topic).replace("{group}", group)

    def for_connector(self, connector: str) -> str:
        url = _first_match(self.file.schedules, connector)
        if url is None:
            return placeholder(f"URL the schedule of source connector {connector!r} calls")
        return url.replace("{connector}", connector)

    def is_workflow(self, group: str) -> bool:
        return any(fnmatch.fnmatchcase(group, pattern) for pattern in self.file.workflows)

    def ordering(self, group: str) -> Ordering:
        """strict unless the file opts ``group`` into best_effort."""
        found = _first_match(self.file.ordering, group)
        return "best_effort" if found == "best_effort" else "strict"

    def latency_ms(self, group: str) -> float:
        found = _first_match(self.file.latency_ms, group)
        return DEFAULT_LATENCY_MS if found is None else found

    @property
    def failure_callback(self) -> str | None:
        return self.file.failure_callback


def _first_match(mapping: dict[str, _V], name: str) -> _V | None:
    for pattern, url in mapping.items():
        if fnmatch.fnmatchcase(name, pattern):
            return url
    return None


def load_endpoints(
    path: str | Path, *, groups: Iterable[str], connectors: Iterable[str] = ()
) -> EndpointMap:
    """Read the endpoint file and check every pattern matches a known group or connector."""
    path = Path(path)
    file = load_model(path, EndpointFile, "endpoint file", "docs/plan.md#endpoint-file")
    node = compose(path)
    known = {"groups": sorted(set(groups)), "schedules": sorted(set(connectors))}
    known["workflows"] = known["ordering"] = known["latency_ms"] = known["groups"]
    entries: dict[str, Iterable[str]] = {
        "groups": file.groups,
        "schedules": file.schedules,
        "workflows": file.workflows,
        "ordering": file.ordering,
        "latency_ms": file.latency_ms,
    }
    for section, patterns in entries.items():
        for index, pattern in enumerate(patterns):
            if not any(fnmatch.fnmatchcase(name, pattern) for name in known[section]):
                _unknown(path, node, section, index, pattern, known[section])
    return EndpointMap(file)


def _unknown(
    path: Path, node: yaml.Node | None, section: str, index: int, pattern: str, known: list[str]
) -> None:
    loc: tuple[str | int, ...] = (section, index) if section == "workflows" else (section, pattern)
    line = line_of(node, loc)
    if section != "workflows" and isinstance(node, yaml.MappingNode):
        line = _key_line(node, section, pattern) or line
    what = "source connector" if section == "schedules" else "consumer group"
    hint = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "") if known else "none"
    raise ConfigError(
        f"{path}:{line}: {section}.{pattern}: unknown {what} {pattern!r}: it matches nothing in "
        f"the inventory (known: {hint}); fix the name or remove the entry."
    )


def _key_line(node: yaml.MappingNode, section: str, key: str) -> int | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == section and isinstance(v, yaml.MappingNode):
            for kk, _ in v.value:
                if isinstance(kk, yaml.ScalarNode) and kk.value == key:
                    return int(kk.start_mark.line) + 1
    return None

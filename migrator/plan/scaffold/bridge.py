"""The plan's routes as a ``bridge.yaml`` that ``migrator bridge run`` accepts as is.

It is built as a :class:`~migrator.bridge.config.BridgeConfig` (so it validates here, with the
bridge's own rules) and dumped; routes whose endpoints are still placeholders are left out and
named in the file's header until the endpoint file maps them.
"""

from __future__ import annotations

from typing import Any

from migrator.bridge.config import BridgeConfig
from migrator.plan.fifo import queue_base, safe_name
from migrator.plan.spec import Plan, RouteSpec, is_placeholder
from migrator.yamlfile import dump_yaml

__all__ = ["bridge_config", "bridge_yaml", "flow_control_keys"]


def _options(route: RouteSpec, label: str) -> dict[str, Any]:
    opts: dict[str, Any] = {"retries": route.retries, "label": label}
    if route.retry_delay:
        opts["retry_delay"] = route.retry_delay
    if route.failure_callback:
        opts["failure_callback"] = route.failure_callback
    return opts


def _flow(
    route: RouteSpec, prefix: str, group: str | None, *, workflow: bool = False
) -> dict[str, Any] | None:
    if route.ordering is not None:  # best effort (opted in, or a workflow): order can break
        if not route.ordering.key:
            return None
        key = route.ordering.key
        if group is not None:  # several groups: each keeps its own order
            key = key.replace("{topic}", "{topic}." + safe_name(group), 1)
        return {"key": key, "parallelism": route.ordering.parallelism}
    if route.rate is None and route.parallelism is None:
        return None
    flow: dict[str, Any] = {"key": prefix + "{topic}"}
    if route.rate is not None:
        flow["rate"] = route.rate
    if route.parallelism is not None:
        flow["parallelism"] = route.parallelism
    return flow


def _enqueue(route: RouteSpec, group: str, url: str, label: str) -> dict[str, Any]:
    """An enqueue-queue destination over ``group``'s FIFO queues.

    Partition p goes to queue ``<base>-<p mod queues>`` (``{index}``), also when there is a
    queue per partition: a partition added later then shares a planned queue instead of
    creating one the plan did not count against the QStash plan's queue limit."""
    base = queue_base(route, group)
    if base is None or route.ordering is None or route.ordering.queues is None:
        # never a silent downgrade to an unordered destination
        raise ValueError(f"route {route.topic}: group {group} has FIFO ordering but no queues")
    return {"kind": "enqueue-queue", "queue": base + "-{index}", "queues": route.ordering.queues,
            "url": url, **_options(route, label)}


def _destinations(route: RouteSpec, prefix: str) -> list[dict[str, Any]]:
    label = safe_name(prefix + route.topic)
    plain = [t for t in route.targets if not t.workflow]
    several = len(plain) > 1
    out: list[dict[str, Any]] = []
    # one destination per consumer group, naming the group it replaces: `migrator cutover`
    # hands each group over on its own (a fan-out topic's URL group is for the producers, later)
    if route.ordering is not None and route.ordering.mode == "fifo_queue":
        for target in plain:
            if target.group in route.ordering.best_effort:  # opted in: order can break on a retry
                out.append({"kind": "publish-url", "url": target.endpoint,
                            **_options(route, label),
                            "flow_control": _flow(route, prefix, target.group if several else None),
                            "replaces_group": target.group})
            else:
                out.append({**_enqueue(route, target.group, target.endpoint, label),
                            "replaces_group": target.group})
    else:
        for target in plain:
            out.append({"kind": "publish-url", "url": target.endpoint, **_options(route, label),
                        "flow_control": _flow(route, prefix, target.group if several else None),
                        "replaces_group": target.group})
    for target in route.targets:
        if target.workflow:
            flow = _flow(route, prefix, target.group if len(route.targets) > 1 else None,
                         workflow=True)
            out.append({"kind": "workflow", "url": target.endpoint, **_options(route, label),
                        "flow_control": flow, "replaces_group": target.group})
    return [{k: v for k, v in d.items() if v is not None} for d in out]


def flow_control_keys(route: RouteSpec, prefix: str) -> list[str]:
    """The flow-control keys bridge.yaml gives ``route``'s destinations, as they will be sent
    (one per group when the topic fans out), for the review to show."""
    keys = [d["flow_control"]["key"] for d in _destinations(route, prefix) if "flow_control" in d]
    return list(dict.fromkeys(keys))


def bridge_config(
    plan: Plan, group: str = "migrator-bridge"
) -> tuple[BridgeConfig | None, list[str]]:
    """The bridge config for every fully mapped route, and the topics left out (and why)."""
    routes: list[dict[str, Any]] = []
    left_out: list[str] = []
    for route in plan.routes:
        if not route.targets:
            continue
        unmapped = [t.group for t in route.targets if is_placeholder(t.endpoint)]
        if unmapped or is_placeholder(route.failure_callback):
            left_out.append(f"{route.topic} (unmapped: {', '.join(unmapped) or 'failure_callback'})")
            continue
        entry: dict[str, Any] = {
            "topic": route.topic,
            "name": route.topic,
            "destinations": _destinations(route, plan.prefix),
            "ordered": route.ordering is not None,
            "tombstone": route.tombstones,
        }
        if route.decode == "decode":
            entry["payload"] = {"mode": "decode",
                                "schema_registry_url": plan.source.schema_registry_url}
        routes.append(entry)
    if not routes:
        return None, left_out
    # no `start`: every destination replaces a group, and the bridge delivers a group's records
    # only once `migrator cutover switch` handed its committed offsets over
    data = {"kafka": {"bootstrap_servers": plan.source.bootstrap_servers},
            "group": group, "routes": routes}
    return BridgeConfig.model_validate(data), left_out


def bridge_yaml(plan: Plan, group: str = "migrator-bridge") -> tuple[str | None, list[str]]:
    """The bridge.yaml text (None when no route is mapped yet) and the topics left out."""
    config, left_out = bridge_config(plan, group)
    if config is None:
        return None, left_out
    header = ["# Bridge config generated by `migrator plan` (validated as BridgeConfig).",
              "# Run: migrator bridge run --config bridge.yaml  (QSTASH_URL / QSTASH_TOKEN from env;",
              "#      Kafka credentials: --kafka-config client.properties, never in this file)",
              "# Each destination names the consumer group it replaces: the bridge delivers nothing",
              "# for a group until `migrator cutover switch GROUP` hands it over (RUNBOOK.md)."]
    if left_out:
        header.append("# Not routed yet (map them in the endpoint file, re-run `migrator plan`): "
                      + "; ".join(left_out))
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["group"] = config.group  # always explicit: it must not collide with another bridge
    for route in data["routes"]:  # `kind` first, for the reader
        route["destinations"] = [{"kind": d.pop("kind"), **d} for d in route["destinations"]]
    return "\n".join(header) + "\n" + dump_yaml(data), left_out

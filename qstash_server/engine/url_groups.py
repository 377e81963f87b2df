"""URL groups (topics): named sets of endpoints (a publish fans out one message per endpoint),
and their operations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qstash_server.engine.publish_config import is_url, validate_name
from qstash_server.engine.state import BrokerState
from qstash_server.engine.timing import now_ms
from qstash_server.problems import ApiError

__all__ = ["UrlGroup", "UrlGroupOps"]


@dataclass
class UrlGroup:
    name: str
    created_at: int
    updated_at: int
    endpoints: list[dict[str, str]] = field(default_factory=list)

    def upsert(self, endpoints: list[dict[str, str]], now: int) -> None:
        for ep in endpoints:
            existing = next(
                (e for e in self.endpoints
                 if e["url"] == ep["url"] or (ep.get("name") and e.get("name") == ep["name"])),
                None,
            )
            if existing is None:
                self.endpoints.append({"url": ep["url"], "name": ep.get("name") or ""})
            else:
                existing["url"] = ep["url"]
                if ep.get("name"):
                    existing["name"] = ep["name"]
        self.updated_at = now

    def remove(self, endpoints: list[dict[str, str]], now: int) -> None:
        def matches(e: dict[str, str]) -> bool:
            return any(
                (r.get("url") and e["url"] == r["url"]) or (r.get("name") and e["name"] == r["name"])
                for r in endpoints
            )

        self.endpoints = [e for e in self.endpoints if not matches(e)]
        self.updated_at = now

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "endpoints": self.endpoints,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> UrlGroup:
        return cls(data["name"], data["created_at"], data["updated_at"], data["endpoints"])

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "endpoints": [
                {"url": e["url"], **({"name": e["name"]} if e.get("name") else {})}
                for e in self.endpoints
            ],
        }


class UrlGroupOps(BrokerState):
    """URL groups and their endpoints."""

    def upsert_endpoints(self, name: str, endpoints: list[dict[str, str]]) -> None:
        validate_name("url group", name)
        for ep in endpoints:
            if not isinstance(ep, dict) or not is_url(str(ep.get("url", ""))):
                raise ApiError(400, "every endpoint needs a 'url' that is an http(s) URL")
        now = now_ms()
        group = self.groups.get(name)
        if group is None:
            if len(self.groups) >= self.limits.max_url_groups:
                raise ApiError(
                    412,
                    f"url group limit of {self.limits.max_url_groups} reached on the "
                    f"{self.limits.name} plan",
                )
            group = UrlGroup(name, now, now)
        group.upsert(endpoints, now)
        if len(group.endpoints) > self.limits.max_endpoints_per_group:
            raise ApiError(
                412,
                f"a url group can hold at most {self.limits.max_endpoints_per_group} endpoints on "
                f"the {self.limits.name} plan",
            )
        self.groups[name] = group
        self.store.put("group", name, group.to_record())

    def remove_endpoints(self, name: str, endpoints: list[dict[str, str]]) -> None:
        group = self.groups.get(name)
        if group is None:
            raise ApiError(404, f"url group {name} not found")
        group.remove(endpoints, now_ms())
        if group.endpoints:
            self.store.put("group", name, group.to_record())
        else:
            del self.groups[name]
            self.store.delete("group", name)

    def get_group(self, name: str) -> UrlGroup:
        group = self.groups.get(name)
        if group is None:
            raise ApiError(404, f"url group {name} not found")
        return group

    def delete_group(self, name: str) -> None:
        self.get_group(name)
        del self.groups[name]
        self.store.delete("group", name)

    def list_groups(self) -> list[dict[str, Any]]:
        return [g.to_api() for g in self.groups.values()]

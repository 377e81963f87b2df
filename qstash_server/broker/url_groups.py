"""URL groups (topics): their endpoints."""

from __future__ import annotations

from qstash_server.broker.state import BrokerState
from qstash_server.messages import is_url, validate_name
from qstash_server.problems import ApiError
from qstash_server.timing import now_ms
from qstash_server.url_groups import UrlGroup

__all__ = ["UrlGroupOps"]


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

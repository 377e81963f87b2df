"""URL groups (topics): named sets of endpoints; a publish fans out one message per endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["UrlGroup"]


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

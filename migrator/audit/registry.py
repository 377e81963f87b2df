"""Read a Confluent-compatible Schema Registry (Confluent SR, Apicurio ccompat, Redpanda).

Plain REST over httpx rather than confluent-kafka's SchemaRegistryClient: the audit needs
per-call timeouts, no retries on a dead registry, and an answer it can degrade on (a section
marked unavailable) instead of an exception. Read-only: only GET requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx

from migrator.audit.records import SchemaRef
from migrator.config import RestConnection
from migrator.inventory import (
    SchemaReferenceInfo,
    SchemaRegistryInfo,
    SchemaSubjectInfo,
    SectionStatus,
)

__all__ = ["RegistryReader", "describe_http_error", "subject_topic"]

log = logging.getLogger(__name__)

_TYPES = {"AVRO", "JSON", "PROTOBUF"}


def subject_topic(subject: str) -> tuple[str | None, str | None]:
    """(topic, role) for a subject named by the topic-name strategy, else (None, None)."""
    for role in ("value", "key"):
        suffix = f"-{role}"
        if subject.endswith(suffix) and len(subject) > len(suffix):
            return subject[: -len(suffix)], role
    return None, None


def describe_http_error(exc: Exception) -> str:
    """A short, secret-free reason for a failed REST call."""
    if isinstance(exc, httpx.HTTPStatusError):
        reason = exc.response.reason_phrase or ""
        return f"HTTP {exc.response.status_code} {reason}".strip()
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    if isinstance(exc, ValueError):
        return "answer is not the expected JSON"
    return type(exc).__name__


class RegistryReader:
    """Reads subjects and schemas; one instance per audit (keeps one HTTP connection pool)."""

    def __init__(self, connection: RestConnection, *, workers: int = 8) -> None:
        self.url = connection.url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url + "/",
            auth=connection.httpx_auth(),
            timeout=connection.timeout,
            headers={"Accept": "application/vnd.schemaregistry.v1+json, application/json"},
        )
        self._workers = workers

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RegistryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, *, missing_ok: bool = False) -> Any:
        response = self._client.get(path)
        if missing_ok and response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def read(
        self,
        keep_subject: Callable[[str], bool] = lambda s: True,
        existing_topics: Iterable[str] = (),
        progress: Callable[[int], None] | None = None,
    ) -> SchemaRegistryInfo:
        """The registry section: never raises for an unreachable or refusing registry."""
        topics = set(existing_topics)
        try:
            every = set(self._get("subjects"))
            global_config = self._get("config", missing_ok=True) or {}
        except (httpx.HTTPError, ValueError) as exc:
            log.info("schema registry at %s unavailable: %s", self.url, describe_http_error(exc))
            return SchemaRegistryInfo(
                url=self.url,
                status=SectionStatus(available=False, error=describe_http_error(exc)),
            )
        infos: list[SchemaSubjectInfo] = []
        errors: list[str] = []

        def one(subject: str) -> SchemaSubjectInfo | None:
            try:
                return self._subject(subject, topics)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                errors.append(f"{subject}: {describe_http_error(exc)}")
                return None

        # Kept subjects first, then whatever they reference (transitively), even if filtered out.
        todo = sorted(s for s in every if keep_subject(s))
        seen = set(todo)
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            while todo:
                batch: list[SchemaSubjectInfo] = []
                for info in pool.map(one, todo):
                    if progress:
                        progress(1)
                    if info is not None:
                        batch.append(info)
                infos.extend(batch)
                refs = {r.subject for info in batch for r in info.references}
                todo = sorted((refs & every) - seen)
                seen.update(todo)
        infos.sort(key=lambda i: i.subject)
        status = SectionStatus()
        if errors:
            status = SectionStatus(
                available=False,
                error=f"{len(errors)} subject(s) unreadable, first: {errors[0]}",
            )
        return SchemaRegistryInfo(
            url=self.url,
            status=status,
            global_compatibility=global_config.get("compatibilityLevel")
            or global_config.get("compatibility"),
            subjects=infos,
        )

    def _subject(self, subject: str, topics: set[str]) -> SchemaSubjectInfo:
        quoted = quote(subject, safe="")
        versions = sorted(int(v) for v in self._get(f"subjects/{quoted}/versions"))
        latest = self._get(f"subjects/{quoted}/versions/latest")
        config = self._get(f"config/{quoted}", missing_ok=True) or {}
        schema_type = str(latest.get("schemaType") or "AVRO").upper()
        if schema_type not in _TYPES:
            schema_type = "AVRO"
        topic, role = subject_topic(subject)
        return SchemaSubjectInfo(
            subject=subject,
            versions=versions,
            latest_version=int(latest["version"]),
            latest_id=int(latest["id"]),
            schema_type=schema_type,
            compatibility=config.get("compatibilityLevel") or config.get("compatibility"),
            references=[
                SchemaReferenceInfo(name=r["name"], subject=r["subject"], version=int(r["version"]))
                for r in latest.get("references") or []
            ],
            topic=topic if topic in topics else None,
            role=role if topic in topics else None,
            schema_str=latest.get("schema"),
        )

    def schema_refs(self, schema_ids: Iterable[int]) -> dict[int, SchemaRef]:
        """Type and subjects of each schema id seen in records (ids the registry lacks are left out)."""
        out: dict[int, SchemaRef] = {}
        for schema_id in sorted(set(schema_ids)):
            try:
                schema = self._get(f"schemas/ids/{schema_id}", missing_ok=True)
                if schema is None:
                    continue
                versions = self._get(f"schemas/ids/{schema_id}/versions", missing_ok=True) or []
            except (httpx.HTTPError, ValueError) as exc:
                log.info("schema id %d: %s", schema_id, describe_http_error(exc))
                continue
            subjects = tuple(sorted({str(v["subject"]) for v in versions if "subject" in v}))
            out[schema_id] = SchemaRef(str(schema.get("schemaType") or "AVRO").upper(), subjects)
        return out

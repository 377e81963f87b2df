"""Schema Registry look-ups: a schema id becomes (type, schema text[, Protobuf references]).

:func:`registry_lookup` reads through confluent-kafka's client (made in
:mod:`migrator.kafka.registry`); tests and embedders may pass any :data:`SchemaLookup`.
:func:`registry_outage` tells a registry that is down from one that refused the id.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from connectors.codecs.protobuf import (
    ProtoReferences,
    builtin_proto,
    descriptor_proto,
    parse_descriptor_b64,
)
from migrator.errors import PermanentDeliveryError

__all__ = ["ProtoReferences", "RegistryLookup", "SchemaLookup", "registry_lookup", "registry_outage"]


def _no_answer_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError, httpx.TransportError]
    try:  # confluent-kafka's registry client uses httpx's successor when it is installed
        import httpx2

        types.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(types)


_NO_ANSWER = _no_answer_types()


SchemaLookup = Callable[[int], tuple[str, str] | tuple[str, str, ProtoReferences]]
"""schema id -> (schema type AVRO|JSON|PROTOBUF, schema text[, Protobuf references]).

A Protobuf schema's text is a base64 ``FileDescriptorProto``; the optional third item holds the
files it imports (transitively), which a lookup may omit when there are none."""


class RegistryLookup:
    """A :data:`SchemaLookup` backed by confluent-kafka's SchemaRegistryClient (which caches by id).

    Protobuf schemas come back as base64 ``FileDescriptorProto``: the stored text when it already
    is one (what confluent-kafka's ProtobufSerializer registers), else the registry's
    ``format=serialized`` rendering. Their references are followed recursively by subject and
    version. A reference the registry does not have, or a cycle, is a PermanentDeliveryError
    naming the schema id and the reference.

    It holds two clients (with keep-alive connections): ``close()`` them, or use it as a context
    manager.
    """

    def __init__(self, url: str, conf: dict[str, str] | None = None) -> None:
        from migrator.kafka.registry import registry_client

        self._client = registry_client(url, conf)
        # The client caches by id and by subject/version whatever the format asked for, so the
        # serialized renderings come from a client of their own.
        self._serialized = registry_client(url, conf)

    def __call__(self, schema_id: int) -> tuple[str, str] | tuple[str, str, ProtoReferences]:
        client, serialized = self._client, self._serialized
        schema = client.get_schema(schema_id)
        kind = (schema.schema_type or "AVRO").upper()
        if kind != "PROTOBUF":
            return kind, schema.schema_str or ""
        what = f"PROTOBUF schema id {schema_id}"
        text = _descriptor_text(
            schema.schema_str,
            lambda: serialized.get_schema(schema_id, fmt="serialized").schema_str,
            what,
        )
        files: dict[str, str] = {}
        _resolve_references(client, serialized, schema.references or [], schema_id, (), files)
        return kind, text, list(files.items())

    def close(self) -> None:
        self._client.close()
        self._serialized.close()

    def __enter__(self) -> RegistryLookup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def registry_lookup(url: str, conf: dict[str, str] | None = None) -> RegistryLookup:
    """A :class:`RegistryLookup` for the registry at ``url`` (close it when done)."""
    return RegistryLookup(url, conf)


def _resolve_references(
    client: Any,
    serialized: Any,
    references: Sequence[Any],
    schema_id: int,
    chain: tuple[str, ...],
    files: dict[str, str],
) -> None:
    """Add ``references`` (and theirs, first) to ``files``: import name -> base64 descriptor."""
    from migrator.kafka.registry import SchemaRegistryError

    for ref in references:
        name, subject, version = ref.name, ref.subject, ref.version
        if not name or builtin_proto(name):
            continue  # the codec's pool already holds the well-known and logical types
        step = f"{name!r} (subject {subject!r} version {version})"
        if step in chain:
            path = " -> ".join([*chain, step])
            raise PermanentDeliveryError(
                f"PROTOBUF schema id {schema_id}: its references form a cycle ({path}); "
                "fix the references in the registry or decode this topic as bytes"
            )
        if name in files:
            continue
        if not subject or version is None:
            raise PermanentDeliveryError(
                f"PROTOBUF schema id {schema_id}: reference {name!r} has no subject or version"
            )
        try:
            found = client.get_version(subject, version)
        except SchemaRegistryError as exc:
            raise PermanentDeliveryError(
                f"PROTOBUF schema id {schema_id}: reference {step} is missing from the registry "
                f"({exc}); register it or decode this topic as bytes"
            ) from None
        what = f"PROTOBUF schema id {schema_id}: reference {step}"

        def fetch(subject: str = subject, version: int = version) -> str | None:
            rendered = serialized.get_version(subject, version, fmt="serialized")
            answer: str | None = rendered.schema.schema_str
            return answer

        text = _descriptor_text(found.schema.schema_str, fetch, what)
        _resolve_references(
            client, serialized, found.schema.references or [], schema_id, (*chain, step), files
        )
        files[name] = text


def _descriptor_text(
    stored: str | None, fetch_serialized: Callable[[], str | None], what: str
) -> str:
    """A base64 ``FileDescriptorProto`` for a Protobuf schema: ``stored`` when it is one, else
    the registry's ``format=serialized`` answer (base64 from Confluent; Apicurio 3 sends the raw
    bytes as a JSON string, intact only when it holds no U+FFFD replacement character)."""
    if stored and parse_descriptor_b64(stored) is not None:
        return stored
    try:
        answer = fetch_serialized() or ""
    except Exception as exc:
        raise PermanentDeliveryError(
            f"{what}: the registry cannot render it as a serialized descriptor ({exc}); "
            "register it with confluent-kafka's ProtobufSerializer or decode this topic as bytes"
        ) from None
    if parse_descriptor_b64(answer) is not None:
        return answer
    if "\ufffd" not in answer:
        try:
            raw = answer.encode("utf-8")
            descriptor_proto(raw)
            return base64.b64encode(raw).decode("ascii")
        except Exception:
            pass
    raise PermanentDeliveryError(
        f"{what}: the registry returned no intact serialized descriptor for it (it stores .proto "
        "text, and the bridge has no .proto parser); register it with confluent-kafka's "
        "ProtobufSerializer or decode this topic as bytes"
    )


def registry_outage(exc: BaseException) -> bool:
    """The registry did not answer, or answered 5xx/429: not the record's doing (an unknown
    schema id, 404, or a refused credential, 401/403, is). Told apart by type and status:
    network errors of httpx and of the copy confluent-kafka's registry client uses (httpx2)."""
    if isinstance(exc, _NO_ANSWER):
        return True
    status = getattr(exc, "http_status_code", None)
    return isinstance(status, int) and (status >= 500 or status == 429)

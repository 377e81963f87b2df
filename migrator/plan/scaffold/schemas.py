"""Registry schemas (Avro, JSON Schema) as pydantic models and TypeScript types for scaffolds.

Types follow what the bridge's decode mode delivers: Avro logical timestamps as ISO 8601 strings
(``datetime``), decimals as numbers or strings (``Decimal``), bytes as strings. Protobuf and
anything unreadable fall back to an untyped object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TypedSchema", "typed_schema"]


@dataclass
class TypedSchema:
    """Generated declarations and the name of the top-level type (None: untyped)."""

    python: list[str] = field(default_factory=list)
    typescript: list[str] = field(default_factory=list)
    root: str | None = None


def _class_name(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name.rsplit(".", 1)[-1])
    out = "".join(p[:1].upper() + p[1:] for p in parts if p)
    return out if out and not out[0].isdigit() else f"Record{out}"


def _ident(name: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if ident and not ident[0].isdigit() else f"f_{ident}"


def typed_schema(schema_type: str, schema_str: str | None, fallback_name: str) -> TypedSchema:
    """Declarations for one subject's schema, or an empty result when it cannot be typed."""
    if not schema_str or schema_type not in ("AVRO", "JSON"):
        return TypedSchema()
    try:
        doc = json.loads(schema_str)
    except ValueError:
        return TypedSchema()
    out = TypedSchema()
    try:
        if schema_type == "AVRO":
            out.root = _Avro(out).type_of(doc, fallback_name)[0]
        else:
            out.root = _JsonSchema(out).object(doc, doc.get("title") or fallback_name)
    except (KeyError, TypeError, AttributeError):
        return TypedSchema()
    if out.root in ("Any", "dict[str, Any]"):
        return TypedSchema()
    return out


class _Avro:
    PRIMS = {"string": ("str", "string"), "int": ("int", "number"), "long": ("int", "number"),
             "float": ("float", "number"), "double": ("float", "number"),
             "boolean": ("bool", "boolean"), "bytes": ("str", "string"), "null": ("None", "null")}

    def __init__(self, out: TypedSchema) -> None:
        self.out = out
        self.seen: set[str] = set()

    def type_of(self, t: Any, hint: str) -> tuple[str, str]:
        """(python type, typescript type) of an Avro schema node."""
        if isinstance(t, list):
            members = [self.type_of(m, hint) for m in t]
            return (" | ".join(m[0] for m in members), " | ".join(m[1] for m in members))
        if isinstance(t, str):
            if t in self.PRIMS:
                return self.PRIMS[t]
            name = _class_name(t)
            return (name, name) if name in self.seen else ("Any", "unknown")
        logical = t.get("logicalType")
        if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis"):
            return "datetime", "string"
        if logical == "date":
            return "date", "string"
        if logical == "decimal":
            return "Decimal", "number | string"
        kind = t.get("type")
        if kind == "record":
            return self.record(t)
        if kind == "enum":
            symbols = t.get("symbols", [])
            return ("Literal[" + ", ".join(repr(s) for s in symbols) + "]" if symbols else "str",
                    " | ".join(json.dumps(s) for s in symbols) or "string")
        if kind == "array":
            py, ts = self.type_of(t["items"], hint)
            return f"list[{py}]", f"Array<{ts}>"
        if kind == "map":
            py, ts = self.type_of(t["values"], hint)
            return f"dict[str, {py}]", f"Record<string, {ts}>"
        if kind == "fixed":
            return "str", "string"
        return self.type_of(kind, hint)

    def record(self, t: dict[str, Any]) -> tuple[str, str]:
        name = _class_name(t["name"])
        if name in self.seen:
            return name, name
        self.seen.add(name)
        py_lines = [f"class {name}(BaseModel):", "    model_config = ConfigDict(extra=\"allow\")"]
        ts_lines = [f"export interface {name} {{"]
        for f in t["fields"]:
            py, ts = self.type_of(f["type"], f["name"])
            optional = "None" in py.split(" | ")
            default = " = None" if optional else ""
            py_lines.append(f"    {_ident(f['name'])}: {py}{default}")
            ts_lines.append(f"  {json.dumps(f['name'])}{'?' if optional else ''}: {ts};")
        ts_lines.append("}")
        self.out.python.append("\n".join(py_lines))
        self.out.typescript.append("\n".join(ts_lines))
        return name, name


class _JsonSchema:
    def __init__(self, out: TypedSchema) -> None:
        self.out = out

    def type_of(self, s: dict[str, Any], hint: str) -> tuple[str, str]:
        kind = s.get("type")
        if isinstance(kind, list):
            parts = [self.type_of({**s, "type": k}, hint) for k in kind]
            return " | ".join(p[0] for p in parts), " | ".join(p[1] for p in parts)
        if kind == "string":
            return ("datetime", "string") if s.get("format") == "date-time" else ("str", "string")
        if kind == "integer":
            return "int", "number"
        if kind == "number":
            return "float", "number"
        if kind == "boolean":
            return "bool", "boolean"
        if kind == "null":
            return "None", "null"
        if kind == "array":
            py, ts = self.type_of(s.get("items") or {}, hint)
            return f"list[{py}]", f"Array<{ts}>"
        if kind == "object" and s.get("properties"):
            name = self.object(s, s.get("title") or hint)
            return name, name
        if kind == "object":
            return "dict[str, Any]", "Record<string, unknown>"
        return "Any", "unknown"

    def object(self, s: dict[str, Any], hint: str) -> str:
        if not s.get("properties"):
            return "dict[str, Any]"
        name = _class_name(hint)
        required = set(s.get("required", []))
        py_lines = [f"class {name}(BaseModel):", "    model_config = ConfigDict(extra=\"allow\")"]
        ts_lines = [f"export interface {name} {{"]
        for prop, sub in s["properties"].items():
            py, ts = self.type_of(sub, prop)
            opt = prop not in required
            py_lines.append(f"    {_ident(prop)}: {py}{' | None = None' if opt else ''}")
            ts_lines.append(f"  {json.dumps(prop)}{'?' if opt else ''}: {ts};")
        ts_lines.append("}")
        self.out.python.append("\n".join(py_lines))
        self.out.typescript.append("\n".join(ts_lines))
        return name

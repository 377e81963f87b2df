"""Endpoint scaffolds: one FastAPI app per consumer group (upstash-workflow for workflows) and
one Next.js route per group and topic (@upstash/workflow for workflows), typed from the
registry's schemas where the inventory has them.

Templates are package data (``templates/*.j2``) with ``{{name}}`` placeholders.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources

from migrator.inventory import Inventory, SchemaSubjectInfo
from migrator.plan.builder import safe_name
from migrator.plan.scaffold.schemas import TypedSchema, typed_schema
from migrator.plan.spec import GroupTarget, Plan, RouteSpec

__all__ = ["endpoint_files"]


@functools.cache
def _template(name: str) -> str:
    return (resources.files("migrator.plan.scaffold") / "templates" / name).read_text("utf-8")


def _fill(template: str, **values: str) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def _module(group: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", group).lower()
    return name if name and not name[0].isdigit() else f"g_{name}"


def _subject(inv: Inventory, topic: str) -> SchemaSubjectInfo | None:
    for s in inv.schema_registry.subjects:
        if (s.topic == topic and s.role in (None, "value")) or s.subject == f"{topic}-value":
            return s
    return None


@dataclass
class _App:
    group: str
    workflow: bool
    routes: list[tuple[RouteSpec, GroupTarget, TypedSchema]] = field(default_factory=list)


def endpoint_files(plan: Plan, inventory: Inventory) -> dict[str, str]:
    """Relative path -> file text for every consumer group the plan routes."""
    apps: dict[tuple[str, bool], _App] = {}
    for route in plan.routes:
        subject = _subject(inventory, route.topic)
        schema = (typed_schema(subject.schema_type, subject.schema_str, route.topic)
                  if subject else TypedSchema())
        for target in route.targets:
            app = apps.setdefault((target.group, target.workflow), _App(target.group, target.workflow))
            app.routes.append((route, target, schema))
    files: dict[str, str] = {}
    for app in apps.values():
        base = _module(app.group) + ("_workflow" if app.workflow else "")
        module, n = base, 1
        while f"python/{module}.py" in files:  # groups "a-b" and "a_b" both make a_b.py
            n += 1
            module = f"{base}_{n}"
        files[f"python/{module}.py"] = _python(app, module)
        for route, _target, schema in app.routes:
            path = f"typescript/app/api/{safe_name(app.group)}/{safe_name(route.topic)}/route.ts"
            files[path] = _typescript(app, route, schema)
    return files


def _python(app: _App, module: str) -> str:
    models: list[str] = []
    handlers: list[str] = []
    for route, target, schema in app.routes:
        for decl in schema.python:
            if decl not in models:
                models.append(decl)
        ident = "handle_" + re.sub(r"[^A-Za-z0-9_]", "_", route.topic)
        if app.workflow:
            parse = (f"{schema.root}.model_validate(context.request_payload)" if schema.root
                     else "context.request_payload")
            handlers.append(_fill(_template("workflow_handler.py.j2"), topic=route.topic,
                                  ident=ident, group=app.group, parse_payload=parse))
        else:
            parse = (
                "    try:\n"
                f"        record = {schema.root}.model_validate_json(body)\n"
                "    except ValidationError as exc:  # will never succeed: straight to the DLQ\n"
                "        raise not_retryable(str(exc)) from None"
                if schema.root
                else "    record = body  # raw bytes: the records are not typed by a registry schema"
            )
            handlers.append(_fill(_template("fastapi_handler.py.j2"), topic=route.topic,
                                  ident=ident, group=app.group, parse=parse,
                                  pattern=route.pattern, reason=route.reason,
                                  retries=str(route.retries)))
        del target
    topics = ", ".join(r.topic for r, _, _ in app.routes)
    name = "workflow_app.py.j2" if app.workflow else "fastapi_app.py.j2"
    text = _fill(_template(name), group=app.group, topics=topics, module=module,
                 models="\n\n" + "\n\n\n".join(models) + "\n" if models else "",
                 handlers="".join("\n" + h for h in handlers))
    return text.rstrip() + "\n"


def _typescript(app: _App, route: RouteSpec, schema: TypedSchema) -> str:
    types = "\n\n".join(schema.typescript) + "\n" if schema.typescript else ""
    if app.workflow:
        return _fill(_template("next_workflow.ts.j2"), group=app.group, topic=route.topic,
                     types=types, payload_type=schema.root or "unknown")
    if schema.root:
        parse = (
            f"  let record: {schema.root};\n"
            "  try {\n"
            f"    record = JSON.parse(body) as {schema.root};\n"
            "  } catch {\n"
            "    // Will never succeed: 489 + Upstash-NonRetryable-Error sends it straight to the DLQ.\n"
            '    return new Response("not JSON", {\n'
            '      status: 489,\n'
            '      headers: { "Upstash-NonRetryable-Error": "true" },\n'
            "    });\n"
            "  }"
        )
    else:
        parse = "  const record = body; // raw text: not typed by a registry schema"
    return _fill(_template("next_route.ts.j2"), group=app.group, topic=route.topic, types=types,
                 parse=parse, pattern=route.pattern, reason=route.reason,
                 retries=str(route.retries))

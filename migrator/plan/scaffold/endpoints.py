"""Endpoint scaffolds: one FastAPI app per consumer group (upstash-workflow for workflows) and
one Next.js route per endpoint URL (@upstash/workflow for workflows), typed from the registry's
schemas where the inventory has them. Every route serves the path of the URL the plan maps its
group and topic to, so deployed as mapped, deliveries reach it.

Templates are package data (``templates/*.j2``) with ``{{name}}`` placeholders.
"""

from __future__ import annotations

import functools
import re
import textwrap
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import urlsplit

from migrator.inventory import Inventory, SchemaSubjectInfo
from migrator.plan.fifo import safe_name
from migrator.plan.scaffold.schemas import TypedSchema, typed_schema
from migrator.plan.spec import GroupTarget, Plan, RouteSpec, is_placeholder

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
class _Path:
    """One URL path of an endpoint app and the topics the plan sends there."""

    path: str
    url: str | None  # None: the group is not mapped yet (a placeholder)
    routes: list[tuple[RouteSpec, TypedSchema]] = field(default_factory=list)

    def where(self, group: str, prefix: str = "# ") -> str:
        """The comment saying why the route has this path (lines starting with ``prefix``)."""
        return textwrap.fill(self._why(group), 96, initial_indent=prefix, subsequent_indent=prefix,
                             break_long_words=False, break_on_hyphens=False)

    def _why(self, group: str) -> str:
        topics = ", ".join(r.topic for r, _ in self.routes)
        if self.url is None:
            return (f"Serves POST {self.path}: group {group} is not mapped yet; map it in the "
                    "endpoint file to a URL with this path (or change this path to its URL's).")
        return (f"Serves POST {self.path}: the path of {self.url}, where the plan sends {topics} "
                f"for group {group}.")


@dataclass
class _App:
    group: str
    workflow: bool
    paths: dict[str, _Path] = field(default_factory=dict)

    def add(self, route: RouteSpec, target: GroupTarget, schema: TypedSchema) -> None:
        url = None if is_placeholder(target.endpoint) else target.endpoint
        path = (urlsplit(url).path or "/") if url else f"/{safe_name(route.topic)}"
        self.paths.setdefault(path, _Path(path, url)).routes.append((route, schema))


def endpoint_files(plan: Plan, inventory: Inventory) -> dict[str, str]:
    """Relative path -> file text for every consumer group the plan routes.

    Each route serves exactly the path of the URL the plan maps its group and topic to (a
    group mapped to https://billing.example.com/kafka serves POST /kafka); topics that share
    a URL share the route, which tells them apart by the Kafka-Topic header. The Next.js route
    files sit where that path puts them (app/kafka/route.ts)."""
    apps: dict[tuple[str, bool], _App] = {}
    for route in plan.routes:
        subject = _subject(inventory, route.topic)
        schema = (typed_schema(subject.schema_type, subject.schema_str, route.topic)
                  if subject else TypedSchema())
        for target in route.targets:
            app = apps.setdefault((target.group, target.workflow), _App(target.group, target.workflow))
            app.add(route, target, schema)
    files: dict[str, str] = {}
    for app in apps.values():
        base = _module(app.group) + ("_workflow" if app.workflow else "")
        module, n = base, 1
        while f"python/{module}.py" in files:  # groups "a-b" and "a_b" both make a_b.py
            n += 1
            module = f"{base}_{n}"
        files[f"python/{module}.py"] = _python(app, module)
        for path in app.paths.values():
            tree = "/".join(part for part in path.path.split("/") if part)
            rel = f"typescript/app/{tree}/route.ts".replace("//", "/")
            if rel in files:  # another group's URL has the same path (on another host)
                rel = rel.replace("typescript/", f"typescript/{safe_name(module)}/", 1)
            files[rel] = _typescript(app, path)
    return files


def _ident(prefix: str, name: str, taken: set[str]) -> str:
    ident = prefix + (re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "root")
    out, n = ident, 1
    while out in taken:
        n += 1
        out = f"{ident}_{n}"
    taken.add(out)
    return out


def _python(app: _App, module: str) -> str:
    models: list[str] = []
    handlers: list[str] = []
    taken: set[str] = set()
    for path in app.paths.values():
        for _route, schema in path.routes:
            for decl in schema.python:
                if decl not in models:
                    models.append(decl)
        handlers.append(_workflow_route(app, path, taken) if app.workflow
                        else _fastapi_route(app, path, taken))
    topics = ", ".join(dict.fromkeys(r.topic for p in app.paths.values() for r, _ in p.routes))
    name = "workflow_app.py.j2" if app.workflow else "fastapi_app.py.j2"
    text = _fill(_template(name), group=app.group, topics=topics, module=module,
                 models="\n\n" + "\n\n\n".join(models) + "\n" if models else "",
                 handlers="".join("\n" + h for h in handlers))
    return text.rstrip() + "\n"


def _workflow_route(app: _App, path: _Path, taken: set[str]) -> str:
    (_, schema), *more = path.routes
    parse = (f"{schema.root}.model_validate(context.request_payload)" if schema.root and not more
             else "context.request_payload")
    topics = ", ".join(r.topic for r, _ in path.routes)
    return _fill(_template("workflow_handler.py.j2"), topic=topics, where=path.where(app.group),
                 path=path.path, ident=_ident("run_", path.path, taken), group=app.group,
                 parse_payload=parse)


def _fastapi_route(app: _App, path: _Path, taken: set[str]) -> str:
    out: list[str] = []
    idents: list[tuple[str, str]] = []
    for route, schema in path.routes:
        ident = _ident("handle_", route.topic, taken)
        idents.append((route.topic, ident))
        parse = (
            "    try:\n"
            f"        record = {schema.root}.model_validate_json(body)\n"
            "    except ValidationError as exc:  # will never succeed: straight to the DLQ\n"
            "        raise not_retryable(str(exc)) from None"
            if schema.root
            else "    record = body  # raw bytes: the records are not typed by a registry schema"
        )
        out.append(_fill(_template("fastapi_handler.py.j2"), topic=route.topic, ident=ident,
                         group=app.group, parse=parse, pattern=route.pattern,
                         retries=str(route.retries)))
    if len(idents) == 1:
        dispatch = f"    return await {idents[0][1]}(request, body)"
    else:
        table = ", ".join(f'"{topic}": {ident}' for topic, ident in idents)
        dispatch = (
            '    topic = request.headers.get("kafka-topic", "")  # several topics share this URL\n'
            f"    handlers = {{{table}}}\n"
            "    if topic not in handlers:\n"
            '        raise not_retryable(f"no handler here for Kafka topic {topic!r}")\n'
            "    return await handlers[topic](request, body)")
    out.append(_fill(_template("fastapi_route.py.j2"), where=path.where(app.group), path=path.path,
                     ident=_ident("route_", path.path, taken), dispatch=dispatch))
    return "\n".join(out).lstrip("\n")


def _typescript(app: _App, path: _Path) -> str:
    types: list[str] = []
    for _route, schema in path.routes:
        types += [t for t in schema.typescript if t not in types]
    type_text = "\n\n".join(types) + "\n" if types else ""
    topics = ", ".join(r.topic for r, _ in path.routes)
    if app.workflow:
        (_, schema), *more = path.routes
        return _fill(_template("next_workflow.ts.j2"), group=app.group, topics=topics,
                     where=path.where(app.group, "// "), types=type_text,
                     payload_type=(schema.root if schema.root and not more else "unknown"))
    handlers: list[str] = []
    idents: list[tuple[str, str]] = []
    taken: set[str] = set()
    for route, schema in path.routes:
        words = re.split(r"[^A-Za-z0-9]+", route.topic)
        ident = _ident("handle", "".join(w[:1].upper() + w[1:] for w in words), taken)
        idents.append((route.topic, ident))
        handlers.append(_fill(_template("next_handler.ts.j2"), topic=route.topic, ident=ident,
                              group=app.group, parse=_ts_parse(schema), pattern=route.pattern,
                              retries=str(route.retries)))
    if len(idents) == 1:
        dispatch = f"  return {idents[0][1]}(body, request);"
    else:
        cases = "".join(f'    case "{topic}":\n      return {ident}(body, request);\n'
                        for topic, ident in idents)
        dispatch = (
            '  const topic = request.headers.get("kafka-topic") ?? ""; // several topics share this URL\n'
            f"  switch (topic) {{\n{cases}    default:\n"
            "      return new Response(`no handler here for Kafka topic ${topic}`, {\n"
            "        status: 489,\n"
            '        headers: { "Upstash-NonRetryable-Error": "true" },\n'
            "      });\n  }")
    return _fill(_template("next_route.ts.j2"), group=app.group, topics=topics,
                 where=path.where(app.group, "// "), types=type_text,
                 handlers="".join(handlers), dispatch=dispatch)


def _ts_parse(schema: TypedSchema) -> str:
    if not schema.root:
        return "  const record = body; // raw text: not typed by a registry schema"
    return (
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

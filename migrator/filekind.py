"""What kind of toolkit file a path holds, so that a command given the wrong one can say so.

``migrator plan audit.html`` would otherwise answer "not valid YAML" and ``migrator apply
inventory.json`` "(and 7 more)" validation errors. :func:`identify` recognises the files the
toolkit writes (inventory, plan, bridge config, endpoint file, the audit's and the plan's
reports) from their first bytes or their top-level keys; :func:`wrong_kind` turns a mismatch
into the one line a command prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FileKind", "identify", "wrong_kind"]


@dataclass(frozen=True)
class FileKind:
    """A kind of file: ``what`` as the loaders name it (``"inventory"``), ``label`` for people."""

    what: str
    label: str


# What each loader reads, said the way a user makes one.
_WANTED = {
    "inventory": "`migrator plan` reads an audit inventory (`migrator audit --format json -o "
                 "inventory.json`)",
    "plan file": "`migrator apply` reads a plan file (the plan.yaml `migrator plan` writes)",
    "bridge config": "`migrator bridge` reads a bridge config (the bridge.yaml `migrator plan` "
                     "writes, see `migrator bridge schema`)",
    "endpoint file": "--endpoints reads an endpoint file (groups: {consumer group: URL}, see "
                     "docs/plan.md#endpoint-file)",
}

_TEXT_KINDS = (  # (lower-cased start of the text, kind)
    ("kafka → qstash audit", FileKind("audit table", "a table audit report")),
    ("# kafka → qstash audit", FileKind("audit markdown", "a Markdown audit report")),
)


def identify(path: Path) -> FileKind | None:
    """The kind of toolkit file at ``path``, or None when it is none the toolkit writes."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    head = text[:4096].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")):
        if "qstash audit" in head:
            return FileKind("audit html", "an HTML audit report")
        if "migration plan" in head:
            return FileKind("plan html", "an HTML plan review (plan.html)")
        return FileKind("html", "an HTML page")
    by_keys = _by_keys(_parse(text))  # a YAML file may open with a comment like a Markdown title
    if by_keys is not None:
        return by_keys
    return next((kind for start, kind in _TEXT_KINDS if head.startswith(start)), None)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _by_keys(data: Any) -> FileKind | None:
    if not isinstance(data, dict):
        return None
    keys = set(data)
    routes = data.get("routes")
    first = routes[0] if isinstance(routes, list) and routes and isinstance(routes[0], dict) else {}
    if {"topics", "consumer_groups", "cluster"} <= keys:
        return FileKind("inventory", "an audit inventory")
    if "pattern" in first or ({"source", "resources"} & keys and "routes" in keys):
        return FileKind("plan file", "a plan file")
    if "destinations" in first:
        return FileKind("bridge config", "a bridge config")
    if keys and keys <= {"groups", "schedules", "workflows", "failure_callback"}:
        return FileKind("endpoint file", "an endpoint file")
    return None


def wrong_kind(path: Path, what: str) -> str | None:
    """One line saying ``path`` holds another kind of file than the ``what`` wanted, or None
    when it does not (it is the right kind, or not recognisably another)."""
    kind = identify(path)
    if kind is None or kind.what == what:
        return None
    wanted = _WANTED.get(what, f"this command reads a {what}")
    article = "an" if what[:1] in "aeiou" else "a"
    return f"{path}: this is {kind.label}, not {article} {what}; {wanted}."

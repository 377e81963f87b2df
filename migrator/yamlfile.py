"""YAML files validated into pydantic models, with errors that name file, line and field.

One function, :func:`load_model`, used for the plan file, the endpoint file and bridge.yaml: bad YAML, wrong
types and unknown fields all become one :class:`~migrator.errors.ConfigError` line such as
``plan.yaml:14: routes[0].retries: Input should be a valid integer``. The line comes from the
node marks of ``yaml.compose``; the field path from pydantic's error location.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from migrator.errors import ConfigError

__all__ = [
    "compose",
    "dump_yaml",
    "field_path",
    "line_of",
    "load_model",
    "read_yaml",
    "stage",
    "write_atomic",
]

M = TypeVar("M", bound=BaseModel)


_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import (the only portable way), restored at once

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first = key, line, first


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader (libyaml's parser when available), refusing duplicate mapping keys: YAML
    would silently keep the last one, so a repeated group or field would change the meaning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], int] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                continue
            line = key.start_mark.line + 1
            first = seen.setdefault((key.tag, key.value), line)
            if first != line:
                raise _DuplicateKey(key.value, line, first)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def dump_yaml(data: Any) -> str:
    """YAML text of plain data, keys in insertion order (libyaml's emitter when available)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def read_yaml(path: Path, what: str) -> Any:
    """The parsed content of a YAML (or JSON) file; ConfigError with the line when it is bad."""
    text = _read_text(path, what)
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); fix the syntax there."
            ) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a safe loader (CSafeLoader or SafeLoader)
    except _DuplicateKey as exc:
        raise ConfigError(
            f"{path}:{exc.line}: {exc.key!r} appears twice (first on line {exc.first}); YAML "
            "would silently keep the last one: merge or remove one of them."
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); fix the syntax there.") from None


def _read_text(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror}).") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save it as UTF-8."
        ) from None


def compose(path: Path) -> yaml.Node | None:
    """The node tree of a file that already parsed, for line numbers (None if unavailable)."""
    try:
        return yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def load_model(path: str | Path, model: type[M], what: str, schema_cmd: str, *,
               overrides: Mapping[str, Any] | None = None, hidden_loc: Collection[str] = ()) -> M:
    """Read ``path`` and validate it as ``model``; every problem is one ConfigError line.

    ``overrides`` replace top-level keys (command-line flags); ``hidden_loc`` names the
    discriminator tags pydantic puts into the locations of tagged unions, which are no field.
    """
    path = Path(path)
    try:
        return _load_model(path, model, what, schema_cmd, overrides, hidden_loc)
    except ConfigError:
        from migrator.filekind import wrong_kind

        other = wrong_kind(path, what)  # "this is an HTML audit report, not an inventory; ..."
        if other is None:
            raise
        raise ConfigError(other) from None


def _load_model(path: Path, model: type[M], what: str, schema_cmd: str,
                overrides: Mapping[str, Any] | None, hidden_loc: Collection[str]) -> M:
    data = read_yaml(path, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the {what} must be a mapping (see `{schema_cmd}`).")
    if overrides:
        data = {**data, **overrides}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in hidden_loc))
        line = line_of(compose(path), loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}; check the spelling (see `{schema_cmd}`)"
        elif err["type"] == "missing":
            msg = f"required field {loc[-1]!r} is missing"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: {field_path(loc) or '(top level)'}: {msg}{more}") from None


def field_path(loc: tuple[Any, ...]) -> str:
    """``("routes", 0, "retries")`` -> ``routes[0].retries``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            if not text.isprintable():  # a control character would break the one-line error
                text = repr(text)
            out += f".{text}" if out else text
    return out


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node ``loc`` reaches (a key's own line for mappings)."""
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
        if isinstance(node, yaml.ScalarNode):
            line = node.start_mark.line + 1
    return line


def write_atomic(path: Path, text: str, *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written.

    ``durable`` also fsyncs the data before the rename (survives a power cut, costs a disk flush).
    """
    tmp = stage(path, text, durable=durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stage(path: Path, text: str, *, durable: bool = True) -> Path:
    """Write ``text`` to a temporary file beside ``path`` (creating its directory) and return it;
    ``os.replace(tmp, path)`` then publishes it. Nothing is left behind if writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        # mkstemp makes the file 0600; give it the mode a plain write would (the file it replaces
        # keeps its own, else 0666 minus the umask) so a shared plan directory stays readable.
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_UMASK
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp

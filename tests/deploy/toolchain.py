"""Helm, the CRD schemas and the PromQL checker the deploy tests need, built and fetched with the
machine's Go.

Helm is a Go module: ``go install helm.sh/helm/v3/cmd/helm@HELM_VERSION`` builds it (a few
minutes the first time) into ``~/.cache/migrator/helm/<version>``. The custom resources the chart
renders (ServiceMonitor, ScaledObject, TriggerAuthentication) are checked against the CRDs their
projects publish, read from those projects' Go module sources (``go mod download``). Everything
is cached outside git, so a second run costs nothing. ``promqlcheck`` (``tests/deploy/promql``,
our own few lines over Prometheus's ``promql/parser`` and ``model/rulefmt``) is built from its
source by :func:`build_go_program` into ``~/.cache/migrator/go-programs/<name>/<source hash>``
(under a minute cold; Prometheus v0.316 needs Go 1.26.7+). ``python -m tests.deploy.toolchain``
does all three (``make test`` calls it before pytest); the test fixtures call the same functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = ["HELM_VERSION", "PROMQL_SOURCE", "CrdSchemas", "ToolchainError", "build_go_program",
           "build_helm", "build_promqlcheck", "crd_schemas", "go"]

HELM_VERSION = "v3.22.0"
# Go modules whose sources carry the CRDs, and the CRD files in them.
CRD_MODULES = {
    "github.com/kedacore/keda/v2@v2.17.2": [
        "config/crd/bases/keda.sh_scaledobjects.yaml",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ],
    "github.com/prometheus-operator/prometheus-operator@v0.85.0": [
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ],
}
BUILD_TIMEOUT = 1800
# The PromQL and rule-file checker's Go source (main.go, go.mod, go.sum).
PROMQL_SOURCE = Path(__file__).resolve().parent / "promql"

# (apiVersion, kind) -> the CRD version's openAPIV3Schema.
CrdSchemas = dict[tuple[str, str], dict[str, Any]]


class ToolchainError(RuntimeError):
    """Go is there but building helm or fetching a CRD failed (the message says how)."""


def cache_dir() -> Path:
    return Path(os.environ.get("MIGRATOR_TOOL_CACHE", Path.home() / ".cache" / "migrator"))


def go() -> str | None:
    """The go command, or None when the machine has none."""
    return shutil.which("go")


def _go(args: list[str], env: dict[str, str], what: str, cwd: Path | None = None) -> str:
    exe = go()
    if exe is None:
        raise ToolchainError(f"{what}: no `go` on PATH")
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                              env={**os.environ, "GOTOOLCHAIN": "local", **env}, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what}: `go {' '.join(args)}` ran over {BUILD_TIMEOUT} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ToolchainError(f"{what}: `go {' '.join(args)}` failed (exit {done.returncode}):\n"
                             f"{tail}\nThe Go module proxy must be reachable (GOPROXY).")
    return done.stdout


def build_helm() -> Path:
    """The cached helm binary, built on first use."""
    target = cache_dir() / "helm" / HELM_VERSION / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        _go(["install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"], {"GOBIN": tmp},
            f"building helm {HELM_VERSION}")
        os.replace(Path(tmp) / "helm", target)  # atomic: a concurrent build never sees half a file
    return target


def build_go_program(source: Path, name: str) -> Path:
    """The binary of the Go main module in ``source`` (its go.mod and go.sum pin every
    dependency), built on first use and cached under the hash of its files."""
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix in (".go", ".mod", ".sum"))
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    target = cache_dir() / "go-programs" / name / digest[:16] / name
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        _go(["build", "-mod=readonly", "-buildvcs=false", "-o", str(Path(tmp) / name), "."], {}, f"building {name}",
            cwd=source)
        os.replace(Path(tmp) / name, target)  # atomic, as for helm
    return target


def build_promqlcheck() -> Path:
    """``promqlcheck``: PromQL expressions and rule files checked by Prometheus's own parser."""
    return build_go_program(PROMQL_SOURCE, "promqlcheck")


def crd_schemas() -> CrdSchemas:
    """The openAPIV3Schema of every CRD version in :data:`CRD_MODULES`, cached as one JSON file."""
    cached = cache_dir() / "crds" / "schemas.json"
    wanted = sorted(f"{m}:{f}" for m, files in CRD_MODULES.items() for f in files)
    if cached.is_file():
        data = json.loads(cached.read_text())
        if data.get("sources") == wanted:
            return {(s["apiVersion"], s["kind"]): s["schema"] for s in data["schemas"]}
    schemas: list[dict[str, Any]] = []
    for module, files in CRD_MODULES.items():
        out = _go(["mod", "download", "-json", module], {}, f"fetching the CRDs of {module}")
        root = Path(json.loads(out)["Dir"])
        for rel in files:
            crd = yaml.safe_load((root / rel).read_text())
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas.append({"apiVersion": f"{group}/{version['name']}", "kind": kind,
                                "schema": version["schema"]["openAPIV3Schema"]})
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps({"sources": wanted, "schemas": schemas}))
    os.replace(tmp, cached)
    return {(s["apiVersion"], s["kind"]): s["schema"] for s in schemas}


def main() -> int:
    if go() is None:
        print("go not found: helm and promqlcheck cannot be built; the Helm chart and PromQL "
              "tests will be skipped")
        return 0
    try:
        print(f"helm: {build_helm()}")
        print(f"CRD schemas: {len(crd_schemas())}")
        print(f"promqlcheck: {build_promqlcheck()}")
    except ToolchainError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The bridge's Helm chart: lint, render with its defaults and with the values a plan wrote,
validate every object against the Kubernetes (and CRD) schemas, and keep credentials in Secrets."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from migrator.bridge.config import BridgeConfig, load_bridge_config
from tests.deploy.conftest import CHART, KUBE_VERSION, Helm
from tests.deploy.toolchain import CrdSchemas
from tests.plan.factories import group, inventory, topic

SENTINEL = "s3cr3t-sentinel-value"
_SECRETISH = re.compile(r"(token|password|secret|jaas|credential|api.?key)", re.I)


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields (the API server would silently prune them)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def validate(objects: list[dict[str, Any]], crds: CrdSchemas) -> None:
    """Every object against its schema: built-in kinds through kubernetes-validate (strict),
    custom resources against their CRD's openAPIV3Schema."""
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in crds:
            # not jsonschema.validate: its meta-check refuses Go regex syntax in CRD patterns
            error = jsonschema.exceptions.best_match(
                jsonschema.Draft7Validator(_strict(crds[key])).iter_errors(obj))
            if error is not None:
                raise AssertionError(f"{key} {obj['metadata']['name']}: {error.message} at "
                                     f"{list(error.absolute_path)}")
        else:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in kinds, f"two {obj['kind']} objects"
        kinds[obj["kind"]] = obj
    return kinds


def containers(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            yield from obj["spec"]["template"]["spec"]["containers"]


def assert_credentials_only_from_secrets(objects: list[dict[str, Any]]) -> None:
    """No Secret is rendered (the chart only references them); every env var that could hold a
    credential is a secretKeyRef; the ConfigMap holds no credential field."""
    assert not [o for o in objects if o["kind"] == "Secret"]
    for container in containers(objects):
        for env in container.get("env", []):
            if _SECRETISH.search(env["name"]):
                assert "value" not in env, env
                assert set(env["valueFrom"]) == {"secretKeyRef"}, env
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            cfg = yaml.safe_load(obj["data"]["bridge.yaml"])
            assert not (cfg.get("qstash") or {}).get("token")
            kafka = cfg.get("kafka") or {}
            assert "sasl_password" not in kafka
            assert not [k for k in kafka.get("options", {}) if _SECRETISH.search(k)]


def test_chart_lints_and_renders_with_its_defaults(helm: Helm, crds: CrdSchemas) -> None:
    lint = helm.run("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in lint.stdout, lint.stdout
    objects = helm.render()
    kinds = by_kind(objects)
    assert set(kinds) == {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service",
                          "ServiceAccount"}
    validate(objects, crds)
    assert_credentials_only_from_secrets(objects)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (bridge,) = pod["containers"]
    assert bridge["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert bridge["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert bridge["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    # the grace period covers the bridge's own drain deadline (BridgeConfig.shutdown_deadline)
    deadline = BridgeConfig.model_fields["shutdown_deadline"].default
    assert pod["terminationGracePeriodSeconds"] >= deadline + 15
    # the default bridge.yaml is one the bridge accepts
    BridgeConfig.model_validate(yaml.safe_load(kinds["ConfigMap"]["data"]["bridge.yaml"]))


@pytest.fixture
def planned(tmp_path: Path) -> Path:
    """`migrator plan` run on an estate of three topics (12 + 3 + 1 partitions)."""
    inv = inventory(
        [topic("orders", partitions=12), topic("clicks"), topic("payments", partitions=1, keyed=1.0),
         topic("unread")],
        [group("billing", "orders"), group("a", "clicks"), group("b", "clicks"),
         group("ledger", "payments")],
    )
    (tmp_path / "inventory.json").write_text(inv.model_dump_json())
    (tmp_path / "endpoints.yaml").write_text(
        "groups:\n  billing: https://b.example.com/{topic}\n  '[ab]': https://f.example.com/{group}\n"
        "  ledger: https://l.example.com/\n")
    done = subprocess.run([sys.executable, "-m", "migrator", "plan", str(tmp_path / "inventory.json"),
                           "--endpoints", str(tmp_path / "endpoints.yaml"), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return tmp_path / "out"


def test_plan_values_render_the_estate(helm: Helm, crds: CrdSchemas, planned: Path) -> None:
    values = yaml.safe_load((planned / "helm-values.yaml").read_text())
    assert {t["name"]: t["partitions"] for t in values["estate"]["topics"]} == {
        "orders": 12, "clicks": 3, "payments": 1}  # routed topics only: "unread" has no group
    assert {g["name"]: g["topics"] for g in values["estate"]["groups"]} == {
        "billing": ["orders"], "a": ["clicks"], "b": ["clicks"], "ledger": ["payments"]}
    assert values["keda"]["maxReplicaCount"] == 16
    lint = helm.run("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION,
                    "-f", str(planned / "helm-values.yaml"))
    assert "0 chart(s) failed" in lint.stdout, lint.stdout
    objects = helm.render(planned / "helm-values.yaml", sets=[
        "keda.enabled=true", "serviceMonitor.enabled=true", "kafka.existingSecret=kafka-client",
        "keda.authentication.existingSecret=kafka-keda", "keda.authentication.parameters.sasl=sasl",
        "keda.authentication.parameters.password=password"])
    kinds = by_kind(objects)
    assert set(kinds) == {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service",
                          "ServiceAccount", "ServiceMonitor", "ScaledObject", "TriggerAuthentication"}
    validate(objects, crds)
    assert_credentials_only_from_secrets(objects)
    # the ConfigMap carries the plan's bridge.yaml unchanged
    planned_cfg = load_bridge_config(planned / "bridge.yaml")
    mounted = planned / "mounted.yaml"
    mounted.write_text(kinds["ConfigMap"]["data"]["bridge.yaml"])
    assert load_bridge_config(mounted) == planned_cfg
    # KEDA: one kafka trigger per routed topic on the bridge's group, capped at the partitions
    scaled = kinds["ScaledObject"]["spec"]
    assert scaled["maxReplicaCount"] == 16
    assert {t["metadata"]["topic"] for t in scaled["triggers"]} == {"orders", "clicks", "payments"}
    assert {t["metadata"]["consumerGroup"] for t in scaled["triggers"]} == {planned_cfg.group}
    assert {t["authenticationRef"]["name"] for t in scaled["triggers"]} == {
        kinds["TriggerAuthentication"]["metadata"]["name"]}
    assert all(ref["name"] == "kafka-keda"
               for ref in kinds["TriggerAuthentication"]["spec"]["secretTargetRef"])
    deployment = kinds["Deployment"]["spec"]
    assert "replicas" not in deployment  # KEDA owns the count
    # Kafka client properties come from the Secret's volume, read with --kafka-config
    (bridge,) = deployment["template"]["spec"]["containers"]
    assert bridge["args"][bridge["args"].index("--kafka-config") + 1] == \
        "/etc/migrator/kafka/client.properties"
    volumes = {v["name"]: v for v in deployment["template"]["spec"]["volumes"]}
    assert volumes["kafka-client"]["secret"]["secretName"] == "kafka-client"
    # the group label the dashboard and the alert rules select on is the bridge's own (one per
    # bridge consumer group of a gated bridge): no target label may overwrite it
    (endpoint,) = kinds["ServiceMonitor"]["spec"]["endpoints"]
    assert not [r for key in ("relabelings", "metricRelabelings") for r in endpoint.get(key, [])
                if r.get("targetLabel") == "group"], endpoint


def _refused(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    done = helm.template(path, check=False)
    assert done.returncode != 0, done.stdout
    assert SENTINEL not in done.stdout + done.stderr
    return done.stderr


def _defaults() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return copy.deepcopy(values["bridgeConfig"])


@pytest.mark.parametrize("where", ["qstash.token", "kafka.sasl_password",
                                   "kafka.options.sasl.password"])
def test_a_credential_in_values_is_refused_without_echoing_it(
    helm: Helm, tmp_path: Path, where: str
) -> None:
    cfg = _defaults()
    if where == "qstash.token":
        cfg["qstash"] = {"token": SENTINEL}
    elif where == "kafka.sasl_password":
        cfg["kafka"]["sasl_password"] = SENTINEL
    else:
        cfg["kafka"]["options"] = {"sasl.password": SENTINEL}
    err = _refused(helm, tmp_path, {"bridgeConfig": cfg})
    assert f"bridgeConfig.{where}: a credential in values would land in a ConfigMap" in err


def test_replicas_above_the_partitions_are_refused(helm: Helm, tmp_path: Path) -> None:
    err = _refused(helm, tmp_path, {"keda": {"enabled": True, "maxReplicaCount": 5},
                                    "estate": {"topics": [{"name": "orders", "partitions": 4}]}})
    assert "keda.maxReplicaCount 5 is above the 4 partitions" in err
    err = _refused(helm, tmp_path, {"keda": {"enabled": True}})
    assert "keda.enabled needs estate.topics" in err


def test_a_grace_period_shorter_than_the_drain_is_refused(helm: Helm, tmp_path: Path) -> None:
    cfg = _defaults()
    cfg["shutdown_deadline"] = 120
    err = _refused(helm, tmp_path, {"bridgeConfig": cfg})
    assert "terminationGracePeriodSeconds 60 is too short" in err and "at least 135" in err
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({"bridgeConfig": cfg, "terminationGracePeriodSeconds": 135}))
    assert helm.template(path).returncode == 0


def test_a_missing_qstash_secret_is_refused(helm: Helm, tmp_path: Path) -> None:
    err = _refused(helm, tmp_path, {"qstash": {"existingSecret": ""}})
    assert "qstash.existingSecret is not set" in err

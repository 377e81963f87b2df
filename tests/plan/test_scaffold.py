"""Generated endpoint scaffolds: they import, verify the Upstash signature and parse typed bodies."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

import jwt
import pytest
from fastapi.testclient import TestClient

from migrator.inventory import SchemaRegistryInfo, SchemaSubjectInfo
from migrator.plan.builder import build_plan
from migrator.plan.endpoints import EndpointFile, EndpointMap
from migrator.plan.scaffold import endpoint_files
from migrator.plan.scaffold.schemas import typed_schema

from .factories import group, inventory, topic

ORDER_AVSC = json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line",
                               "fields": [{"name": "sku", "type": "string"}]}}},
    {"name": "note", "type": ["null", "string"], "default": None},
]})
KEY, NEXT = "sig_current_" + uuid.uuid4().hex, "sig_next_" + uuid.uuid4().hex


def _files() -> dict[str, str]:
    subject = SchemaSubjectInfo(subject="orders-value", versions=[1], latest_version=1,
                                latest_id=1, schema_type="AVRO", topic="orders", role="value",
                                schema_str=ORDER_AVSC)
    inv = inventory([topic("orders", fmt="avro", subjects=["orders-value"]), topic("raw")],
                    [group("billing", "orders", "raw"), group("app", "orders")])
    inv = inv.model_copy(update={"schema_registry": SchemaRegistryInfo(subjects=[subject])})
    eps = EndpointMap(EndpointFile(groups={"*": "https://x.example.com/{group}"}, workflows=["app"]))
    return endpoint_files(build_plan(inv, eps), inv)


def _load(tmp_path: Path, name: str, text: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _sign(url: str, body: bytes, key: str = KEY) -> str:
    now = int(time.time())
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    claims = {"iss": "Upstash", "sub": url, "exp": now + 300, "nbf": now, "iat": now,
              "jti": "jwt_" + uuid.uuid4().hex, "body": digest}
    return jwt.encode(claims, key, algorithm="HS256")


def test_scaffold_files_per_group_and_endpoint_url() -> None:
    files = _files()  # every group maps to https://x.example.com/{group}
    assert set(files) == {
        "python/billing.py", "python/app_workflow.py",
        "typescript/app/billing/route.ts",  # orders and raw: one URL, told apart by Kafka-Topic
        "typescript/app/app/route.ts",
    }
    ts = files["typescript/app/billing/route.ts"]
    assert "export interface Order {" in ts and '"amount": number | string;' in ts
    assert "receiver\n    .verify(" in ts and "status: 401" in ts
    assert 'import { serve } from "@upstash/workflow/nextjs";' in files[
        "typescript/app/app/route.ts"]
    # the workflow handlers see `migrator cutover shadow` too (the run's headers)
    assert 'context.headers.get("migrator-shadow") === "true"' in files["typescript/app/app/route.ts"]


def test_fastapi_scaffold_verifies_signature_and_parses_typed_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSTASH_CURRENT_SIGNING_KEY", KEY)
    monkeypatch.setenv("QSTASH_NEXT_SIGNING_KEY", NEXT)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    module = _load(tmp_path, f"billing_{uuid.uuid4().hex[:6]}", _files()["python/billing.py"])
    client = TestClient(module.app)
    body = json.dumps({"id": "o-1", "amount": "12.50", "at": "2026-11-01T00:00:00Z",
                       "lines": [{"sku": "a"}], "note": None}).encode()
    url = "http://testserver/billing"
    orders = {"Kafka-Topic": "orders"}  # orders and raw share billing's URL

    def post(content: bytes, signature: str | None, topic: str = "orders") -> int:
        headers = {"Kafka-Topic": topic} | ({"Upstash-Signature": signature} if signature else {})
        return client.post("/billing", content=content, headers=headers).status_code

    ok = client.post("/billing", content=body, headers={"Upstash-Signature": _sign(url, body), **orders})
    assert ok.status_code == 200, ok.text
    assert ok.json()["shadow"] == "false"
    shadow = client.post("/billing", content=body, headers={  # `migrator cutover shadow`
        "Upstash-Signature": _sign(url, body), "Migrator-Shadow": "true", **orders})
    assert shadow.status_code == 200 and shadow.json()["shadow"] == "true"
    assert post(body, _sign(url, body, NEXT)) == 200  # the next key verifies too
    assert post(body, None) == 401
    assert post(body, _sign(url, body, "sig_wrong_" + uuid.uuid4().hex)) == 401  # forged
    assert post(body + b" ", _sign(url, body)) == 401  # tampered
    assert post(body, _sign("http://testserver/raw", body)) == 401  # signed for another URL
    bad = json.dumps({"id": "o-1"}).encode()  # typed: a record missing fields goes to the DLQ
    refused = client.post("/billing", content=bad, headers={"Upstash-Signature": _sign(url, bad), **orders})
    assert refused.status_code == 489 and refused.headers["upstash-nonretryable-error"] == "true"
    assert post(b"\x00plain", _sign(url, b"\x00plain"), "raw") == 200  # untyped: bytes as they are
    assert post(body, _sign(url, body), "payments") == 489  # not a topic of this URL: no retries


def test_workflow_scaffold_registers_a_workflow_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSTASH_TOKEN", "test-token")
    module = _load(tmp_path, f"app_wf_{uuid.uuid4().hex[:6]}", _files()["python/app_workflow.py"])
    routes = {(r.path, tuple(sorted(r.methods))) for r in module.app.routes if hasattr(r, "methods")}
    assert ("/app", ("POST",)) in routes
    assert module.Order.model_fields.keys() >= {"id", "amount", "at", "lines", "note"}


def test_json_schema_and_untypable_schemas() -> None:
    schema = json.dumps({"title": "click", "type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}}}})
    typed = typed_schema("JSON", schema, "clicks")
    assert typed.root == "Click"
    assert "    id: int" in typed.python[0] and "    at: datetime | None = None" in typed.python[0]
    assert '"tags"?: Array<string>;' in typed.typescript[0]
    assert typed_schema("PROTOBUF", "syntax = 'proto3';", "x").root is None
    assert typed_schema("AVRO", "not json", "x").root is None


@pytest.mark.skipif(
    not os.environ.get("SCAFFOLD_TS_CHECK_DIR"),
    reason="set SCAFFOLD_TS_CHECK_DIR to a directory with node_modules holding typescript, "
    "@upstash/qstash, @upstash/workflow and @types/node to type-check the TypeScript scaffolds",
)
def test_typescript_scaffolds_type_check(tmp_path: Path) -> None:
    tools = Path(os.environ["SCAFFOLD_TS_CHECK_DIR"])
    for rel, text in _files().items():
        if rel.startswith("typescript/"):
            path = tmp_path / "src" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    (tmp_path / "node_modules").symlink_to(tools / "node_modules")
    (tmp_path / "stubs.d.ts").write_text('declare module "next/server";\n')  # next is not needed
    (tmp_path / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "target": "ES2022", "module": "ESNext", "moduleResolution": "Bundler", "strict": True,
        "noEmit": True, "skipLibCheck": True, "lib": ["ES2022", "DOM"], "types": ["node"]},
        "include": ["src/**/*.ts", "stubs.d.ts"]}))
    result = subprocess.run([str(tools / "node_modules/.bin/tsc"), "-p", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_route_serves_the_path_of_its_mapped_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployed as mapped, QStash's deliveries must reach the routes: not a 404."""
    from urllib.parse import urlsplit

    monkeypatch.setenv("QSTASH_CURRENT_SIGNING_KEY", KEY)
    monkeypatch.setenv("QSTASH_NEXT_SIGNING_KEY", NEXT)
    monkeypatch.setenv("QSTASH_TOKEN", "test-token")
    inv = inventory([topic("shop.orders"), topic("shop.payments", partitions=1, keyed=1.0),
                     topic("clicks")],
                    [group("billing", "shop.orders", "shop.payments"), group("ledger", "shop.payments"),
                     group("flows", "clicks"), group("unmapped", "clicks")])
    eps = EndpointMap(EndpointFile(groups={
        "billing": "https://billing.example.com/kafka/{topic}", "ledger": "https://ledger.example.com/",
        "flows": "https://wf.example.com/run/clicks"}, workflows=["flows"]))
    plan = build_plan(inv, eps)
    files = endpoint_files(plan, inv)
    served: dict[str, set[str]] = {}
    for rel, text in files.items():
        if rel.startswith("python/"):
            module = _load(tmp_path, f"{rel[7:-3]}_{uuid.uuid4().hex[:6]}", text)
            served[module.app.title] = {r.path for r in module.app.routes
                                        if "POST" in getattr(r, "methods", ())}
    mapped = 0
    for route in plan.routes:
        for target in route.targets:
            if target.group == "unmapped":
                assert served["unmapped"] == {"/clicks"}  # until it is mapped
                continue
            path = urlsplit(target.endpoint).path or "/"
            assert path in served[target.group], (target.group, route.topic, path, served)
            ts = f"typescript/app/{path.strip('/')}/route.ts".replace("app//", "app/")
            assert ts in files, (ts, sorted(files))
            assert f"Serves POST {path}: the path of {target.endpoint}" in " ".join(
                line.lstrip("/ ") for line in files[ts].splitlines())
            mapped += 1
    assert mapped == 4
    assert served["billing"] == {"/kafka/shop.orders", "/kafka/shop.payments"}

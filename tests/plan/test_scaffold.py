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


def test_scaffold_files_per_group_and_topic() -> None:
    files = _files()
    assert set(files) == {
        "python/billing.py", "python/app_workflow.py",
        "typescript/app/api/billing/orders/route.ts", "typescript/app/api/billing/raw/route.ts",
        "typescript/app/api/app/orders/route.ts",
    }
    ts = files["typescript/app/api/billing/orders/route.ts"]
    assert "export interface Order {" in ts and '"amount": number | string;' in ts
    assert "receiver\n    .verify(" in ts and "status: 401" in ts
    assert 'import { serve } from "@upstash/workflow/nextjs";' in files[
        "typescript/app/api/app/orders/route.ts"]


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
    url = "http://testserver/orders"
    ok = client.post("/orders", content=body, headers={"Upstash-Signature": _sign(url, body)})
    assert ok.status_code == 200, ok.text
    assert ok.json()["shadow"] == "false"
    shadow = client.post("/orders", content=body, headers={  # `migrator cutover shadow`
        "Upstash-Signature": _sign(url, body), "Migrator-Shadow": "true"})
    assert shadow.status_code == 200 and shadow.json()["shadow"] == "true"
    rotated = client.post("/orders", content=body,
                          headers={"Upstash-Signature": _sign(url, body, NEXT)})
    assert rotated.status_code == 200  # the next key verifies too
    assert client.post("/orders", content=body).status_code == 401
    forged = client.post("/orders", content=body,
                         headers={"Upstash-Signature": _sign(url, body, "sig_wrong_" + uuid.uuid4().hex)})
    assert forged.status_code == 401
    tampered = client.post("/orders", content=body + b" ",
                           headers={"Upstash-Signature": _sign(url, body)})
    assert tampered.status_code == 401
    other_url = client.post("/orders", content=body,
                            headers={"Upstash-Signature": _sign("http://testserver/raw", body)})
    assert other_url.status_code == 401
    bad = json.dumps({"id": "o-1"}).encode()  # typed: a record missing fields goes to the DLQ
    refused = client.post("/orders", content=bad, headers={"Upstash-Signature": _sign(url, bad)})
    assert refused.status_code == 489 and refused.headers["upstash-nonretryable-error"] == "true"
    plain = client.post("/raw", content=b"\x00plain", headers={  # untyped: bytes as they are
        "Upstash-Signature": _sign("http://testserver/raw", b"\x00plain")})
    assert plain.status_code == 200


def test_workflow_scaffold_registers_a_workflow_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSTASH_TOKEN", "test-token")
    module = _load(tmp_path, f"app_wf_{uuid.uuid4().hex[:6]}", _files()["python/app_workflow.py"])
    routes = {(r.path, tuple(sorted(r.methods))) for r in module.app.routes if hasattr(r, "methods")}
    assert ("/orders", ("POST",)) in routes
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

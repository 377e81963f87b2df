"""Property-based tests over the files a user hands the toolkit: random structure, wrong types,
huge values, odd encodings. Each must end in exit 0 or its documented code with one
``Error:`` line, never a traceback or an internal error (70), and never a half-written output.
The CLI runs in-process (``migrator.cli.main``); example counts stay modest for suite time."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrator.bridge.config import load_bridge_config
from migrator.cli import exit_code_for, main
from migrator.errors import MigratorError
from tests.plan.factories import group, inventory, topic

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**40),
    st.floats(allow_nan=True), st.text(max_size=30),
    st.text(alphabet="\x00\ufeff\u202e\udcff\U0001f600é", max_size=10),
    st.just("x" * 200_000),
)
structures = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def _encode(text: str, how: str) -> bytes:
    if how == "utf-16":
        return text.encode("utf-16")
    if how == "latin-1":
        return text.encode("latin-1", "replace")
    return text.encode("utf-8", "surrogatepass")


@st.composite
def file_bytes(draw: st.DrawFn, valid: Any = None) -> bytes:
    """Raw junk, a random YAML/JSON document, or ``valid`` with one value replaced."""
    kind = draw(st.sampled_from(["bytes", "structure", "mutation"] if valid is not None
                                else ["bytes", "structure"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "structure":
        doc: Any = draw(structures)
    else:
        doc = json.loads(json.dumps(valid))
        node = doc
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if isinstance(child, dict | list) and child and draw(st.booleans()):
                node = child
                continue
            node[key] = draw(structures)
            break
    text = draw(st.sampled_from(["yaml", "json"]))
    try:
        dumped = yaml.safe_dump(doc, allow_unicode=True) if text == "yaml" else json.dumps(doc)
    except (ValueError, yaml.YAMLError):
        dumped = str(doc)
    return _encode(dumped, draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"])))


def run_cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


def assert_clean(code: int, stderr: str, allowed: set[int]) -> None:
    assert "Traceback" not in stderr and "Internal error" not in stderr, stderr[-2000:]
    assert code in allowed, (code, stderr[-500:])
    if code not in (0, 1):
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), stderr[-1000:]


VALID_ENDPOINTS = {"groups": {"billing": "https://b.example.com/{topic}",
                              "*": "https://all.example.com/{group}"}}


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzz-estate")
    inv = inventory([topic("orders"), topic("clicks")],
                    [group("billing", "orders"), group("a", "clicks")])
    (d / "inventory.json").write_text(inv.model_dump_json(indent=1))
    (d / "endpoints.yaml").write_text(yaml.safe_dump(VALID_ENDPOINTS))
    code, err = run_cli("plan", str(d / "inventory.json"), "--endpoints",
                        str(d / "endpoints.yaml"), "--offline", "-o", str(d / "plan"))
    assert code == 0, err
    return d


def _plan_run(estate: Path, tmp: Path, **files: bytes) -> tuple[int, str, Path]:
    paths = {"inventory": estate / "inventory.json", "endpoints": estate / "endpoints.yaml"}
    for name, data in files.items():
        paths[name] = tmp / f"{name}.in"
        paths[name].write_bytes(data)
    out = tmp / "out"
    argv = ["plan", str(paths["inventory"]), "--endpoints", str(paths["endpoints"]),
            "--offline", "-o", str(out)]
    if "prices" in paths:
        argv += ["--prices", str(paths["prices"])]
    code, err = run_cli(*argv)
    return code, err, out


def _fresh(tmp_path: Path) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(dir=tmp_path))


@FUZZ
@given(data=st.data())
def test_fuzzed_inventory_endpoints_and_prices_give_one_line_and_no_partial_plan(
    estate: Path, tmp_path: Path, data: st.DataObject
) -> None:
    which = data.draw(st.sampled_from(["inventory", "endpoints", "prices"]))
    valid = {"inventory": json.loads((estate / "inventory.json").read_text()),
             "endpoints": VALID_ENDPOINTS,
             "prices": {"payg_per_100k_messages": 1.0, "fixed_monthly": 180}}[which]
    tmp = _fresh(tmp_path)
    code, err, out = _plan_run(estate, tmp, **{which: data.draw(file_bytes(valid))})
    assert_clean(code, err, {0, EXIT_CODES_CONFIG})
    if code != 0:
        assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


@FUZZ
@given(data=st.data())
def test_fuzzed_plan_files_give_one_line_before_touching_qstash(
    estate: Path, tmp_path: Path, data: st.DataObject
) -> None:
    plan_file = next((estate / "plan").glob("*.yaml"))
    valid = yaml.safe_load(plan_file.read_text())
    tmp = _fresh(tmp_path)
    f = tmp / "plan.yaml"
    f.write_bytes(data.draw(file_bytes(valid)))
    code, err = run_cli("apply", "--dry-run", str(f), "--qstash-url", "http://127.0.0.1:1",
                        "--qstash-token", "fuzz-token-secret")
    # 3: the file; 6: the plan cannot be applied; 7: QStash (nothing listens on port 1)
    assert_clean(code, err, {3, 6, 7})
    assert "fuzz-token-secret" not in err


VALID_BRIDGE = {"kafka": {"bootstrap_servers": "127.0.0.1:1"}, "group": "g",
                "batch": {"count": 10, "linger_ms": 5}, "retry": {"max_attempts": 3},
                "qstash": {"token": "fuzz-token-secret", "request_timeout": 5},
                "routes": [{"topic": "t", "ordered": True, "destinations": [
                    {"kind": "direct-http", "url": "http://127.0.0.1:1/x", "timeout": 2},
                    {"kind": "publish-url", "url": "https://e.example.com/", "retries": 3}]}]}


@FUZZ
@given(data=st.data())
def test_fuzzed_bridge_configs_are_valid_or_one_config_error(
    tmp_path: Path, data: st.DataObject
) -> None:
    """The bridge's config edge (what `bridge run/check` call first; a valid file would then
    reach for Kafka, so the loader is called directly): valid, or a ConfigError of one line."""
    f = _fresh(tmp_path) / "bridge.yaml"
    f.write_bytes(data.draw(file_bytes(VALID_BRIDGE)))
    try:
        load_bridge_config(f)
    except MigratorError as exc:
        assert exit_code_for(exc) == EXIT_CODES_CONFIG, (type(exc), exc)
        text = str(exc)
        assert "\n" not in text.strip() and "fuzz-token-secret" not in text, text


EXIT_CODES_CONFIG = 3


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_java_client_properties_give_one_line(tmp_path: Path, data: st.DataObject) -> None:
    """A Java client properties file: unknown or malformed properties are the file's fault
    (exit 3), an unreachable broker exit 4; never an internal error."""
    f = _fresh(tmp_path) / "client.properties"
    lines = data.draw(st.lists(st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.text("abcdefghij.-_", min_size=1, max_size=20),
                  st.text(max_size=20)),
        st.sampled_from(["security.protocol=NOPE", "sasl.mechanism=", "bootstrap.servers",
                         "=value", "\\", "request.timeout.ms=-5", "# comment", "!x"]),
    ), max_size=4))
    f.write_bytes("\n".join(lines).encode(data.draw(st.sampled_from(["utf-8", "latin-1"])),
                                          "replace"))
    code, err = run_cli("audit", "-b", "127.0.0.1:1", "--kafka-config", str(f), "--timeout", "1")
    assert_clean(code, err, {3, 4})

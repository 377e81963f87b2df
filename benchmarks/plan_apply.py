"""Benchmark: `migrator plan` and `migrator apply` against ceilings measured in the same run.

plan   build the plan and every output file for a synthetic inventory of TOPICS topics and
       GROUPS groups, against the floor of serialising the same plan (pydantic dump + YAML dump
       + YAML load + validation): plan / floor shows what planning adds on top of writing and
       reading its own file.
apply  create QUEUES queues + URL groups through `apply_actions` (retrying seam, state read,
       diff, report) against the local QStash server, against the same number of raw SDK
       `queue.upsert` / `url_group.upsert_endpoints` calls: ours / raw (target >= 0.8).

    python benchmarks/plan_apply.py                      # 5,000 topics, 2,000 groups, 250 queues
    python benchmarks/plan_apply.py --topics 500 --groups 200 --queues 100
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrator.config import QStashConnection  # noqa: E402
from migrator.plan.admin import QStashAdmin  # noqa: E402
from migrator.plan.apply import apply_actions  # noqa: E402
from migrator.plan.builder import build_plan  # noqa: E402
from migrator.plan.diff import diff  # noqa: E402
from migrator.plan.endpoints import EndpointFile, EndpointMap  # noqa: E402
from migrator.plan.output import build_output  # noqa: E402
from migrator.plan.spec import (  # noqa: E402
    Plan,
    QueueSpec,
    Resources,
    SourceInfo,
    UrlGroupEndpointSpec,
    UrlGroupSpec,
    load_plan,
)
from migrator.plan.state import read_state  # noqa: E402
from migrator.yamlfile import dump_yaml, write_atomic  # noqa: E402
from tests.plan.factories import group, inventory, topic  # noqa: E402


def bench_plan(topics: int, groups: int) -> None:
    inv = inventory(
        [topic(f"t{i}", partitions=6, keyed=1.0 if i % 3 == 0 else 0.0) for i in range(topics)],
        [group(f"g{j}", *[f"t{(j * 7 + k) % topics}" for k in range(5)]) for j in range(groups)],
    )
    eps = EndpointMap(EndpointFile(groups={"*": "https://x.example.com/{group}/{topic}"}))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        plan = build_plan(inv, eps)
        files = build_output(plan, inv)
        files.write(out / "full")
        load_plan(out / "full" / "plan.yaml")
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_atomic(out / "floor.yaml", dump_yaml(plan.model_dump(mode="json")))
        load_plan(out / "floor.yaml")
        floor = time.perf_counter() - t0
    print(f"plan   {topics:,} topics, {groups:,} groups, {len(files.files):,} files: "
          f"{ours:.2f}s; serialisation floor {floor:.2f}s; ratio {ours / floor:.2f}x")


def _server() -> tuple[subprocess.Popen[str], str, str]:
    token = "bench_" + secrets.token_hex(8)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qstash_server", "--host", "127.0.0.1", "--port", "0",
         "--db", ":memory:", "--token", token, "--plan", "fixed"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"local QStash server did not start: {line!r}")
    return proc, line.split(" ", 1)[1].strip(), token


def bench_apply(queues: int) -> None:
    groups = max(1, queues // 10)
    proc, url, token = _server()
    try:
        admin = QStashAdmin(QStashConnection(url=url, token=SecretStr(token)))
        raw = admin.client

        def raw_run(tag: str) -> float:
            t0 = time.perf_counter()
            for i in range(queues):
                raw.queue.upsert(f"{tag}-q{i}", parallelism=1)
            for i in range(groups):
                endpoint = {"name": "a", "url": "https://a.example.com/"}
                raw.url_group.upsert_endpoints(f"{tag}-g{i}", [endpoint])
            return (queues + groups) / (time.perf_counter() - t0)

        for _ in range(50):  # warm-up
            raw.queue.list()
        before = raw_run("raw1")
        plan = Plan(
            generated_at="bench", tool_version="bench", prefix="ours-",
            source=SourceInfo(bootstrap_servers="x:1"),
            resources=Resources(
                queues=[QueueSpec(name=f"ours-q{i}") for i in range(queues)],
                url_groups=[UrlGroupSpec(name=f"ours-g{i}", endpoints=[
                    UrlGroupEndpointSpec(name="a", url="https://a.example.com/")])
                    for i in range(groups)]),
        )
        t0 = time.perf_counter()
        report = apply_actions(admin, diff(plan, read_state(admin)).actions)
        ours = (queues + groups) / (time.perf_counter() - t0)
        assert report.count("applied") == queues + groups, report.lines()[-1]
        t0 = time.perf_counter()
        again = diff(plan, read_state(admin))
        noop = time.perf_counter() - t0
        assert not again.changes
        after = raw_run("raw2")
        ceiling = (before + after) / 2  # measured before and after ours: drift cancels out
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    print(f"apply  {queues + groups} resources: {ours:,.0f}/s (state read + diff + apply); raw SDK "
          f"{ceiling:,.0f}/s; ratio {ours / ceiling:.2f} (target >= 0.8); no-op re-check "
          f"{noop * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=5_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--queues", type=int, default=250)
    args = parser.parse_args()
    bench_plan(args.topics, args.groups)
    bench_apply(args.queues)


if __name__ == "__main__":
    main()

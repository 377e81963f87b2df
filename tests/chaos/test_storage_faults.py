"""Chaos under the local QStash server's state file: the disk fills up while the bridge
publishes. Two ways to run out of space: the server process's file size limit
(``RLIMIT_FSIZE``, raised again with ``prlimit``: no root needed; writes past it fail with
EFBIG, which SQLite reports as an I/O error) and a small tmpfs filled with a ballast file
(ENOSPC, "database or disk is full"; needs the right to mount, skipped without it).

The server must answer 500 (retryable for the bridge) for anything it could not store, log one
line, deliver nothing it has not stored, and once space returns write what it held, so the
bridge's retries (same deduplication ids) end with every record stored and delivered once."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from connectors.statuses import error_for_status
from migrator.errors import RetryableDeliveryError
from tests.bridge.harness import bridge_config, running_bridge
from tests.chaos.checks import free_port, settle, wait_for
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer

pytestmark = [pytest.mark.stack, pytest.mark.qstash, pytest.mark.chaos]

FAILED_LINE = "cannot write the state file"
RECOVERED_LINE = "is writable again"
_SIGXFSZ_BIT = 1 << (25 - 1)  # SIGXFSZ is signal 25 on Linux


class Disk(Protocol):
    """Where the state file lives, and a way to run it out of space and give space back."""

    folder: Path

    def attach(self, pid: int) -> None: ...
    def fill(self) -> None: ...
    def free(self) -> None: ...


class FileSizeLimit:
    """The server's own RLIMIT_FSIZE set to the current size of its biggest file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid = 0

    def attach(self, pid: int) -> None:
        self.pid = pid
        with open(f"/proc/{pid}/status") as fh:
            ignored = next(int(line.split()[1], 16) for line in fh if line.startswith("SigIgn:"))
        # (CPython ignores SIGXFSZ at start: a write past the limit is EFBIG, not a kill)
        assert ignored & _SIGXFSZ_BIT, "the QStash server does not ignore SIGXFSZ"

    def fill(self) -> None:
        biggest = max(p.stat().st_size for p in self.folder.iterdir())
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (biggest, resource.RLIM_INFINITY))

    def free(self) -> None:
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


class FullTmpfs:
    """A 16 MiB tmpfs; ``fill`` writes a ballast file until ENOSPC, ``free`` removes it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ballast = folder / "ballast"

    def attach(self, pid: int) -> None:
        pass

    def fill(self) -> None:
        with open(self.ballast, "wb", buffering=0) as fh:
            for size in (1 << 20, 4096, 1):
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        assert os.statvfs(self.folder).f_bavail == 0

    def free(self) -> None:
        self.ballast.unlink()


@pytest.fixture(params=["file size limit", "full tmpfs"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    folder = tmp_path / "state"
    folder.mkdir()
    if request.param == "file size limit":
        yield FileSizeLimit(folder)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:  # CI without root or CAP_SYS_ADMIN: the other variant runs
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()[:120]}); the file "
                    "size limit variant covers a full disk without root")
    try:
        yield FullTmpfs(folder)
    finally:
        # the test stops its server before this; lazily if something still holds the mount
        subprocess.run(["umount", "-l", str(folder)], check=False)


def stored_offsets(db: str, topic: str) -> set[tuple[int, int]]:
    """(partition, offset) of every record of ``topic`` whose deduplication record is in the
    state file: written in the same transaction as its message, kept 10 minutes."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        keys = [k for (k,) in conn.execute("SELECT key FROM dedup")]
    out: set[tuple[int, int]] = set()
    for key in keys:  # id:kb-<tag>-<topic>-<partition>-<offset>
        if key.startswith("id:kb-") and f"-{topic}-" in key:
            _head, partition, offset = key.rsplit("-", 2)
            out.add((int(partition), int(offset)))
    return out


def unstored_commits(kafka: KafkaKit, group: str, topic: str, db: str) -> list[tuple[int, int]]:
    """Records the bridge committed (QStash acknowledged them) that are not in the state file;
    commits are read first, the file only grows."""
    committed = kafka.committed(group, topic, 3)
    stored = stored_offsets(db, topic)
    return [(p, o) for p, c in committed.items() for o in range(max(c, 0))
            if (p, o) not in stored]


def test_a_full_disk_under_the_qstash_state_file_acknowledges_nothing_unstored(
    disk: Disk, kafka: KafkaKit, qstash_server_factory: Callable[..., QStashServer],
    endpoint: RecordingEndpoint, endpoint_factory: Callable[..., RecordingEndpoint],
) -> None:
    db = str(disk.folder / "qstash.db")
    server = qstash_server_factory(db=db, port=free_port())
    disk.attach(server.process.pid)
    probe_ep = endpoint_factory()
    topic = kafka.create_topic(unique("chaos-qdisk"), partitions=3)
    n, half = 600, 300
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 3) for i in range(half)))
    group = unique("chaos-g")
    cfg = bridge_config(group=group, batch={"count": 20, "linger_ms": 5},
                        qstash={"request_timeout": 5},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url + "/hook"}]}])
    probe = {**server.headers, "Upstash-Deduplication-Id": unique("probe")}
    probe_url = f"{server.url}/v2/publish/{probe_ep.url}/probe"
    with running_bridge(cfg, kafka.bootstrap, qstash=server.connection) as rb:
        stats = rb.bridge.stats
        wait_for("deliveries before the disk fills", lambda: stats.delivered, lambda d: d >= 60)
        disk.fill()
        kafka.produce(topic, (Rec(f"v{i}", partition=i % 3) for i in range(half, n)))
        wait_for("the server to log that it cannot write",
                 lambda: (FAILED_LINE in (out := server.output()), out[-800:]),
                 lambda seen: seen[0], timeout=30)
        answer = httpx.post(probe_url, content=b"probe", headers=probe, timeout=10)
        assert answer.status_code == 500, (answer.status_code, answer.text)
        assert "nothing was acknowledged" in answer.json()["error"], answer.text
        assert isinstance(error_for_status(500, answer.headers, answer.content, outage=True),
                          RetryableDeliveryError)
        retries = wait_for("the bridge retrying", lambda: stats.retries, lambda r: r > 0)
        time.sleep(1.0)  # deliveries started before the first failed write have ended
        held_at = len(endpoint.requests)
        accepted_at = stats.delivered
        time.sleep(2.0)  # full for a while: the bridge keeps retrying, nothing goes through
        assert rb.thread.is_alive() and rb.error is None, rb.error
        assert stats.retries > retries and stats.dead_lettered == 0, stats
        assert stats.delivered == accepted_at, "QStash acknowledged a batch it could not store"
        assert len(endpoint.requests) == held_at, "a message was delivered that was not stored"
        assert len(probe_ep.requests) == 0
        assert unstored_commits(kafka, group, topic, db) == []
        assert server.process.poll() is None, server.output()[-2000:]
        disk.free()
        outcome = settle(endpoint, n, timeout=90)
        kafka.wait_committed(group, topic, 3)
        assert rb.thread.is_alive() and rb.error is None, rb.error
        final = rb.stop()
    # the probe's retry with its deduplication id: the held message, stored and delivered once
    again = httpx.post(probe_url, content=b"probe", headers=probe, timeout=10)
    assert again.status_code == 202 and again.json()["deduplicated"] is True, again.text
    probe_ep.wait_for(1, 30)
    got = {(p, o) for p, o in outcome.got}
    assert stored_offsets(db, topic) == got  # every record stored
    output = server.output()
    server.close()
    assert outcome.lost == 0 and outcome.duplicates == 0, outcome
    assert final.dead_lettered == 0
    assert len(probe_ep.requests) == 1
    assert output.count(FAILED_LINE) == 1 and output.count(RECOVERED_LINE) == 1, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    print(f"\nfull disk ({type(disk).__name__}): retries={final.retries} {outcome}")

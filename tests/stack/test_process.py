"""The stack's process helpers: a taken port is told by EADDRINUSE, and stopping a process
started with Popen records its exit there (no "subprocess N is still running" warning)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from migrator.stack.process import free_port, port_taken, stop


def test_a_port_is_taken_while_something_listens_on_it_and_free_after() -> None:
    port = free_port()
    assert not port_taken(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert port_taken(port)
    assert not port_taken(port)


def test_stopping_a_popen_records_its_exit() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)
    stop(proc, grace=5)
    assert proc.returncode is not None, "the Popen still thinks its process runs"


def test_stopping_a_popen_waits_for_it_when_the_group_signals_ran_out_of_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a loaded machine the group's SIGTERM and SIGKILL waits can both run out with the
    process still there: stop() still ends it and records its exit."""
    import migrator.stack.process as process

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)
    monkeypatch.setattr(process, "_signal_group", lambda pid, grace: None)  # both waits ran out
    try:
        stop(proc, grace=5)
        assert proc.returncode is not None, "the Popen still thinks its process runs"
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()

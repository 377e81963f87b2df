"""Detached server processes: start with a log file, wait for readiness, stop TERM-then-KILL."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from migrator.errors import StackError

__all__ = ["free_port", "is_alive", "port_taken", "spawn", "stop", "tail", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Chosen below the kernel's ephemeral range, so the outgoing connections of other programs
    (which take ephemeral ports) cannot grab it between now and the server's bind.
    """
    low, high = _ephemeral_range()
    candidates = (range(10000, low) if low > 12000 else range(high + 1, 65535))
    for _ in range(200):
        port = random.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        fallback: int = sock.getsockname()[1]
        return fallback


def port_taken(port: int) -> bool:
    """Whether something listens on ``port`` of 127.0.0.1 now (binding it fails: EADDRINUSE).

    SO_REUSEADDR lets the bind past connections of a stopped server still in TIME_WAIT: only a
    live listener counts.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# The Popen of every process spawn() started and stop() has not ended yet, by pid. A server
# outlives the caller's handle (the stack runs on after `migrator dev up` returns; a test session
# keeps only pids), and a Popen dropped while its process runs is a ResourceWarning ("subprocess
# N is still running") wherever the garbage collector happens to run.
_SPAWNED: dict[int, subprocess.Popen[bytes]] = {}


def spawn(args: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a detached process (own session) writing stdout and stderr to ``log``; its handle
    is kept here until :func:`stop` ends it (by handle or by pid)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=cwd,
        )
    _SPAWNED[proc.pid] = proc
    return proc


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError, IndexError):
            return stat.read_text().split(")")[-1].split()[0] != "Z"
    return True


def stop(process: int | subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL after ``grace`` seconds.

    Given the ``Popen`` that started it (or the pid of a process :func:`spawn` started here), its
    exit is recorded there too (a ``Popen`` dropped with no exit status is a ResourceWarning,
    "subprocess N is still running"): waited for, since the SIGKILL's own 5 s can run out on a
    loaded machine before the kernel has ended a big JVM.
    """
    if not isinstance(process, subprocess.Popen):
        process = _SPAWNED.get(process, process)
    if isinstance(process, subprocess.Popen):
        _SPAWNED.pop(process.pid, None)
        _signal_group(process.pid, grace)
        if process.poll() is None:  # reaped by is_alive already: poll records it (ECHILD)
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)  # not in its group any more, or too slow
            process.wait()
    else:
        _signal_group(process, grace)


def _signal_group(pid: int, grace: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_alive(pid):
                return
            time.sleep(0.1)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
               interval: float = 0.5) -> None:
    """Poll ``check`` until true; raise StackError with the log's tail on timeout or process death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(_failure(f"{what} exited with code {proc.returncode} while starting", log))
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise StackError(_failure(f"{what} was not ready after {timeout:.0f}s", log))


def _failure(message: str, log: Path | None) -> str:
    if log is None:
        return message
    return f"{message}; last lines of {log}:\n{tail(log)}"

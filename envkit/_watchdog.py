"""The watchdog: a small process that outlives its owner and reaps what the owner left.

Why a process of our own and not testcontainers' Ryuk: Ryuk is an image pulled from a
registry that needs the Docker socket mounted into it; envkit runs on machines with no
registry, and a host process needs neither.

Why one watchdog per owning process (per xdist worker), not one per session: the label
``envkit.owner=<host>:<pid>`` already names exactly one process, and a process is what
dies. A per-worker watchdog needs no coordination between workers, no lock file and no
election; a worker killed alone (xdist restarts crashed workers) is reaped at once while
its siblings keep running. The cost is one idle process per worker, about 10 MB each,
and one more for each further engine (``DOCKER_HOST``) the worker starts stacks on.

How it learns of the death: the owner keeps the only write end of a pipe and the
watchdog blocks reading the other end. The kernel closes the write end however the owner
ends (exit, exception, SIGKILL, OOM killer), so end-of-file means "owner gone" with no
polling and no PID-reuse race. The watchdog runs in its own session
(``start_new_session``) so that killing the owner's process group, or Ctrl-C on its
terminal, does not reach it. After a normal exit it finds nothing labelled with its
owner and exits quietly.

Spawning must cost the owner next to nothing, so this file runs as a script by path:
while it waits it has imported only the standard library, and it imports envkit, docker
and friends (about 0.3 s of CPU) only after the owner has died.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Watchdog:
    """A spawned watchdog, as its owner sees it.

    :param owner: the ``<host>:<pid>`` whose resources it reaps.
    :param process: the watchdog process (kept so it is never reported as leaked).
    :param write_fd: the owner's end of the pipe; the owner never closes it.
    :param spawn_seconds: how long spawning blocked the owner.
    """

    owner: str
    process: subprocess.Popen[bytes]
    write_fd: int
    spawn_seconds: float


#: The connection settings a watchdog is given explicitly, never inherited by accident.
ENGINE_ENV = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")

# One watchdog per owning process and engine (see the module docstring): a process with
# stacks on two engines needs one reaper for each. Keyed by owner id, which contains the
# PID, so a forked child never mistakes its parent's for its own.
_lock = threading.Lock()
_running: dict[tuple[str, str], Watchdog] = {}
_fork_hook: list[bool] = []


def ensure(
    owner: str, *, docker_host: str, environ: Mapping[str, str] | None = None
) -> Watchdog:
    """Spawn the watchdog for *owner* on *docker_host* unless this process already has one.

    :param owner: this process's ``<host>:<pid>``.
    :param docker_host: the engine the watchdog must clean (``DOCKER_HOST`` for it).
    :param environ: the environment the owner connected with, for the engine's TLS
        settings (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``); ``os.environ`` by default.
    :raises OSError: when no process can be spawned; the caller's stack is then unguarded.
    """
    key = (owner, docker_host)
    with _lock:
        if key in _running:
            return _running[key]
        if not _fork_hook:
            # A fork child inherits the write ends and would keep the pipes open after the
            # owner died; it closes its copies and spawns its own watchdogs when it needs them.
            os.register_at_fork(after_in_child=_forget_in_child)
            _fork_hook.append(True)
        watchdog = spawn(owner, docker_host=docker_host, environ=environ)
        _running[key] = watchdog
        return watchdog


def _forget_in_child() -> None:
    for inherited in _running.values():
        with contextlib.suppress(OSError):
            os.close(inherited.write_fd)
    _running.clear()


def engine_env(docker_host: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The watchdog's environment: ours, with exactly the owner's engine settings.

    TLS variables come from *environ* (the owner's connection) or are dropped, so a
    watchdog for one engine never presents another engine's certificates.
    """
    source = os.environ if environ is None else environ
    env = {k: v for k, v in os.environ.items() if k not in ENGINE_ENV}
    env.update({k: source[k] for k in ENGINE_ENV[1:] if source.get(k)})
    env["DOCKER_HOST"] = docker_host
    return env


def spawn(
    owner: str, *, docker_host: str, environ: Mapping[str, str] | None = None
) -> Watchdog:
    """Start a watchdog process for *owner* and return without waiting for it.

    :param environ: as for :func:`ensure`.
    :raises OSError: when the process cannot be started.
    """
    # Not at module level: run as a script, this file must import nothing of envkit's.
    from envkit.labels import process_start  # noqa: PLC0415

    started = time.perf_counter()
    # The owner's start time goes along, so that a process that reuses the owner's PID
    # before the reaping is over keeps its own stacks.
    owner_start = process_start(os.getpid()) or "-"
    read_fd, write_fd = os.pipe()  # both ends close-on-exec; only read_fd is passed on
    try:
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), owner, str(read_fd), owner_start],
            pass_fds=(read_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd="/", env=engine_env(docker_host, environ),
            start_new_session=True,
        )
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
    return Watchdog(owner=owner, process=process, write_fd=write_fd,
                    spawn_seconds=time.perf_counter() - started)


def _wait_for_eof(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 64):
                return
        except InterruptedError:
            continue


def _run(argv: list[str]) -> int:
    """Script body: wait for the owner's end of the pipe to close, then reap its stacks."""
    owner, fd = argv[0], int(argv[1])
    owner_start = argv[2] if len(argv) > 2 and argv[2] != "-" else None
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    _wait_for_eof(fd)
    os.close(fd)
    # Run by path, Python put envkit/ itself first on sys.path; drop it before importing.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    # Imported only now: docker and friends cost 0.3 s of CPU the waiting never needed.
    from envkit.reaper import main  # noqa: PLC0415

    return main(["--owner", owner, "--log",
                 *(["--owner-start", owner_start] if owner_start else [])])


if __name__ == "__main__":
    sys.exit(_run(sys.argv[1:]))

"""Remove what dead owners left behind: the watchdog's reap and the session-start sweep.

Two cleaners share this module. The watchdog (:mod:`envkit._watchdog`) knows its owner
just died and removes every stack labelled ``envkit.owner=<host>:<pid>``. The sweep
(``pytest_sessionstart`` on the controller, and ``envkit gc``) knows nothing and must
decide per stack from its labels, with :func:`decide`:

- only resources carrying envkit's labels are ever considered;
- a stack older than ``older_than`` (``ENVKIT_GC_OLDER_THAN``, ``--older-than``) goes,
  whoever owns it: that is the escape hatch for crashed hosts and forgotten detached stacks;
- otherwise a detached stack (``envkit up --detach``) stays: outliving its owner is its job;
  so does a kept one (``--envkit-keep-on-failure``, marked ``envkit.kept``), until
  ``envkit down``;
- a stack owned on another host stays: its PID means nothing here (a shared remote
  ``DOCKER_HOST``); so does one owned under the same hostname but in another PID
  namespace or boot (``envkit.owner-ns`` differs: a test runner in a container that shares
  the host's hostname and network); stacks without that label (made by older envkits) are
  judged by hostname alone;
- a stack whose owner PID is gone, or now belongs to a process that started at another
  time (``envkit.owner-start`` differs: the PID was reused), goes;
- anything else (a live owner, an unreadable label) stays.

Like pytest's numbered-directory cleanup, every step tolerates racing cleaners: the
watchdog, another session's sweep and the owner's own teardown may all remove the same
stack at once, and "already gone" counts as done.
"""

from __future__ import annotations

import argparse
import enum
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from envkit import labels
from envkit._engine import Engine, connect
from envkit._teardown import teardown
from envkit.config import default_cache_dir
from envkit.errors import EnvkitError, shown
from envkit.inventory import StackInfo, list_stacks, parse_created

GC_OLDER_THAN_ENV = "ENVKIT_GC_OLDER_THAN"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``10m``, ``2h``, ``1d`` (a bare number is seconds).

    :raises EnvkitError: on anything else, with the accepted forms.
    """
    match = _DURATION.match(text)
    try:
        if match is not None:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    except OverflowError:  # more days than timedelta holds (about 2.7 million years)
        pass
    raise EnvkitError(f"not a duration: {shown(text)}",
                      fix="write a number with an optional unit: 30s, 10m, 2h or 1d")


def older_than_from_env(environ: Mapping[str, str]) -> timedelta | None:
    """The sweep's age limit from ``ENVKIT_GC_OLDER_THAN``; None (no limit) when unset.

    :raises EnvkitError: when it is set but not a duration.
    """
    raw = environ.get(GC_OLDER_THAN_ENV, "").strip()
    return parse_duration(raw) if raw else None


class Liveness(enum.Enum):
    """What the process table says about an owner PID."""

    ALIVE = "alive"
    DEAD = "dead"
    REUSED = "reused"


class ProcessTable(Protocol):
    """The liveness oracle :func:`decide` asks; tests pass a dict-backed fake."""

    def liveness(self, pid: int, start: str | None) -> Liveness: ...


class LocalProcesses:
    """The local host's processes, read from ``/proc`` (``kill(pid, 0)`` where there is none)."""

    def liveness(self, pid: int, start: str | None) -> Liveness:
        """Whether *pid* runs, and is the process that started at *start* if given."""
        if os.path.isdir("/proc/self"):
            actual = labels.process_start(pid)
            if actual is None:
                return Liveness.DEAD
            return Liveness.REUSED if start is not None and actual != start else Liveness.ALIVE
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return Liveness.DEAD
        except PermissionError:
            pass  # someone else's process: alive
        return Liveness.ALIVE


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """Whether a stack goes, and why (printed by ``envkit gc``).

    :param remove: remove the stack.
    :param reason: a short human explanation.
    """

    remove: bool
    reason: str


def decide(
    found: Mapping[str, str],
    *,
    now: datetime,
    host: str,
    processes: ProcessTable,
    namespace: str | None = None,
    older_than: timedelta | None = None,
) -> Verdict:
    """Decide one stack's fate from its labels; pure, so tests need no engine.

    :param found: the stack's labels.
    :param now: the current time (aware, UTC).
    :param host: this host's name, as in ``envkit.owner``.
    :param processes: the liveness oracle for this host's PIDs.
    :param namespace: this process's :func:`envkit.labels.owner_namespace`; ``None`` when
        unknown, which makes every stack stamped with one count as foreign.
    :param older_than: remove any stack at least this old, whatever else holds.
    """
    if labels.SESSION not in found or labels.STACK not in found:
        return Verdict(remove=False, reason="not an envkit resource")
    created = parse_created(found.get(labels.CREATED))
    if older_than is not None and created is not None and now - created >= older_than:
        return Verdict(remove=True, reason=f"older than {_human(older_than)}")
    if found.get(labels.DETACHED) == "true":
        return Verdict(remove=False, reason="detached")
    if found.get(labels.KEPT) == "true":
        return Verdict(remove=False, reason="kept after a failed test (remove: envkit down)")
    owner_host, _, raw_pid = found.get(labels.OWNER, "").rpartition(":")
    if not owner_host or not raw_pid.isdigit():
        return Verdict(remove=False, reason="owner label unreadable")
    if owner_host != host:
        return Verdict(remove=False, reason=f"owned on host {owner_host}")
    if not _same_namespace(found, namespace):
        return Verdict(remove=False, reason=f"owned on host {owner_host} in another PID "
                       f"namespace ({found[labels.OWNER_NS]})")
    state = processes.liveness(int(raw_pid), found.get(labels.OWNER_START))
    if state is Liveness.DEAD:
        return Verdict(remove=True, reason=f"owner pid {raw_pid} is gone")
    if state is Liveness.REUSED:
        return Verdict(remove=True, reason=f"owner pid {raw_pid} now belongs to another process")
    return Verdict(remove=False, reason=f"owner pid {raw_pid} is alive")


def _same_process(found: Mapping[str, str], owner_start: str | None) -> bool:
    stamped = found.get(labels.OWNER_START)
    return owner_start is None or stamped is None or stamped == owner_start


def _same_namespace(found: Mapping[str, str], namespace: str | None) -> bool:
    # No label: a stack from before the label existed, judged by hostname as it was then.
    recorded = found.get(labels.OWNER_NS)
    return recorded is None or recorded == namespace


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, kw_only=True)
class Swept:
    """One stack the sweep looked at, what it decided, and how many resources went.

    :param stack: the stack; :param verdict: the decision; :param removed: resources removed.
    """

    stack: StackInfo
    verdict: Verdict
    removed: int = 0


def remove_stacks(engine: Engine, stacks: Sequence[StackInfo]) -> dict[str, int]:
    """Tear the given stacks down at once, without graceful stops; return counts by id.

    Used when their owner is gone (or the user asked): nobody waits on a clean shutdown,
    so containers are killed rather than given their stop timeout.
    """
    def one(info: StackInfo) -> int:
        return teardown(engine, info.stack, stop_timeouts=dict.fromkeys(info.services, 0.0))

    if not stacks:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(stacks), 8)) as pool:
        counts = list(pool.map(one, stacks))
    return {info.stack: n for info, n in zip(stacks, counts, strict=True)}


def sweep(
    engine: Engine,
    *,
    older_than: timedelta | None = None,
    dry_run: bool = False,
    processes: ProcessTable | None = None,
    now: datetime | None = None,
    host: str | None = None,
    namespace: str | None = None,
) -> list[Swept]:
    """Judge every envkit stack on the engine with :func:`decide`; remove the condemned.

    :param older_than: also remove stacks at least this old, whoever owns them.
    :param dry_run: decide and report, remove nothing.
    :param host: this host's name; :param namespace: this process's PID namespace
        (both found out when not given).
    :raises EngineError: when the engine keeps refusing a request.
    """
    stacks = list_stacks(engine.client)
    when = now or datetime.now(timezone.utc)
    table = processes or LocalProcesses()
    me = host or socket.gethostname()
    ns = namespace or labels.owner_namespace()
    judged = [
        (info, decide(info.labels, now=when, host=me, processes=table, namespace=ns,
                      older_than=older_than))
        for info in stacks
    ]
    doomed = [info for info, verdict in judged if verdict.remove]
    counts = {} if dry_run else remove_stacks(engine, doomed)
    return [Swept(stack=info, verdict=v, removed=counts.get(info.stack, 0)) for info, v in judged]


def reap_owner(
    engine: Engine, owner: str, *, namespace: str | None = None, owner_start: str | None = None
) -> dict[str, int]:
    """Remove every non-detached, non-kept stack labelled ``envkit.owner=<owner>``.

    Returns how many resources went, by stack id.

    Stacks stamped with another PID namespace are left alone: their ``<host>:<pid>`` is
    another process's that merely looks the same from here.

    :param namespace: the owner's namespace; the caller's own when not given.
    :param owner_start: the owner's process start time; stacks stamped with another one
        belong to a later process that reused the PID, and are spared.
    """
    ns = namespace or labels.owner_namespace()
    stacks = [s for s in list_stacks(engine.client, selector=labels.selector(owner=owner))
              if not s.detached and not s.kept and _same_namespace(s.labels, ns)
              and _same_process(s.labels, owner_start)]
    return remove_stacks(engine, stacks)


def log_path(environ: Mapping[str, str]) -> Path:
    """Where ``--log`` appends: ``reaper.log`` in envkit's cache directory."""
    return default_cache_dir(environ) / "reaper.log"


def _logger(enabled: bool) -> Callable[[str], None]:
    path = log_path(os.environ)

    def log(line: str) -> None:
        stamped = f"{labels.utc_now()} reaper[{os.getpid()}] {line}"
        if not enabled:
            print(stamped, file=sys.stderr)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as out:
                out.write(stamped + "\n")
        except OSError:
            pass  # a reaper with nowhere to write still reaps

    return log


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m envkit.reaper``: reap one owner's stacks now, or sweep the engine.

    The watchdog calls it with ``--owner`` once its owner died; by hand, ``--owner`` reaps
    a known-dead owner and no argument runs the same sweep as ``envkit gc``.
    """
    parser = argparse.ArgumentParser(prog="python -m envkit.reaper")
    parser.add_argument("--owner", help="reap this <host>:<pid>'s stacks (skip liveness checks)")
    parser.add_argument("--owner-start", default=None,
                        help="with --owner: spare stacks of a later process with that PID")
    parser.add_argument("--log", action="store_true", help=f"append to {log_path(os.environ)}")
    args = parser.parse_args(argv)
    log = _logger(args.log)
    try:
        engine = connect(os.environ)
        if args.owner:
            counts = reap_owner(engine, args.owner, owner_start=args.owner_start)
        else:
            swept = sweep(engine, older_than=older_than_from_env(os.environ))
            counts = {s.stack.stack: s.removed for s in swept if s.verdict.remove}
    except EnvkitError as exc:
        log(f"owner {args.owner or '-'}: failed: {exc}")
        return 1
    for stack, removed in counts.items():
        log(f"owner {args.owner or '-'}: removed stack {stack} ({removed} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

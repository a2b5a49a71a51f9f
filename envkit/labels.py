"""The label contract on every resource envkit creates.

These keys are public: the CLI, the reaper and users' own scripts select envkit's
resources by them, and nothing without them is ever removed. The namespace is reserved;
a spec may not set labels inside it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

PREFIX = "envkit."
SESSION = "envkit.session"
WORKER = "envkit.worker"
STACK = "envkit.stack"
SERVICE = "envkit.service"
OWNER = "envkit.owner"
CREATED = "envkit.created"
DETACHED = "envkit.detached"
OWNER_START = "envkit.owner-start"
OWNER_NS = "envkit.owner-ns"
#: On a marker volume of a stack left running after a failed test (``Stack.keep``).
KEPT = "envkit.kept"
#: On every resource of a stack the warm pool started ahead of need (a spare, or one a
#: test has taken since: labels cannot change).
POOLED = "envkit.pooled"


def owner_id() -> str:
    """Identify this process as ``<host>:<pid>``, so a sweep can tell if it still lives."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_start(pid: int) -> str | None:
    """The start time of *pid* in clock ticks since boot (``/proc/<pid>/stat`` field 22).

    Stored as ``envkit.owner-start`` so a sweep can tell the owner from a later process
    that happens to reuse its PID; ``None`` where there is no ``/proc`` or no such process.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields resume after
    # the last ")", where field 3 is the first.
    fields = raw[raw.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else None


def owner_namespace() -> str | None:
    """Where this process's PIDs mean something: ``<boot id>/<PID-namespace inode>``.

    ``<host>:<pid>`` alone is ambiguous: a test runner in a container that shares the
    host's hostname (``--network host``, ``--uts host``) has PIDs of its own namespace,
    which look dead from outside it. Stored as ``envkit.owner-ns`` so a sweep only checks
    PIDs of its own namespace on its own boot; ``None`` where there is no ``/proc``.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            boot_id = boot.read().strip()
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None
    inode = link[link.find("[") + 1:link.rfind("]")] if "[" in link else link
    return f"{boot_id}/{inode}" if boot_id and inode else None


def utc_now() -> str:
    """Timestamp in UTC ISO 8601, as stored in ``envkit.created``."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True, kw_only=True)
class Ownership:
    """Who a stack's resources belong to; stamped on all of them at creation.

    :param session: the test run (shared by its xdist workers).
    :param worker: the xdist worker id, or ``main``.
    :param stack: the stack's identifier, unique on the engine.
    :param owner: ``<host>:<pid>`` of the creating process.
    :param created: creation time, UTC ISO 8601.
    :param detached: started by ``envkit up --detach``, meant to outlive its owner.
    :param owner_start: the owner's :func:`process_start`, when known.
    :param pooled: started ahead of need by the warm pool (``envkit.pooled``).
    :param owner_ns: the owner's :func:`owner_namespace` (this process's by default).
    """

    session: str
    worker: str
    stack: str
    owner: str
    created: str
    detached: bool = False
    owner_start: str | None = None
    pooled: bool = False
    # Computed by default so that every creator stamps it without passing it along.
    owner_ns: str | None = field(default_factory=owner_namespace)

    def stack_labels(self) -> dict[str, str]:
        """Labels for the stack's network and volumes."""
        stamped = {
            SESSION: self.session,
            WORKER: self.worker,
            STACK: self.stack,
            OWNER: self.owner,
            CREATED: self.created,
        }
        if self.detached:
            # Outlives its owner on purpose: sweeps leave it to `envkit down`/`gc --older-than`.
            stamped[DETACHED] = "true"
        if self.pooled:
            stamped[POOLED] = "true"
        if self.owner_start is not None:
            stamped[OWNER_START] = self.owner_start
        if self.owner_ns is not None:
            stamped[OWNER_NS] = self.owner_ns
        return stamped

    def service_labels(
        self, service: str, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Labels for one service's container, with the user's own labels first."""
        return {**(extra or {}), **self.stack_labels(), SERVICE: service}


def selector(
    *,
    session: str | None = None,
    worker: str | None = None,
    stack: str | None = None,
    owner: str | None = None,
) -> dict[str, list[str]]:
    """Docker ``filters`` selecting envkit resources; with no argument, all of them."""
    wanted = [SESSION]
    for key, value in ((SESSION, session), (WORKER, worker), (STACK, stack), (OWNER, owner)):
        if value is not None:
            wanted.append(f"{key}={value}")
    if len(wanted) > 1:
        wanted.remove(SESSION)
    return {"label": wanted}


def reserved(labels: Mapping[str, str]) -> list[str]:
    """Keys of *labels* inside envkit's reserved namespace."""
    return sorted(key for key in labels if key.startswith(PREFIX))

"""Exclusive leases of host cameras, one worker per device, through ``fcntl.flock``.

A V4L2 capture device streams to one process at a time, so two xdist workers must never
map the same node. Each device has a lock file under a directory keyed by the session;
a worker holds ``flock(LOCK_EX)`` on it for as long as it uses the device. The kernel
drops the lock when the file descriptor closes, so a worker that dies (even by SIGKILL)
frees its devices at once: no stale locks, no PID checks.

When not enough devices are free, the *policy* decides: ``wait`` (until a deadline),
``synthetic`` (take the free ones, synthetic cameras for the rest), ``skip`` or ``fail``.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from envkit.errors import EnvkitError

if TYPE_CHECKING:
    from envkit.kits import KitContext

POLICIES = ("wait", "synthetic", "skip", "fail")
#: Kit options (``Settings.options``) the camera plugin sets from its pytest options.
COUNT, POLICY, WAIT = "cameras", "camera_policy", "camera_wait"
#: Comma-separated device paths to lease instead of the host's QUERYCAP-capable nodes.
DEVICES_ENV = "ENVKIT_CAMERA_DEVICES"
DEFAULT_WAIT = 60.0
_POLL = 0.1


class CameraLeaseError(EnvkitError):
    """Not enough cameras could be leased, and the policy says to stop.

    :param skip: the policy was ``skip``: the caller skips rather than fails.
    """

    def __init__(self, message: str, *, fix: str, skip: bool = False) -> None:
        super().__init__(message, fix=fix)
        self.skip = skip


@dataclass(kw_only=True)
class Lease:
    """One device held by this process; :meth:`release` (or the process's death) frees it."""

    device: str
    lock_file: Path
    fd: int | None = field(default=None, repr=False)

    def release(self) -> None:
        """Unlock and close; idempotent."""
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What a request got: leased devices, and synthetic cameras standing in for the rest."""

    leases: tuple[Lease, ...]
    synthetic: int = 0
    reason: str = ""

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(lease.device for lease in self.leases)

    def release(self) -> None:
        for lease in self.leases:
            lease.release()


def lock_dir(cache_dir: Path, session: str) -> Path:
    """The directory of *session*'s device locks (shared by all its workers)."""
    return cache_dir / "camera-leases" / re.sub(r"[^A-Za-z0-9_.-]", "_", session)


def lock_file(directory: Path, device: str) -> Path:
    """The lock file of *device*: its path with ``/`` spelled ``%`` (unique, readable)."""
    return directory / (device.replace("%", "%%").replace("/", "%") + ".lock")


def try_lease(device: str, directory: Path) -> Lease | None:
    """Lock *device* for this process, or ``None`` when another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = lock_file(directory, device)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    # The pid is for people reading the directory; the lock alone decides.
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return Lease(device=device, lock_file=path, fd=fd)


def _take(devices: Sequence[str], count: int, directory: Path) -> list[Lease]:
    taken: list[Lease] = []
    for device in devices:
        if len(taken) == count:
            break
        lease = try_lease(device, directory)
        if lease is not None:
            taken.append(lease)
    return taken


def acquire(
    devices: Sequence[str], count: int, directory: Path, *, policy: str = "wait",
    wait: float = DEFAULT_WAIT, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Grant:
    """Lease *count* of *devices*, all or nothing, else do what *policy* says.

    ``wait`` retries until *wait* seconds pass, holding nothing between attempts, so two
    workers each needing two of two devices cannot deadlock holding one each.

    :raises CameraLeaseError: under ``fail``, ``skip`` (with ``skip`` set), or ``wait``
        past its deadline or when fewer than *count* devices exist at all.
    """
    if policy not in POLICIES:
        raise CameraLeaseError(f"camera policy {policy!r} is not one of {', '.join(POLICIES)}",
                               fix="pass --envkit-camera-policy wait|synthetic|skip|fail")
    if count <= 0:
        return Grant(leases=())
    deadline = clock() + wait
    while True:
        taken = _take(devices, count, directory)
        if len(taken) == count:
            return Grant(leases=tuple(taken))
        if policy == "synthetic":
            return Grant(leases=tuple(taken), synthetic=count - len(taken),
                         reason=_shortage(devices, count, len(taken)))
        for lease in taken:
            lease.release()
        if policy == "wait" and len(devices) >= count and clock() < deadline:
            sleep(_POLL)
            continue
        raise _refusal(devices, count, len(taken), policy, wait)


def _shortage(devices: Sequence[str], count: int, free: int) -> str:
    known = ", ".join(devices) or "none"
    return f"{count} camera(s) asked for, {free} free of {len(devices)} ({known})"


def _refusal(devices: Sequence[str], count: int, free: int, policy: str,
             wait: float) -> CameraLeaseError:
    why = _shortage(devices, count, free)
    if policy == "wait" and len(devices) >= count:
        why += f"; still not free after {wait:g} s"
    fix = ("attach cameras (or `modprobe v4l2loopback devices=N`), run fewer workers, ask "
           f"for fewer, or choose --envkit-camera-policy synthetic|skip; {DEVICES_ENV} "
           "names the devices to lease")
    return CameraLeaseError(f"no camera lease: {why}", fix=fix, skip=policy == "skip")


def discover(environ: Mapping[str, str], pattern: str = "/dev/video*") -> tuple[str, ...]:
    """The devices to lease: ``$ENVKIT_CAMERA_DEVICES`` if set, else the host's capture nodes.

    A host node counts when it answers QUERYCAP with the capture capability (UVC
    metadata nodes and non-V4L2 nodes do not).
    """
    override = environ.get(DEVICES_ENV)
    if override is not None:
        return tuple(d.strip() for d in override.split(",") if d.strip())
    from envkit.camera.devices import is_capture

    nodes = sorted(glob.glob(pattern), key=lambda d: (len(d), d))
    return tuple(d for d in nodes if is_capture(d))


def release_all(grants: Iterable[Grant]) -> None:
    """Release every lease of *grants* (teardown of a fixture)."""
    for grant in grants:
        grant.release()


def session_dir(ctx: KitContext) -> Path:
    """The lock directory of *ctx*'s session (every worker of a run shares it)."""
    session = getattr(ctx, "session", None) or ctx.settings.session or f"pid{os.getpid()}"
    return lock_dir(ctx.settings.cache_dir, str(session))


def request(ctx: KitContext, count: int, *, real: bool = True) -> Grant:
    """Lease *count* cameras for *ctx*'s run under the configured policy and deadline.

    ``real=False`` asks for synthetic cameras alone (nothing is leased). Under the
    ``skip`` policy a shortage skips the calling test (pytest is running then).

    :raises CameraLeaseError: under ``fail``, or ``wait`` past its deadline.
    """
    if not real:
        return Grant(leases=(), synthetic=count, reason="synthetic cameras asked for")
    options = ctx.settings.options
    try:
        return acquire(discover(ctx.environ), count, session_dir(ctx),
                       policy=options.get(POLICY, "wait"),
                       wait=float(options.get(WAIT, DEFAULT_WAIT)))
    except CameraLeaseError as exc:
        if not exc.skip:
            raise
        import pytest

        pytest.skip(f"envkit: {exc.message}")


def worker_grant(ctx: KitContext) -> Grant | None:
    """The worker's cameras for its default stacks, leased once per process.

    ``None`` when no camera count was configured (outside pytest): the caller maps every
    host camera then, as ``envkit up`` on a developer's machine should.
    """
    count = ctx.settings.options.get(COUNT)
    if count is None:
        return None
    return ctx.memo("camera.worker-grant", lambda: request(ctx, int(count)))


def stack_grant(ctx: KitContext, service: str, count: int) -> Grant:
    """Cameras for a stack file's ``camera-service`` block (``cameras: N``), per process.

    Leased once per worker and service name, like :func:`worker_grant`, and held until
    the worker exits: a block is resolved each time a stack is made from its file, and
    every stack of one worker may share that worker's devices.
    """
    return ctx.memo(f"camera.stack-grant:{service}:{count}", lambda: request(ctx, count))


def container_mapping(device: str) -> str:
    """``host:/dev/videoN`` for a leased node named ``videoN`` anywhere (test stand-ins)."""
    name = os.path.basename(device)
    if re.fullmatch(r"video\d+", name) and not device.startswith("/dev/"):
        return f"{device}:/dev/{name}"
    return device

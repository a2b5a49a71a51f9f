"""``envkit doctor``: check the machine a test run needs, and say how to fix each problem.

Each check is a small function returning :class:`Check` values; a failure stops a run
(the command exits 1), a warning only slows one down or disables some stacks (cameras).
Checks after an unreachable engine are skipped, since each would fail for the same reason.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from envkit import imageset, reaper
from envkit._engine import Engine
from envkit.errors import EngineUnavailableError, EnvkitError
from envkit.session import Envkit

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_API = (1, 41)  # Docker 20.10: init, per-network aliases at create, label filters
MIN_FREE_BYTES = 5 * 1024**3
#: _IOR('V', 0, struct v4l2_capability), the struct being 104 bytes.
VIDIOC_QUERYCAP = 0x80685600


@dataclass(frozen=True, kw_only=True)
class Check:
    """One finding.

    :param name: what was checked; :param status: ``ok``, ``warn`` or ``fail``;
    :param detail: what was found; :param fix: what to do about it (empty when ok).
    """

    name: str
    status: str
    detail: str
    fix: str = ""


def run(kit: Envkit) -> list[Check]:
    """Run every check against *kit*'s engine and machine, in a stable order."""
    try:
        engine = kit.engine
    except EngineUnavailableError as exc:
        return [Check(name="engine", status=FAIL, detail=exc.message, fix=exc.fix),
                *_cameras()]
    checks: list[Check] = []
    for probe in (_engine_checks, _image_checks, _leftover_checks):
        try:
            checks.extend(probe(kit, engine))
        except EnvkitError as exc:
            checks.append(Check(name=probe.__name__.strip("_").replace("_checks", ""),
                                status=FAIL, detail=exc.message, fix=exc.fix))
    return [*checks, *_cameras(), *_disk(engine)]


def _engine_checks(kit: Envkit, engine: Engine) -> Iterator[Check]:
    yield Check(name="engine", status=OK,
                detail=f"Docker Engine {engine.server_version()} at {engine.docker_host}")
    api = tuple(int(p) for p in engine.api_version.split(".")[:2])
    if api < MIN_API:
        yield Check(name="api version", status=FAIL, detail=f"API {engine.api_version}",
                    fix="upgrade Docker Engine to 20.10 or newer (API 1.41)")
    else:
        yield Check(name="api version", status=OK, detail=f"API {engine.api_version}")
    driver = str(engine.client.info().get("Driver", "unknown"))
    if driver == "vfs":
        yield Check(name="storage driver", status=WARN, detail="vfs copies every layer in full",
                    fix='set "storage-driver": "overlay2" in /etc/docker/daemon.json, '
                    "then restart dockerd")
    else:
        yield Check(name="storage driver", status=OK, detail=driver)


def _image_checks(kit: Envkit, engine: Engine) -> Iterator[Check]:
    builder = kit.images
    base = builder.base_tag
    if not imageset.present(engine.client, base):
        tools = [t for t in ("mmdebstrap", "debootstrap") if shutil.which(t)]
        yield Check(
            name="base image", status=FAIL if not tools else WARN,
            detail=f"{base} missing" + ("" if tools else "; neither mmdebstrap nor debootstrap"),
            fix="run `envkit images build`" if tools
            else "apt-get install mmdebstrap, then run `envkit images build`",
        )
        return
    yield Check(name="base image", status=OK, detail=base)
    for status in imageset.statuses(engine.client, builder, kit.settings.images_dir):
        if status.present:
            yield Check(name=f"image {status.name}", status=OK, detail=str(status.tag))
        else:
            yield Check(
                name=f"image {status.name}", status=WARN,
                detail=status.problem or f"{status.tag} not built (first use builds it)",
                fix=f"run `envkit images build {status.name}`",
            )


def _leftover_checks(kit: Envkit, engine: Engine) -> Iterator[Check]:
    stale = [s for s in reaper.sweep(engine, dry_run=True) if s.verdict.remove]
    if stale:
        yield Check(name="leftovers", status=WARN,
                    detail=f"{len(stale)} stacks of dead owners on the engine",
                    fix="run `envkit gc` (the next test session also removes them)")
    else:
        yield Check(name="leftovers", status=OK, detail="no stacks of dead owners")


def _cameras(pattern: str = "/dev/video*") -> list[Check]:
    devices = sorted(glob.glob(pattern), key=lambda d: (len(d), d))
    if not devices:
        return [Check(name="cameras", status=WARN, detail=f"no {pattern}; camera stacks fail",
                      fix="attach a camera, or `modprobe v4l2loopback` for a virtual one")]
    return [_query_camera(device) for device in devices]


def _query_camera(device: str, ioctl: Callable[..., bytes] = fcntl.ioctl) -> Check:
    """Ask *device* for its V4L2 capabilities, proving it is a camera we may open."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        return Check(name=f"camera {device}", status=WARN, detail=f"cannot open: {exc.strerror}",
                     fix=f"add your user to the video group, or check `ls -l {device}`")
    try:
        raw = ioctl(fd, VIDIOC_QUERYCAP, bytes(104))
    except OSError as exc:
        return Check(name=f"camera {device}", status=WARN,
                     detail=f"not a V4L2 device ({exc.strerror})", fix="check the driver")
    finally:
        os.close(fd)
    driver, card = (struct.unpack_from(f"{n}s", raw, off)[0].split(b"\0")[0].decode()
                    for n, off in ((16, 0), (32, 16)))
    return Check(name=f"camera {device}", status=OK, detail=f"{card} ({driver})")


def _disk(engine: Engine) -> list[Check]:
    root = None if engine.remote else str(engine.client.info().get("DockerRootDir") or "")
    path = Path(root) if root and os.path.isdir(root) else Path.home()
    free = shutil.disk_usage(path).free
    gib = free / 1024**3
    if free < MIN_FREE_BYTES:
        return [Check(name="free disk", status=FAIL, detail=f"{gib:.1f} GiB free at {path}",
                      fix="run `envkit images prune` and `docker system prune`, "
                      "or free space on that filesystem")]
    return [Check(name="free disk", status=OK, detail=f"{gib:.1f} GiB free at {path}")]


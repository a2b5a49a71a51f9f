"""``envkit doctor``: check the machine a test run needs, and say how to fix each problem.

Each check is a small function returning :class:`Check` values; a failure stops a run
(the command exits 1), a warning only slows one down or disables some stacks (cameras).
Checks after an unreachable engine are skipped, since each would fail for the same reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from envkit import _addrpools, imageset, reaper
from envkit._engine import Engine
from envkit.errors import EngineUnavailableError, EnvkitError
from envkit.kits import Finding
from envkit.session import Envkit

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_API = (1, 41)  # Docker 20.10: init, per-network aliases at create, label filters
MIN_FREE_BYTES = 5 * 1024**3


#: A finding; kits' doctor checks return the same type (:class:`envkit.kits.Finding`).
Check = Finding


def run(kit: Envkit) -> list[Check]:
    """Run every check against *kit*'s engine and machine, in a stable order."""
    try:
        engine = kit.engine
    except EngineUnavailableError as exc:
        return [Check(name="engine", status=FAIL, detail=exc.message, fix=exc.fix)]
    checks: list[Check] = []
    for probe in (_engine_checks, _image_checks, _leftover_checks, _address_pool_checks):
        try:
            checks.extend(probe(kit, engine))
        except EnvkitError as exc:
            checks.append(Check(name=probe.__name__.strip("_").replace("_checks", ""),
                                status=FAIL, detail=exc.message, fix=exc.fix))
    return [*checks, *_disk(engine), *_kit_checks(kit)]


def _kit_checks(kit: Envkit) -> Iterator[Check]:
    """Each kit's own checks, after the core's; a failing kit is one finding, not a crash."""
    try:
        kits = kit.kits.kits
    except EnvkitError as exc:
        yield Check(name="kits", status=FAIL, detail=exc.message, fix=exc.fix)
        return
    for each in kits:
        for check in each.doctor:
            try:
                yield from check(kit)
            except EnvkitError as exc:
                yield Check(name=f"kit {each.name}", status=FAIL, detail=exc.message,
                            fix=exc.fix)


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
    for status in imageset.statuses(engine.client, builder):
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


def _address_pool_checks(kit: Envkit, engine: Engine) -> Iterator[Check]:
    found = _addrpools.engine_usage(engine, fallback=kit.settings.subnets)
    yield pool_finding(found, wanted=_addrpools.wanted(),
                       fallback=",".join(map(str, kit.settings.subnets)))


def pool_finding(found: _addrpools.PoolUsage, *, wanted: int, fallback: str) -> Check:
    """The finding on the engine's default address pools (pure, for the unit tests).

    :param wanted: free networks a ``pytest -n auto`` run here may need at once.
    :param fallback: ``ENVKIT_SUBNETS`` as shown, where envkit picks when they run out.
    """
    detail = (f"{found.free} of {found.capacity} networks free ({found.envkit} taken by "
              f"envkit, {found.other} by other networks and host routes; {found.source})")
    if found.free >= wanted:
        return Check(name="address pools", status=OK, detail=detail)
    fix = ("remove networks you no longer need (`docker network ls`; `envkit gc` removes "
           "dead owners' stacks), or give dockerd larger pools: \"default-address-pools\": "
           '[{"base": "10.128.0.0/16", "size": 24}] in /etc/docker/daemon.json, then '
           "restart it")
    if not found.fallback:
        return Check(name="address pools", status=FAIL if found.free == 0 else WARN,
                     detail=f"{detail}; and every /24 of ENVKIT_SUBNETS={fallback} is taken",
                     fix=f"{fix}; or add a free range to ENVKIT_SUBNETS")
    return Check(name="address pools", status=WARN,
                 detail=f"{detail}; a `-n auto` run may need {wanted}, and past the pools "
                 f"envkit picks /24s of ENVKIT_SUBNETS={fallback} (slower creates)",
                 fix=fix)


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


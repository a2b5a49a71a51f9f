"""Removal of a stack by its labels, shared by the runtime, the reaper and the CLI.

Teardown selects by ``envkit.stack`` rather than by what a process remembers, so a
half-finished ``up()`` or a container that already died is removed all the same; it lives
apart from :mod:`envkit.runtime` so the reaper needs nothing of the runtime (no cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from envkit import _engine, labels
from envkit._engine import Engine
from envkit.errors import EngineError, EnvkitError


def teardown(
    engine: Engine, stack_id: str, *, stop_timeouts: dict[str, float] | None = None
) -> int:
    """Remove all containers, volumes and networks labelled ``envkit.stack=<stack_id>``.

    Containers get their stop timeout (SIGTERM, then SIGKILL) concurrently, so a stack
    goes down in about the time of its slowest service. Returns how many resources went.
    """
    client = engine.client
    selector = labels.selector(stack=stack_id)
    # One request: the listing carries the name, labels and state teardown needs, where
    # the SDK's containers.list would inspect each container too (one more request each,
    # and one more chance for a flaky engine to fail the whole listing).
    containers: list[dict[str, Any]] = _engine.call(
        f"list containers of {stack_id}",
        lambda: client.api.containers(all=True, filters=selector),
    )
    timeouts = stop_timeouts or {}
    failures: list[EnvkitError] = []

    def attempt(action: Callable[[], None]) -> None:
        # One resource that will not go must not keep the others alive.
        try:
            action()
        except EnvkitError as exc:
            failures.append(exc)

    with ThreadPoolExecutor(max_workers=max(len(containers), 1)) as pool:
        list(pool.map(lambda c: attempt(partial(
            _remove_container, engine, c,
            timeouts.get((c.get("Labels") or {}).get(labels.SERVICE, ""), 2.0))),
            containers))
    nets = _engine.call("list networks", lambda: client.networks.list(filters=selector))
    vols = _engine.call("list volumes", lambda: client.volumes.list(filters=selector))
    for net in nets:
        attempt(partial(_engine.remove, f"remove network {net.name}", net.remove, attempts=6))
    for vol in vols:
        attempt(partial(_engine.remove, f"remove volume {vol.name}",
                        partial(vol.remove, force=True)))
    if failures:
        raise EngineError(action=f"tear down stack {stack_id} completely",
                          cause="; ".join(f.message for f in failures),
                          fix="run `envkit down " + stack_id + "` again, or `envkit gc`")
    return len(containers) + len(nets) + len(vols)


def _remove_container(engine: Engine, listed: dict[str, Any], stop_timeout: float) -> None:
    """Stop (with the service's timeout) and remove one container as the listing gave it."""
    api = engine.client.api
    ident = str(listed["Id"])
    name = str((listed.get("Names") or [ident[:12]])[0]).lstrip("/")

    def remove() -> None:
        if stop_timeout > 0 and listed.get("State") == "running":
            api.stop(ident, timeout=max(round(stop_timeout), 1))
        api.remove_container(ident, force=True, v=True)

    _engine.remove(f"remove container {name}", remove)

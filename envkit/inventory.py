"""What envkit has on an engine, read back from labels alone.

``envkit ps``, ``envkit down --session/--all``, ``envkit gc`` and the reaper all start
from this listing. It uses the engine's list endpoints only (one request per resource
kind, no per-container inspect), so it is cheap, and a container removed by another
cleaner while we look cannot make it fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from envkit import _engine, labels


@dataclass(frozen=True, kw_only=True)
class ContainerInfo:
    """One container of a stack, as the list endpoint reports it.

    :param name: container name.
    :param service: the ``envkit.service`` label.
    :param state: ``running``, ``exited``, ``created``...
    :param endpoints: published ports as ``8080/tcp -> 127.0.0.1:49153``.
    """

    name: str
    service: str
    state: str
    endpoints: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StackInfo:
    """One stack found on the engine: its labels and the resources that carry them.

    :param stack: the ``envkit.stack`` id.
    :param labels: the stack-level labels (those every resource of the stack shares).
    :param containers: its containers; :param networks: its network names;
    :param volumes: its volume names.
    """

    stack: str
    labels: Mapping[str, str]
    containers: tuple[ContainerInfo, ...] = ()
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    @property
    def session(self) -> str:
        """The ``envkit.session`` label."""
        return self.labels.get(labels.SESSION, "?")

    @property
    def worker(self) -> str:
        """The ``envkit.worker`` label."""
        return self.labels.get(labels.WORKER, "?")

    @property
    def owner(self) -> str:
        """The ``envkit.owner`` label, ``<host>:<pid>``."""
        return self.labels.get(labels.OWNER, "?")

    @property
    def detached(self) -> bool:
        """Whether ``envkit up --detach`` made it to outlive its owner."""
        return self.labels.get(labels.DETACHED) == "true"

    @property
    def kept(self) -> bool:
        """Whether a failed test left it running (``--envkit-keep-on-failure``).

        Read from the stack's marker volume (``envkit.kept=true``): labels of existing
        containers cannot change, so :meth:`envkit.runtime.Stack.keep` adds a resource.
        """
        return self.labels.get(labels.KEPT) == "true"

    @property
    def pooled(self) -> bool:
        """Whether the warm pool started it ahead of need (a spare, or taken since)."""
        return self.labels.get(labels.POOLED) == "true"

    @property
    def created(self) -> datetime | None:
        """The ``envkit.created`` label parsed, or None if absent or malformed."""
        return parse_created(self.labels.get(labels.CREATED))

    @property
    def services(self) -> tuple[str, ...]:
        """Service names, in container-name order."""
        return tuple(c.service for c in self.containers)

    @property
    def state(self) -> str:
        """``running``, ``partial 1/2``, ``exited`` or ``no containers`` (a half-made stack)."""
        if not self.containers:
            return "no containers"
        running = sum(c.state == "running" for c in self.containers)
        if running == len(self.containers):
            return "running"
        if running == 0:
            return "exited" if all(c.state == "exited" for c in self.containers) else "stopped"
        return f"partial {running}/{len(self.containers)}"

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every published port as ``service 8080/tcp -> 127.0.0.1:49153``."""
        return tuple(f"{c.service} {e}" for c in self.containers for e in c.endpoints)

    @property
    def resources(self) -> tuple[str, ...]:
        """Every resource of the stack as ``container <name>``, ``network ...``, ``volume ...``."""
        return (*(f"container {c.name}" for c in self.containers),
                *(f"network {n}" for n in self.networks),
                *(f"volume {v}" for v in self.volumes))

    def age(self, now: datetime) -> timedelta | None:
        """Time since creation, or None when the creation label is unusable."""
        created = self.created
        return None if created is None else now - created

    def describe(self, now: datetime) -> dict[str, Any]:
        """A JSON-ready document (what ``envkit ps --json`` prints per stack)."""
        age = self.age(now)
        return {
            "stack": self.stack, "session": self.session, "worker": self.worker,
            "owner": self.owner, "created": self.labels.get(labels.CREATED),
            "age_seconds": None if age is None else int(age.total_seconds()),
            "detached": self.detached, "kept": self.kept, "pooled": self.pooled,
            "state": self.state,
            "containers": [
                {"name": c.name, "service": c.service, "state": c.state,
                 "endpoints": list(c.endpoints)} for c in self.containers
            ],
            "networks": list(self.networks), "volumes": list(self.volumes),
        }


def parse_created(raw: str | None) -> datetime | None:
    """Parse an ``envkit.created`` value; naive or malformed values give None."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass
class _Builder:
    labels: dict[str, str] = field(default_factory=dict)
    containers: list[ContainerInfo] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def note(self, found: Mapping[str, str]) -> None:
        for key, value in found.items():
            if key.startswith(labels.PREFIX) and key != labels.SERVICE:
                self.labels.setdefault(key, value)


def _endpoints(ports: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    seen = {
        f"{p['PrivatePort']}/{p.get('Type', 'tcp')} -> {p.get('IP', '')}:{p['PublicPort']}"
        for p in ports if p.get("PublicPort") and ":" not in str(p.get("IP", ""))
    }
    return tuple(sorted(seen))


def list_stacks(client: Any, *, selector: dict[str, list[str]] | None = None) -> list[StackInfo]:
    """Every envkit stack on the engine (or those matching *selector*), sorted by id.

    Resources without an ``envkit.stack`` label are not envkit's and never appear.

    :param client: a ``docker.DockerClient``.
    :param selector: label filters from :func:`envkit.labels.selector`; all by default.
    :raises EngineError: when the engine keeps refusing a listing.
    """
    filters = selector or labels.selector()
    api = client.api
    stacks: dict[str, _Builder] = {}

    def entry(found: Mapping[str, str] | None) -> _Builder | None:
        stack = (found or {}).get(labels.STACK)
        if not stack:
            return None
        builder = stacks.setdefault(stack, _Builder())
        builder.note(found or {})
        return builder

    for raw in _engine.call("list containers", lambda: api.containers(all=True, filters=filters)):
        if (b := entry(raw.get("Labels"))) is not None:
            b.containers.append(ContainerInfo(
                name=str((raw.get("Names") or ["?"])[0]).lstrip("/"),
                service=raw["Labels"].get(labels.SERVICE, "?"),
                state=str(raw.get("State", "unknown")),
                endpoints=_endpoints(raw.get("Ports") or []),
            ))
    for raw in _engine.call("list networks", lambda: api.networks(filters=filters)):
        if (b := entry(raw.get("Labels"))) is not None:
            b.networks.append(str(raw.get("Name")))
    volumes = _engine.call("list volumes", lambda: api.volumes(filters=filters))
    for raw in (volumes or {}).get("Volumes") or []:
        if (b := entry(raw.get("Labels"))) is not None:
            b.volumes.append(str(raw.get("Name")))
    return [
        StackInfo(stack=stack, labels=b.labels,
                  containers=tuple(sorted(b.containers, key=lambda c: c.name)),
                  networks=tuple(sorted(b.networks)), volumes=tuple(sorted(b.volumes)))
        for stack, b in sorted(stacks.items())
    ]


def list_resources(client: Any, *, session: str, worker: str | None = None) -> list[str]:
    """Every envkit resource of *session* (and *worker*) as ``<kind> <name>``, sorted.

    What the leak checks compare: the plugin's at the end of a run, the test suite's
    after each module. Stacks a failed test kept (:attr:`StackInfo.kept`) are left out:
    they stay on purpose until ``envkit down``.

    :raises EngineError: when the engine keeps refusing a listing.
    """
    found = list_stacks(client, selector=labels.selector(session=session, worker=worker))
    return sorted(r for s in found if not s.kept for r in s.resources)

"""Bring a stack up on its own network, and take everything it made down again.

A stack's network and containers carry the stack's labels from the moment they exist,
and teardown selects by those labels rather than by what this process remembers, so a
half-finished ``up()`` or a container that already died is removed all the same.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from ipaddress import IPv4Network
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from docker.models.containers import Container

from envkit import _engine, _proxy, _subnets, _watchdog, labels
from envkit._containers import ServiceHandle, check_devices, check_host_paths, create_service
from envkit._engine import Engine
from envkit._exits import StackExits, await_completion
from envkit._faults import Faults
from envkit._teardown import teardown
from envkit.config import DEFAULT_SUBNETS
from envkit.errors import EngineError, EnvkitError, NameNotFoundError, StackStateError
from envkit.readiness import Cancelled, wait_ready
from envkit.spec import Build, ServiceSpec, StackSpec


class ImageResolver(Protocol):
    """Turns a spec's image (tag or build) into a tag present on the engine."""

    def resolve(self, image: str | Build, *, recheck: bool = False) -> str: ...


class StackState(enum.Enum):
    """Where a :class:`Stack` is in its life; each method says which states it accepts."""

    NEW = "new"
    STARTING = "starting"
    UP = "up"
    DOWN = "down"


class _DependencyFailed(EnvkitError):
    """A service was not started because a service it depends on failed."""


def network_name(stack_id: str) -> str:
    """The stack's private network, ``envkit-<session>-<worker>-<stack>``."""
    return f"envkit-{stack_id}"


class Stack(Faults):
    """A running instance of a :class:`StackSpec`, private to one worker.

    :param spec: what to run.
    :param engine: the engine connection.
    :param images: resolves each service's image to a present tag.
    :param session: the test run's id; :param worker: the xdist worker id.
    :param name: this instance's name (defaults to the spec's); unique per worker.
    :param ready_timeout: default readiness deadline for services without their own.
    :param detached: mark the stack as meant to outlive this process (``envkit up --detach``).
    :param pooled: started by the warm pool ahead of need (labelled ``envkit.pooled``).
    :param subnets: where the network's subnet is picked should the engine's default
        address pools be used up (``ENVKIT_SUBNETS``).
    """

    def __init__(
        self,
        spec: StackSpec,
        *,
        engine: Engine,
        images: ImageResolver,
        session: str,
        worker: str,
        name: str | None = None,
        ready_timeout: float = 60.0,
        detached: bool = False,
        pooled: bool = False,
        subnets: tuple[IPv4Network, ...] = DEFAULT_SUBNETS,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self._images = images
        self.ownership = labels.Ownership(
            session=session,
            worker=worker,
            stack=f"{session}-{worker}-{name or spec.name}",
            owner=labels.owner_id(),
            created=labels.utc_now(),
            detached=detached,
            owner_start=labels.process_start(os.getpid()),
            pooled=pooled,
        )
        self._ready_timeout = ready_timeout
        self._subnets = subnets
        self._handles: dict[str, ServiceHandle] = {}
        self._state = StackState.NEW
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        #: Services behind a degrading proxy (``degrade``), by name.
        self._degraded: dict[str, _proxy.Degradation] = {}
        #: Left running after a failed test (``keep``): the plugin does not take it down.
        self.kept = False

    def __repr__(self) -> str:
        names = [s.name for s in self.spec.services]
        return f"<Stack {self.id} {self._state.value} services={names}>"

    @property
    def id(self) -> str:
        """The identifier ``envkit down`` and ``envkit ps`` use; unique on the engine."""
        return self.ownership.stack

    @property
    def network(self) -> str:
        """Name of the stack's private bridge network."""
        return network_name(self.id)

    @property
    def state(self) -> StackState:
        """The stack's lifecycle state."""
        return self._state

    def __enter__(self) -> Stack:
        return self.up()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def up(self) -> Stack:
        """Create the network, start services (independent ones concurrently), wait ready.

        :raises StackStateError: if the stack was already started.
        :raises EnvkitError: the first real failure; everything made so far is removed.
        """
        with self._lock:
            if self._state is not StackState.NEW:
                raise StackStateError(
                    f"stack {self.id} is {self._state.value}; up() runs once per Stack",
                    fix="create a new Stack (or use the envkit_stack_factory fixture) "
                    "for another instance",
                )
            self._state = StackState.STARTING
        if not self.ownership.detached:
            # Before anything exists, so a SIGKILL at any later point is covered.
            _watchdog.ensure(self.ownership.owner, docker_host=self.engine.docker_host,
                             environ=self.engine.environ)
        try:
            if not self.engine.remote:
                for svc in self.spec.services:
                    check_devices(svc)
                    check_host_paths(svc)
            # One image inspect per distinct image at most: the builder remembers tags it
            # saw present (a create that meets a removed one calls back, see reimage).
            tags = {svc.name: self._images.resolve(svc.image) for svc in self.spec.services}
            if self._cancel.is_set():
                raise Cancelled(f"stack {self.id} not started: its start was called off")
            # Nothing exists before the network does, and a taken id is someone else's
            # stack: a failure up to here must not tear anything down.
            self._create_network()
        except BaseException:
            self._state = StackState.DOWN
            raise
        try:
            self._create_volumes()
            self._start_services(tags)
        except BaseException as failure:
            self._cleanup_after(failure)
            raise
        self._state = StackState.UP
        return self

    def cancel(self) -> None:
        """Call off an ``up()`` running on another thread; no effect on a stack already up.

        The warm pool stops a spare's start this way when the run ends or is interrupted:
        ``up()`` then stops waiting, removes what it made and raises
        :class:`~envkit.readiness.Cancelled`, in about the time of a teardown rather than
        that of a start followed by one.
        """
        self._cancel.set()

    def _cleanup_after(self, failure: BaseException) -> None:
        """Tear down after a failed ``up()`` without hiding why it failed."""
        try:
            self.down()
        except Exception as cleanup:
            note = f"envkit: removing stack {self.id} after this failure also failed: {cleanup}"
            if hasattr(failure, "add_note"):  # Python 3.11+
                failure.add_note(note)

    def down(self) -> None:
        """Remove every container, volume and network labelled with this stack; idempotent.

        The stack counts as down only once teardown succeeded, so a failed ``down()`` can
        be called again.
        """
        with self._lock:
            if self._state is StackState.DOWN:
                return
        teardown(self.engine, self.id, stop_timeouts={
            svc.name: svc.stop_timeout for svc in self.spec.services
        })
        with self._lock:
            self._state = StackState.DOWN
            self._handles.clear()

    def _create_network(self) -> None:
        try:
            _subnets.create_network(self.engine, self.network, ranges=self._subnets,
                                    labels=self.ownership.stack_labels())
        except EngineError as exc:
            if getattr(exc.__cause__, "status_code", None) != 409:
                raise
            if self._network_is_ours():
                return  # made by an attempt whose answer was lost
            raise StackStateError(
                f"a stack {self.id} already exists on this engine",
                fix="give this instance another name, use another ENVKIT_SESSION per "
                f"concurrent run, or remove the other with `envkit down {self.id}`",
            ) from None

    def _network_is_ours(self) -> bool:
        """Whether the network in the way is this stack's own, made by an earlier attempt.

        When the engine's answer to a create is lost (a reset connection), the retry finds
        the network made: its labels, down to the owner and the creation time, say so.
        """
        try:
            found = _engine.call(f"inspect network {self.network}",
                                 lambda: self.engine.client.networks.get(self.network))
        except EngineError:
            return False
        return bool(found.attrs.get("Labels") == self.ownership.stack_labels())

    def volume(self, name: str) -> str:
        """The engine's name for the stack's volume *name* (``<network>-<name>``)."""
        return f"{self.network}-{name}"

    def _create_volumes(self) -> None:
        # Labelled like the network, so teardown and the reaper remove them with the stack.
        for name in self.spec.volumes:
            _engine.call(f"create volume {self.volume(name)}", partial(
                self.engine.client.volumes.create, name=self.volume(name), driver="local",
                labels=self.ownership.stack_labels(),
            ))

    def _start_services(self, tags: dict[str, str]) -> None:
        """Start every service on its own thread; the first failure cancels the others.

        A dependent waits for each dependency as its condition says: the container made
        (``started``), its readiness checks passed (``healthy``) or it exited 0
        (``completed``). The threads are always joined before returning, also on Ctrl-C,
        so teardown never races a thread that is still creating a container.
        """
        futures: dict[str, Future[ServiceHandle]] = {}
        started: dict[str, Future[ServiceHandle]] = {s.name: Future() for s in self.spec.services}
        exits = StackExits(api=self.engine.client.api, stack=self.id, since=time.time())
        pool = ThreadPoolExecutor(max_workers=len(self.spec.services),
                                  thread_name_prefix=f"envkit-{self.spec.name}")
        try:
            for svc in self.spec.start_order():
                deps = {d: (started if svc.condition(d) == "started" else futures)[d]
                        for d in svc.depends_on}
                futures[svc.name] = pool.submit(self._start_one, svc, tags[svc.name], deps,
                                                started[svc.name], exits)
            _, pending = wait(futures.values(), return_when=FIRST_EXCEPTION)
            if pending:  # one failed: the stack is lost, stop the others' waits early
                self._cancel.set()
        except BaseException:
            self._cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            exits.close()
        errors = [f.exception() for f in futures.values() if not f.cancelled() and f.exception()]
        root = [e for e in errors if not isinstance(e, _DependencyFailed | Cancelled)]
        if errors:
            raise (root or errors)[0]  # type: ignore[misc]

    def _start_one(
        self, svc: ServiceSpec, tag: str, deps: Mapping[str, Future[ServiceHandle]],
        started: Future[ServiceHandle], exits: StackExits,
    ) -> ServiceHandle:
        try:
            for name, dep in deps.items():
                if self._outcome(svc, dep) is not None:
                    raise _DependencyFailed(
                        f"service {svc.name!r} not started: its dependency {name!r} failed")
                if svc.condition(name) == "completed":
                    self._await_exit(self.spec.service(name), svc.name)
            if self._cancel.is_set():
                raise Cancelled(f"service {svc.name!r} not started: the stack is being torn down")
            handle = create_service(
                engine=self.engine, spec=svc, image=tag, network=self.network,
                labels=self.ownership.service_labels(svc.name, svc.labels),
                container_name=f"{self.network}-{svc.name}",
                volumes={m.source: self.volume(m.source) for m in svc.mounts if m.is_volume},
                reimage=partial(self._images.resolve, svc.image, recheck=True),
            )
        except BaseException as exc:
            started.set_exception(exc)
            raise
        with self._lock:
            self._handles[svc.name] = handle
        started.set_result(handle)
        wait_ready(handle, svc.ready, timeout=svc.ready_timeout or self._ready_timeout,
                   cancelled=self._cancel.is_set, fresh=True,  # inspected after its start
                   exited=partial(exits.exited, str(handle.container.id)))
        return handle

    def _outcome(self, svc: ServiceSpec, dep: Future[ServiceHandle]) -> BaseException | None:
        """Wait for *dep*; its exception, if any. A cancelled stack stops the wait."""
        while True:
            if self._cancel.is_set():
                raise Cancelled(f"service {svc.name!r} not started: the stack is being torn down")
            try:
                return dep.exception(timeout=0.1)
            except FutureTimeout:
                continue

    def _await_exit(self, dep: ServiceSpec, dependent: str) -> None:
        """Wait until *dep*'s container exits, and fail unless it exited 0 (``completed``)."""
        await_completion(self._handles[dep.name], dependent=dependent,
                         timeout=dep.ready_timeout or self._ready_timeout,
                         cancelled=self._cancel.is_set)

    def _handle(self, service: str) -> ServiceHandle:
        if self._state is not StackState.UP:
            raise StackStateError(f"stack {self.id} is {self._state.value}, not up",
                                  fix="call up() first (or use the stack as a context manager)")
        try:
            return self._handles[service]
        except KeyError:
            raise NameNotFoundError(
                f"stack {self.id} has no service {service!r} "
                f"(services: {', '.join(sorted(self._handles))})",
                fix="use one of those names") from None

    def endpoint(self, service: str, port: int | str) -> tuple[str, int]:
        """Host and ephemeral host port at which *service*'s container *port* is published.

        While the port is degraded (:meth:`degrade`), the proxy's endpoint in front of it.
        """
        handle = self._handle(service)
        return _proxy.routed(self._degraded, service, port) or handle.host_endpoint(port)

    def url(
        self, service: str, port: int | str, scheme: str = "http", path: str = ""
    ) -> str:
        """A URL for *service*'s published *port*, e.g. ``http://127.0.0.1:49153/health``."""
        host, host_port = self.endpoint(service, port)
        if path and not path.startswith("/"):
            path = "/" + path
        return f"{scheme}://{host}:{host_port}{path}"

    def container(self, service: str) -> Container:
        """The docker SDK container of *service*, for exec, logs or fault injection."""
        return self._handle(service).container

    def ports(self, service: str) -> dict[str, str]:
        """Published ports of *service* as ``{"8554/tcp": "127.0.0.1:49153"}``."""
        return self._handle(service).port_map()

    def copy_to(self, service: str, src: str | os.PathLike[str], dst: str) -> None:
        """Copy the host file or directory *src* into *service*'s container at *dst*.

        *dst* is the path the copy gets (its parent must exist), or, ending in ``/``, the
        directory that receives it under its own name.

        :raises EnvkitError: when *src* or the container directory is absent, with the fix.
        """
        self._handle(service).copy_to(Path(src), dst)

    def copy_from(self, service: str, src: str, dst: str | os.PathLike[str]) -> Path:
        """Copy *service*'s container file or directory *src* to the host; return its path.

        *dst* is the path the copy gets, or an existing directory that receives it under
        its own name.

        :raises EnvkitError: when *src* is absent in the container, with the fix.
        """
        return self._handle(service).copy_from(src, Path(dst))

    def restart(self, service: str, *, timeout: float = 5.0) -> None:
        """Restart *service*'s container, learn its new host ports and wait until ready.

        :param timeout: seconds between SIGTERM and SIGKILL.
        """
        handle = self._handle(service)
        spec = self.spec.service(service)
        _engine.call(f"restart {service}",
                     lambda: handle.container.restart(timeout=max(round(timeout), 1)))
        handle.refresh()
        wait_ready(handle, spec.ready, timeout=spec.ready_timeout or self._ready_timeout)

    def describe(self) -> dict[str, Any]:
        """The stack as a JSON-ready document (what ``envkit up --json`` prints)."""
        return {
            "stack": self.id,
            "network": self.network,
            "services": {
                name: {
                    "container": handle.container.id,
                    "image": handle.image,
                    "ports": handle.port_map(),
                }
                for name, handle in self._handles.items()
            },
        }

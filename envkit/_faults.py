"""Faults on a running stack, each one call: stop, start, kill, pause, disconnect, outage...

A mixin of :class:`envkit.runtime.Stack`, kept apart so the runtime module stays about a
stack's lifecycle. Every fault acts on the service's one container, through envkit's engine
connection, and leaves the stack's bookkeeping right: host ports are read again whenever
Docker may have changed them (a start, a reconnect), so ``stack.endpoint`` and
``stack.url`` keep pointing at the service.

What each fault costs and means is in the README ("Faults"); in short: ``stop``/``kill``
end the process (its published ports close), ``pause`` freezes it (connections stay open
and time out), ``disconnect`` takes the container off the stack's network (peers cannot
resolve or reach it, and its published ports go with the network endpoint).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from envkit import _engine, _proxy, labels
from envkit.errors import StackStateError
from envkit.readiness import wait_ready

if TYPE_CHECKING:
    from envkit._containers import ServiceHandle
    from envkit._engine import Engine
    from envkit.labels import Ownership
    from envkit.runtime import ImageResolver, Stack
    from envkit.spec import StackSpec


@dataclass(frozen=True, kw_only=True)
class ExecResult:
    """What :meth:`Faults.exec` returns: the exit code and the combined output.

    :param exit_code: the command's exit status.
    :param output: stdout and stderr, decoded as UTF-8 (undecodable bytes replaced).
    """

    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        """Whether the command exited 0."""
        return self.exit_code == 0


class Faults:
    """Fault injection and service control on a running stack (mixed into ``Stack``)."""

    spec: StackSpec
    engine: Engine
    ownership: Ownership
    _handles: dict[str, ServiceHandle]
    _images: ImageResolver
    _degraded: dict[str, _proxy.Degradation]
    kept: bool
    _ready_timeout: float
    _lock: threading.Lock

    if TYPE_CHECKING:
        @property
        def id(self) -> str: ...

        @property
        def network(self) -> str: ...

        def _handle(self, service: str) -> ServiceHandle: ...

    def wait_ready(self, service: str, *, timeout: float | None = None) -> None:
        """Wait until *service*'s readiness checks pass again (after a fault, say).

        :param timeout: seconds; the service's own ``ready_timeout`` (or the stack's
            default) when not given.
        :raises ReadinessTimeoutError: when they do not pass in time, or the container exits.
        """
        handle = self._handle(service)
        spec = self.spec.service(service)
        handle.refresh()  # the checks probe host ports, which a start may have changed
        wait_ready(handle, spec.ready,
                   timeout=timeout or spec.ready_timeout or self._ready_timeout)

    def stop(self, service: str, *, timeout: float = 5.0) -> None:
        """Stop *service* (SIGTERM, then SIGKILL after *timeout* seconds); peers see it gone.

        Its endpoints keep the old host ports until :meth:`start`, so a client keeps
        dialling the same address and is refused, as it would be by a crashed service.
        """
        handle = self._handle(service)
        _engine.call(f"stop {service}",
                     lambda: handle.container.stop(timeout=max(round(timeout), 0)))
        handle.state()  # reloads: stack.container(service).status says "exited" now

    def start(self, service: str, *, wait: bool = True, timeout: float | None = None) -> None:
        """Start a stopped or killed *service* again, learn its new host ports, wait ready.

        :param wait: wait for its readiness checks (the default).
        :raises ReadinessTimeoutError: when it does not get ready in time.
        """
        handle = self._handle(service)
        _engine.call(f"start {service}", handle.container.start)
        handle.refresh()
        if wait:
            self.wait_ready(service, timeout=timeout)

    def kill(self, service: str, signal: str | int = "SIGKILL") -> None:
        """Send *signal* to *service*'s process (``SIGKILL`` by default: a crash).

        With ``SIGKILL`` the container has exited when this returns; other signals are
        delivered and the service does what it does with them.
        """
        handle = self._handle(service)
        _engine.call(f"kill {service} with {signal}", lambda: handle.container.kill(signal))
        if signal in ("SIGKILL", "KILL", 9):
            self._await_status(handle, {"exited", "dead"}, action=f"kill {service}")
        else:
            handle.state()

    def pause(self, service: str) -> None:
        """Freeze *service*'s processes (cgroup freezer): it holds connections, answers nothing."""
        handle = self._handle(service)
        _engine.call(f"pause {service}", handle.container.pause)
        handle.state()

    def unpause(self, service: str) -> None:
        """Thaw a paused *service*; what it was doing resumes where it stopped."""
        handle = self._handle(service)
        _engine.call(f"unpause {service}", handle.container.unpause)
        handle.state()

    def disconnect(self, service: str) -> None:
        """Cut *service* off the stack's network: peers can neither resolve nor reach it.

        The process keeps running. Its published host ports go with the network endpoint.
        """
        handle = self._handle(service)
        network = self.engine.client.networks.get(self.network)
        _engine.call(f"disconnect {service} from {self.network}",
                     lambda: network.disconnect(handle.container, force=True))

    def reconnect(self, service: str, *, wait: bool = True) -> None:
        """Put *service* back on the stack's network under its name and aliases.

        Docker publishes its ports anew (usually on other host ports); they are read again.

        :param wait: wait for its readiness checks (the default).
        """
        handle = self._handle(service)
        spec = self.spec.service(service)
        network = self.engine.client.networks.get(self.network)
        _engine.call(f"reconnect {service} to {self.network}", lambda: network.connect(
            handle.container, aliases=[spec.name, *spec.aliases]))
        handle.refresh()
        if wait:
            self.wait_ready(service)

    @contextmanager
    def outage(
        self, service: str, *, how: Literal["stop", "kill", "pause", "disconnect"] = "stop",
    ) -> Iterator[None]:
        """*service* is down inside the block, and back and ready after it.

        ``with stack.outage("mediamtx"): ...`` asserts what dependents do without it.

        :param how: ``stop`` (SIGTERM), ``kill`` (SIGKILL, a crash), ``pause`` (frozen,
            connections hang) or ``disconnect`` (off the network, still running).
        """
        undo = {"stop": self.start, "kill": self.start, "pause": self._unpause_ready,
                "disconnect": self.reconnect}[how]
        {"stop": self.stop, "kill": self.kill, "pause": self.pause,
         "disconnect": self.disconnect}[how](service)
        try:
            yield
        finally:
            undo(service)

    def _unpause_ready(self, service: str) -> None:
        self.unpause(service)
        self.wait_ready(service)

    def exec(
        self, service: str, command: Sequence[str] | str, *, user: str | None = None,
        environment: dict[str, str] | None = None, workdir: str | None = None,
    ) -> ExecResult:
        """Run *command* in *service*'s container and return its exit code and output.

        A string is run by ``sh -c``; a sequence as it is.
        """
        handle = self._handle(service)
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        result = _engine.call(f"exec in {service}", lambda: handle.container.exec_run(
            argv, user=user or "", environment=environment, workdir=workdir), attempts=1)
        return ExecResult(exit_code=int(result.exit_code),
                          output=bytes(result.output or b"").decode("utf-8", "replace"))

    def logs(
        self, service: str, *, since: datetime | float | None = None, tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        """*service*'s stdout and stderr, all of it or what was written since *since*.

        :param since: a datetime, or a UNIX time in seconds (``time.time()`` taken before
            a fault gives exactly what the service said about it).
        :param tail: only the last *tail* lines.
        """
        handle = self._handle(service)
        raw = _engine.call(f"read logs of {service}", lambda: handle.container.logs(
            since=since, tail="all" if tail is None else tail, timestamps=timestamps))
        return bytes(raw).decode("utf-8", "replace")

    def degrade(
        self, service: str, port: int | str, *, latency: float = 0.0, jitter: float = 0.0,
        bandwidth: float | None = None, reset_after: float | None = None,
        takeover: bool = True,
    ) -> _proxy.Degradation:
        """Put a TCP proxy between *service*'s *port* and its clients, and impair it there.

        ``with stack.degrade("api", 8080, latency=0.2): ...``; or keep the returned
        :class:`~envkit._proxy.Degradation` and call ``undo()``. Host clients reach the
        proxy through ``stack.endpoint``/``stack.url``; with *takeover* the proxy also
        takes the service's name on the stack's network, so its peers go through it too.

        :param latency: seconds added in each direction; :param jitter: up to this much more.
        :param bandwidth: bytes per second per connection and direction.
        :param reset_after: reset (RST) every connection this many seconds after it opened.
        :raises NameNotFoundError: when *service* does not publish *port*.
        :raises StackStateError: when *service* is degraded already.
        """
        impairment = _proxy.Impairment(latency=latency, jitter=jitter, bandwidth=bandwidth,
                                       reset_after=reset_after)
        return _proxy.degrade(self._self(), service, port, impairment=impairment,
                              takeover=takeover)

    def keep(self) -> None:
        """Leave this stack running after its owner ends, until ``envkit down <id>``.

        Labels cannot change on existing containers, so a marker volume carrying the
        stack's labels and ``envkit.kept=true`` says so; the reaper, the watchdog and the
        leak check read the stack's labels from all its resources, see it and spare the
        stack, and ``envkit down`` removes the marker with the rest (same stack label).
        """
        marker = {**self.ownership.stack_labels(), labels.KEPT: "true"}
        # "--" cannot end a spec volume's name (<network>-<name>, the name starting with a
        # letter or digit), so the marker never meets a volume of the stack's own.
        made = _engine.call(f"mark stack {self.id} as kept", lambda: self.engine.client.volumes
                            .create(name=f"{self.network}--kept", driver="local",
                                    labels=marker))
        if (made.attrs.get("Labels") or {}).get(labels.KEPT) != "true":
            # Docker answers an existing name with that volume, labels and all, unchanged.
            raise StackStateError(f"stack {self.id} could not be marked as kept: volume "
                                  f"{made.name} exists without the mark",
                                  fix=f"remove it (`docker volume rm {made.name}`) and retry")
        self.kept = True

    def _self(self) -> Stack:
        from envkit.runtime import Stack  # noqa: PLC0415 - runtime imports this module

        assert isinstance(self, Stack)  # the mixin's only host
        return self

    def _await_status(
        self, handle: ServiceHandle, wanted: set[str], *, action: str, timeout: float = 10.0,
    ) -> None:
        """Poll the container until its status is one of *wanted*."""
        deadline = time.monotonic() + timeout
        while (status := handle.state().status) not in wanted:
            if time.monotonic() > deadline:
                raise StackStateError(
                    f"{action}: the container is still {status} after {timeout:g}s",
                    fix="check the engine (`docker ps`); the container may be stuck")
            time.sleep(0.02)


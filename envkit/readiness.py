"""Readiness checks and the one deadline loop that runs them.

A check is a small frozen object with a ``probe`` that raises :class:`NotReady` until
the service answers (the shape of testcontainers' wait strategies). Unlike those, all of
a service's checks share one deadline, and the loop looks at the container between
attempts, so a service that exits is reported at once with its exit code and logs
instead of after the whole timeout.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay

from envkit import _checkargs, _exits
from envkit._netstat import PROC_NET_TCP, host_view, listeners
from envkit._privileges import redact
from envkit.errors import EnvkitError, ReadinessTimeoutError

LOG_TAIL_LINES = 30
BODY_LIMIT = 64 * 1024
EXEC_LIMIT = 10.0  # seconds one Exec probe may run


class NotReady(Exception):
    """Raised by a probe while its service is not ready yet; the loop retries."""


class Cancelled(Exception):
    """The wait was called off: another service of the stack failed, or Ctrl-C."""


@dataclass(frozen=True)
class ContainerState:
    """The part of a container's state that tells whether waiting still makes sense."""

    status: str
    exit_code: int | None = None
    oom_killed: bool = False
    health: str | None = None

    @property
    def running(self) -> bool:
        """Whether the process is alive (``created`` counts: it is about to start)."""
        return self.status in {"created", "running", "restarting"}


class Target(Protocol):
    """What a probe may ask of the service it checks; runtime's handle implements it."""

    @property
    def service(self) -> str: ...

    def host_endpoint(self, port: int | str) -> tuple[str, int]: ...

    def state(self) -> ContainerState: ...

    def logs(self) -> str: ...

    def exec(self, command: Sequence[str]) -> tuple[int, str]: ...

    #: The service's secret-looking environment values, which no probe's message quotes.
    secrets: frozenset[str]


class Check(Protocol):
    """A readiness probe: ``probe`` returns when ready and raises :class:`NotReady` if not."""

    def describe(self) -> str: ...

    def probe(self, target: Target) -> None: ...


@dataclass(frozen=True)
class Tcp:
    """Ready when the service itself listens on *port* and its published port connects.

    Connecting to the published port alone proves nothing: docker-proxy accepts on the
    host port whatever the container does and closes the connection when the service
    refuses it, and on a loaded machine that EOF comes later than any sensible wait. So
    the probe has three steps, cheapest first:

    1. connect to the published port: refused, or closed within *settle* seconds, is not
       ready (most failed probes end here without asking the engine anything);
    2. read the listening sockets of the container's own network namespace (from this
       host's ``/proc`` when the engine runs here, which costs nothing and so comes first;
       else one exec of ``cat /proc/net/tcp /proc/net/tcp6``, only when step 1 passed):
       the port must be listened on at an address other than loopback. Listening only on
       ``127.0.0.1``/``::1`` inside the container is not ready: neither the published
       port nor the stack's other services can ever reach it (the error says so);
    3. an image without ``cat`` or ``/proc`` (scratch, distroless) cannot show its
       sockets: then the published connection must stay open :data:`FALLBACK_SETTLE`
       seconds instead, the old heuristic, which a very loaded machine can still fool
       (prefer :class:`LogLine` or :class:`Http` for such images).

    :class:`Http` needs no such care: docker-proxy cannot fake an HTTP answer.
    """

    port: int | str
    settle: float = 0.05

    def __post_init__(self) -> None:
        _checkargs.tcp_port("Tcp", self.port)
        _checkargs.seconds("Tcp", "settle", self.settle, _checkargs.MAX_SETTLE)

    def describe(self) -> str:
        return f"Tcp({self.port})"

    def probe(self, target: Target) -> None:
        host, port = target.host_endpoint(self.port)
        inside = int(str(self.port).partition("/")[0])
        view = host_view(target, tables=("tcp",))
        if view is not None:  # the engine runs here: looking is cheap, look first
            found = listeners(view, inside) or set()
            if all(ipaddress.ip_address(a).is_loopback for a in found):  # tcp6 may tell
                found |= listeners(host_view(target, tables=("tcp6",)) or "", inside) or set()
            _judge(found, host, port, inside)
            _connect_and_hold(host, port, 0.0)  # and the published port is bound
            return
        _connect_and_hold(host, port, self.settle)
        _, output = _bounded_exec(target, PROC_NET_TCP)
        seen = listeners(output, inside)
        if seen is None:  # no cat or no /proc in the image: the published port must do
            _connect_and_hold(host, port, FALLBACK_SETTLE)
            return
        _judge(seen, host, port, inside)


#: Seconds the published connection must stay open when the image cannot show its sockets.
FALLBACK_SETTLE = 0.25


def _judge(found: set[str], host: str, port: int, inside: int) -> None:
    if not found:
        raise NotReady(f"{host}:{port} accepts (docker-proxy) but nothing listens on "
                       f"port {inside} inside the container")
    if all(ipaddress.ip_address(a).is_loopback for a in found):
        raise NotReady(
            f"port {inside} is listened on only at {', '.join(sorted(found))} inside the "
            "container: the published port and other services cannot reach it; make "
            "the service listen on 0.0.0.0")


def _connect_and_hold(host: str, port: int, settle: float) -> None:
    """Connect to *host*:*port*; not ready if refused or closed within *settle* seconds."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(settle)
            try:
                if sock.recv(1, socket.MSG_PEEK) == b"":
                    raise NotReady(f"{host}:{port} closed the connection at once")
            except (TimeoutError, BlockingIOError):  # nothing came (settle 0: non-blocking)
                return
    except OSError as exc:
        raise NotReady(f"connect to {host}:{port}: {exc}") from exc


def _bounded_exec(target: Target, command: Sequence[str]) -> tuple[int, str]:
    """Run *command* in the target, giving up after :data:`EXEC_LIMIT` seconds.

    docker-py's exec has no timeout, and a blocked command must not hold the deadline
    (or a cancelled stack) hostage: it runs on a daemon thread. An engine error (the
    container stopped meanwhile) is not ready: the loop's next inspect tells an exit.
    """
    outcome: list[tuple[int, str]] = []
    failure: list[EnvkitError] = []

    def run() -> None:
        try:
            outcome.append(target.exec(command))
        except EnvkitError as exc:
            failure.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(EXEC_LIMIT)
    if failure:
        raise NotReady(f"exec {' '.join(command)!r}: {failure[0].message}")
    if not outcome:
        raise NotReady(f"exec {' '.join(command)!r} did not finish within {EXEC_LIMIT:g}s")
    return outcome[0]


@dataclass(frozen=True)
class Http:
    """Ready when ``GET path`` on the published *port* answers *status*.

    :param body: optional predicate on the decoded body, for services that answer 200
        before they are really up.
    """

    port: int | str
    path: str = "/"
    status: int = 200
    body: Callable[[str], bool] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _checkargs.tcp_port("Http", self.port)
        _checkargs.http_path(self.path)
        _checkargs.http_status(self.status)
        _checkargs.http_body(self.body)

    def describe(self) -> str:
        return f"Http({self.port}, {self.path!r}, status={self.status})"

    def probe(self, target: Target) -> None:
        host, port = target.host_endpoint(self.port)
        conn = http.client.HTTPConnection(host, port, timeout=2.0)
        try:
            conn.request("GET", self.path)
            response = conn.getresponse()
            # Bounded: a streaming endpoint must not keep the probe reading forever.
            text = response.read(BODY_LIMIT).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            raise NotReady(f"GET {self.path} on {host}:{port}: {exc!r}") from exc
        finally:
            conn.close()
        if response.status != self.status:
            raise NotReady(f"GET {self.path} answered {response.status}, not {self.status}")
        if self.body is not None and not self.body(text):
            # Quoted in ReadinessTimeoutError, hence CI logs: no secret a service echoes.
            # Cut before the 200 characters are taken, so no part of a secret slips out.
            shown = redact(text, target.secrets)[:200]
            raise NotReady(f"GET {self.path} body did not satisfy the predicate: {shown!r}")


@dataclass(frozen=True)
class LogLine:
    """Ready when the container's output has a line matching the regex *pattern*."""

    pattern: str

    def __post_init__(self) -> None:
        _checkargs.pattern(self.pattern)

    def describe(self) -> str:
        return f"LogLine({self.pattern!r})"

    def probe(self, target: Target) -> None:
        if re.search(self.pattern, target.logs(), re.MULTILINE) is None:
            raise NotReady(f"no log line matches {self.pattern!r} yet")


@dataclass(frozen=True)
class Healthy:
    """Ready when Docker's own HEALTHCHECK reports ``healthy``."""

    def describe(self) -> str:
        return "Healthy()"

    def probe(self, target: Target) -> None:
        health = target.state().health
        if health is None:
            raise NotReady("the image defines no HEALTHCHECK")
        if health != "healthy":
            raise NotReady(f"health status is {health!r}")


@dataclass(frozen=True)
class Exec:
    """Ready when *command*, run inside the container, exits 0."""

    command: tuple[str, ...]

    def __post_init__(self) -> None:
        # A list is as good as a tuple; a string is refused (a shell line or one program?).
        object.__setattr__(self, "command", _checkargs.command(self.command))

    def describe(self) -> str:
        return f"Exec({' '.join(self.command)!r})"

    def probe(self, target: Target) -> None:
        code, output = _bounded_exec(target, self.command)
        if code != 0:
            raise NotReady(f"exited {code}: {output.strip()[-200:]}")


class _Exited(Exception):
    """The container stopped: waiting longer cannot help."""


def wait_ready(
    target: Target, checks: Sequence[Check], *, timeout: float,
    cancelled: Callable[[], bool] = lambda: False, fresh: bool = False,
    exited: Callable[[], bool | None] | None = None,
) -> None:
    """Run *checks* in order under one deadline of *timeout* seconds.

    :param cancelled: polled before every attempt; when it turns true the wait stops.
    :param fresh: the target's container was inspected just now (as after its start):
        if that showed it running, failed probes in the next :data:`INSPECT_EVERY`
        seconds do not inspect it again (one engine request saved per service).
    :param exited: whether the container died (``None``: not known), answered without an
        engine request (:class:`envkit._exits.StackExits`); while it says no, failed
        probes do not inspect the container, and once it says yes the next one does.
    :raises ReadinessTimeoutError: when the deadline passes or the container exits;
        it carries the failing check, the container state and the log tail.
    :raises Cancelled: when *cancelled* turned true.
    """
    began = time.monotonic()
    deadline = began + timeout
    container = getattr(target, "container", None)
    seen_running = began if fresh and _exits.cached_running(container) else None
    for check in checks:
        attempt = _attempt(target, check, cancelled, seen_running, exited)
        try:
            for retry in Retrying(
                stop=stop_after_delay(max(deadline - time.monotonic(), 0.0)),
                wait=poll_interval,
                retry=retry_if_exception_type(NotReady),
                reraise=True,
            ):
                with retry:
                    attempt()
        except (NotReady, _Exited) as exc:
            raise _timeout_error(target, check, timeout, str(exc),
                                 waited=time.monotonic() - began) from None


def poll_interval(retry_state: RetryCallState) -> float:
    """Seconds before the next probe: close polling while most services come up.

    Most services are ready within a couple of seconds, and every 25 ms of polling
    interval is up to 25 ms added to each service on a dependency chain; a service that
    takes longer is polled more gently so as not to load the engine.
    """
    elapsed = retry_state.seconds_since_start or 0.0
    if elapsed < 2.0:
        return 0.025
    return 0.1 if elapsed < 10.0 else 0.25


#: Seconds between inspects while probes fail: how late an exited container is seen.
INSPECT_EVERY = 0.5


def _attempt(
    target: Target, check: Check, cancelled: Callable[[], bool], seen_running: float | None,
    exited: Callable[[], bool | None] | None,
) -> Callable[[], None]:
    last_inspect = [-INSPECT_EVERY if seen_running is None else seen_running]
    watching = [False]  # *exited* answered once: ask it at every failure from then on

    def run() -> None:
        if cancelled():
            raise Cancelled(f"wait for {target.service} called off")
        try:
            check.probe(target)
        except (NotReady, KeyError) as exc:
            # Only failed probes pay for an inspect, at most twice a second, or when the
            # engine announced an exit: an exited container (which also loses its port
            # bindings) ends the wait at once.
            now = time.monotonic()
            due = now - last_inspect[0] >= INSPECT_EVERY
            if isinstance(exc, NotReady) and exited is not None and (due or watching[0]):
                known = exited()
                watching[0] = known is not None
                if known is False:
                    raise
                due = due or bool(known)
            if due or not isinstance(exc, NotReady):
                last_inspect[0] = now
                state = target.state()
                if not state.running:
                    raise _Exited(
                        f"container is {state.status} (exit code {state.exit_code})"
                    ) from None
            raise

    return run


def _timeout_error(
    target: Target, check: Check, timeout: float, last: str, *, waited: float,
) -> ReadinessTimeoutError:
    try:
        state = target.state()
        tail = target.logs().splitlines()[-LOG_TAIL_LINES:]
    except EnvkitError as exc:  # the report must not be lost to a failing inspect
        state, tail = ContainerState("unknown"), [f"(could not read: {exc.message})"]
    # Runtime's handle has a container, just inspected by state(): its own clock.
    ran = None if state.running else (_exits.lifetime(getattr(target, "container", None))
                                      or waited)
    return ReadinessTimeoutError(
        ran_for=ran,
        service=target.service,
        check=check.describe(),
        timeout=timeout,
        last_error=last,
        state=state.status,
        exit_code=None if state.running else state.exit_code,
        oom_killed=state.oom_killed,
        log_tail=tail,
    )

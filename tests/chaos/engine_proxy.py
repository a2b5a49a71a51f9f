"""A misbehaving Docker engine for tests: a unix-socket proxy that injects faults.

It sits in front of the real engine's socket (``DOCKER_HOST=unix://<proxy.path>``) and
forwards every HTTP request, one request per upstream connection, except when a
:class:`Rule` picks it for a fault:

``reset``       the connection is cut before the request reaches the engine;
``drop``        the engine does the work, then the connection is cut before the answer
                (the client cannot know whether a create happened);
``error``       an HTTP 5xx answer with a JSON body, as dockerd sends on its own failures;
``slow``        the request is held for ``delay`` seconds, then forwarded;
``restart``     a daemon restart: every open connection is cut and new ones are refused
                for ``delay`` seconds.

Decisions come from one seeded :class:`random.Random`, so a scenario is reproducible as
far as the order of its requests is. The proxy counts what it sees per endpoint
(``POST /containers/{id}/start``) and per exact request, so a test can bound retries.

Why one request per upstream connection: the proxy rewrites ``Connection: close`` into
each request (except protocol upgrades: exec and attach), so it never has to find where
one answer ends and the next request begins; docker-py's pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("reset", "drop", "error", "slow", "restart")

#: Collections whose second path segment is an object's id or name.
_COLLECTIONS = {"containers", "networks", "volumes", "images", "exec", "plugins"}
_VERBS = {"create", "json", "prune", "load", "get", "search"}


def endpoint_of(target: str) -> str:
    """``/v1.41/containers/abc/start?x=1`` -> ``/containers/{id}/start``."""
    path = target.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if parts and re.fullmatch(r"v\d+\.\d+", parts[0]):
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] in _COLLECTIONS and parts[1] not in _VERBS:
        if parts[0] == "images":  # image names contain slashes: keep only the verb
            parts = [parts[0], "{id}", parts[-1]] if parts[-1] in {"json", "tag"} else [
                parts[0], "{id}"]
        else:
            parts = [parts[0], "{id}", *parts[2:]]
    return "/" + "/".join(parts)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """When to inject one kind of fault.

    :param kind: one of :data:`KINDS`.
    :param method: the HTTP method it applies to; ``None`` for any.
    :param endpoint: a regular expression matched in full against :func:`endpoint_of`.
    :param probability: chance that a matching request is picked.
    :param skip: matching requests let through before the rule may fire.
    :param times: how many faults the rule injects at most; ``None`` for no limit.
    :param status: the status of ``error`` answers.
    :param delay: seconds a ``slow`` request is held, or a ``restart`` refuses connections.
    """

    kind: str
    method: str | None = None
    endpoint: str = ".*"
    probability: float = 1.0
    skip: int = 0
    times: int | None = None
    status: int = 500
    delay: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {KINDS}")

    def matches(self, method: str, endpoint: str) -> bool:
        return (self.method is None or self.method == method) and bool(
            re.fullmatch(self.endpoint, endpoint))


@dataclass
class Stats:
    """What the proxy saw and did since the last :meth:`EngineProxy.reset`."""

    #: Requests per ``(method, endpoint)``, faulted or not.
    endpoints: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Requests per ``(method, exact target)``: how often one request was tried.
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Faults injected, per kind.
    faults: Counter[str] = field(default_factory=Counter)
    #: Faults injected, per ``(kind, method, endpoint)``.
    faulted: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: Connections refused while "restarting" (counted by the clients' attempts to connect
    #: cannot be seen; this counts restarts begun).
    restarts: int = 0


class EngineProxy:
    """The proxy, served from its own thread and event loop.

    :param path: where to listen (a unix socket path).
    :param upstream: the real engine's unix socket.
    """

    def __init__(self, path: Path, upstream: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.upstream = upstream
        self.stats = Stats()
        self._rules: list[Rule] = []
        self._fired: Counter[int] = Counter()
        self._matched: Counter[int] = Counter()
        self._random = random.Random(0)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="engine-proxy",
                                        daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._down_until = 0.0

    @property
    def url(self) -> str:
        """What to put in ``DOCKER_HOST``."""
        return f"unix://{self.path}"

    def start(self) -> EngineProxy:
        self._thread.start()
        self._run(self._listen())
        return self

    def close(self) -> None:
        self._run(self._stop_listening(cut=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def reset(self, rules: Iterable[Rule] = (), *, seed: int = 0) -> Stats:
        """Install *rules* (in order: the first that fires wins) and zero the counts.

        :returns: the counts of the scenario that ends here.
        """
        with self._lock:
            done, self.stats = self.stats, Stats()
            self._rules = list(rules)
            self._fired.clear()
            self._matched.clear()
            self._random = random.Random(seed)
        return done

    def wait_until_up(self, timeout: float = 30.0) -> None:
        """Block until a simulated restart is over (teardown after it must reach the engine)."""
        self._run(self._await_up(), timeout=timeout)

    # --- the event loop's side ------------------------------------------------------------

    def _run(self, coro: object, timeout: float = 10.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def _stop_listening(self, *, cut: bool) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if cut:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

    async def _await_up(self) -> None:
        while self._server is None:
            await asyncio.sleep(0.05)

    async def _restart(self, seconds: float) -> None:
        """Cut everything, refuse connections for *seconds* (the socket file stays), listen."""
        await self._stop_listening(cut=True)
        await asyncio.sleep(seconds)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    def _pick(self, method: str, endpoint: str) -> Rule | None:
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not rule.matches(method, endpoint):
                    continue
                self._matched[index] += 1
                if self._matched[index] <= rule.skip:
                    continue
                if rule.times is not None and self._fired[index] >= rule.times:
                    continue
                if self._random.random() < rule.probability:
                    self._fired[index] += 1
                    self.stats.faults[rule.kind] += 1
                    self.stats.faulted[(rule.kind, method, endpoint)] += 1
                    return rule
            return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        graceful = False
        try:
            graceful = await self._one_request(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            if graceful:  # let the answer reach the client before the close
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            else:
                writer.transport.abort()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; whether the connection may close gracefully (else: cut)."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *headers = head.decode("latin-1").split("\r\n")[:-2]
        method, target, _ = request_line.split(" ", 2)
        endpoint = endpoint_of(target)
        with self._lock:
            self.stats.endpoints[(method, endpoint)] += 1
            self.stats.requests[(method, target)] += 1
        rule = self._pick(method, endpoint)
        kind = rule.kind if rule else None
        if rule is not None and kind == "reset":
            return False  # the client sees its connection cut
        if rule is not None and kind == "restart":
            with self._lock:
                self.stats.restarts += 1
            self._loop.create_task(self._restart(rule.delay))
            return False
        if rule is not None and kind == "error":
            await self._answer_error(writer, rule.status, f"{method} {endpoint}")
            return True
        if rule is not None and kind == "slow":
            await asyncio.sleep(rule.delay)
        await self._forward(reader, writer, _rewrite(headers, request_line), drop=kind == "drop")
        return kind != "drop"

    async def _answer_error(self, writer: asyncio.StreamWriter, status: int, what: str) -> None:
        body = json.dumps({"message": f"chaos: injected {status} for {what}"}).encode()
        writer.write(
            f"HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, *,
        drop: bool,
    ) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        self._writers.add(up_writer)
        up_writer.write(head)
        upload = self._loop.create_task(_pump(reader, up_writer))
        try:
            if drop:
                # The engine has answered (so it did the work); the client never hears.
                await up_reader.read(1)
                return
            await _pump(up_reader, writer)
        finally:
            upload.cancel()
            self._writers.discard(up_writer)
            up_writer.transport.abort()


def _rewrite(headers: list[str], request_line: str) -> bytes:
    """The request head with ``Connection: close``, unless it asks for a protocol upgrade."""
    upgrade = any(h.lower().startswith("upgrade:") for h in headers)
    kept = [h for h in headers if upgrade or not h.lower().startswith("connection:")]
    if not upgrade:
        kept.append("Connection: close")
    return ("\r\n".join([request_line, *kept]) + "\r\n\r\n").encode("latin-1")


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()

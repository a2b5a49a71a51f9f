"""Knowing that a stack's container exited without asking the engine again and again.

While a service comes up, the readiness loop must notice at once a container that
exits (it will never be ready; the report wants its exit code, OOM flag and log tail).
Polling its state costs an engine request per service every half second while its
probes fail, which on a loaded engine is most of ``up()``'s requests. Docker already
announces every exit as a ``die`` event, so a stack whose wait lasts opens *one* event
stream, filtered to its own containers, and its services' waits read from it; the state
is inspected only once a container is known to have died, for the report.

The stream is opened lazily: on a quiet engine services are ready before the first
inspect would be due, and a stream would add a request instead of saving some. It asks
for events *since* ``up()`` began (the engine keeps recent ones), so an exit before the
stream opened is not missed. Any failure of the stream answers "unknown", and the loop
falls back to inspecting as before.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from envkit import labels
from envkit.errors import EnvkitError

#: Seconds subtracted from ``since``: events carry whole seconds, and a clock read just
#: before a container starts may round past its own ``die``.
SINCE_MARGIN = 2.0


class StackExits:
    """Which of one stack's containers died, from an engine event stream opened on demand.

    :param api: a docker-py low-level ``APIClient``.
    :param stack: the stack's id (its ``envkit.stack`` label).
    :param since: epoch seconds before the stack's first container was created.
    """

    def __init__(self, *, api: Any, stack: str, since: float) -> None:
        self._api = api
        self._stack = stack
        self._since = since
        self._lock = threading.Lock()
        self._died: set[str] = set()
        self._stream: Any = None
        #: The stream could not be opened, or ended while still wanted: "unknown".
        self._broken = False
        self._closed = False

    def exited(self, container: str) -> bool | None:
        """Whether *container* (an id) died since ``up()`` began; ``None`` if not known.

        The first call opens the stream (one engine request for the whole stack).
        """
        with self._lock:
            if self._closed or self._broken:
                return None
            if self._stream is None and not self._open():
                return None
            return container in self._died

    def close(self) -> None:
        """Stop listening (``up()`` ended); later questions are answered ``None``."""
        with self._lock:
            self._closed, stream = True, self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _open(self) -> bool:
        """Subscribe to this stack's ``die`` events on a reader thread (held lock)."""
        filters = {"type": "container", "event": ["die"],
                   "label": [f"{labels.STACK}={self._stack}"]}
        try:
            self._stream = self._api.events(since=int(self._since - SINCE_MARGIN),
                                            filters=filters, decode=True)
        except Exception:  # the loop inspects as it did without us
            self._broken = True
            return False
        threading.Thread(target=self._read, args=(iter(self._stream),),
                         name=f"envkit-exits-{self._stack}", daemon=True).start()
        return True

    def _read(self, events: Iterator[dict[str, Any]]) -> None:
        try:
            for event in events:
                ident = str(event.get("id") or event.get("Actor", {}).get("ID", ""))
                if ident:
                    with self._lock:
                        self._died.add(ident)
        except Exception:
            pass
        with self._lock:
            self._broken = self._broken or not self._closed


def await_completion(handle: Any, *, dependent: str, timeout: float,
                     cancelled: Callable[[], bool]) -> None:
    """Wait until *handle*'s container exits; fail unless it exited 0 (``completed``).

    :param handle: runtime's handle of the dependency (``service``, ``state()``, ``logs()``).
    :param dependent: the service waiting for it, for the message.
    :raises EnvkitError: it still runs after *timeout* seconds, or it exited non-zero
        (with its log tail). :raises Cancelled: when *cancelled* turned true.
    """
    from envkit.readiness import LOG_TAIL_LINES, Cancelled  # noqa: PLC0415 - it imports us

    name = handle.service
    deadline = time.monotonic() + timeout
    while (state := handle.state()).running:
        if cancelled():
            raise Cancelled(f"wait for {name} to complete called off")
        if time.monotonic() > deadline:
            raise EnvkitError(
                f"service {dependent!r} waits for {name!r} to complete, but it still "
                f"runs after {timeout:g}s",
                fix=f"make {name!r} exit when done, or depend on it with condition "
                "started/healthy")
        time.sleep(0.1)
    if state.exit_code != 0:
        tail = "\n".join(handle.logs().splitlines()[-LOG_TAIL_LINES:])
        raise EnvkitError(
            f"service {name!r} exited {state.exit_code}; {dependent!r} depends on it "
            f"completing successfully (exit 0). Its log ends:\n{tail}",
            fix=f"see why {name!r} failed in its log above")


def cached_running(container: Any) -> bool:
    """Whether *container*'s last inspect (a docker-py model's ``attrs``) showed it running."""
    raw = _state(container)
    return raw.get("Running") is True


def lifetime(container: Any) -> float | None:
    """How long an exited container ran, by the engine's clock (``StartedAt``..``FinishedAt``).

    The waiting loop's own clock would be late by up to an inspect interval.
    """
    raw = _state(container)
    try:
        started, finished = (_instant(raw[key]) for key in ("StartedAt", "FinishedAt"))
    except (KeyError, TypeError, ValueError):
        return None
    return finished - started if finished >= started else None


def _state(container: Any) -> dict[str, Any]:
    attrs = getattr(container, "attrs", None)
    raw = attrs.get("State", {}) if isinstance(attrs, dict) else {}
    return raw if isinstance(raw, dict) else {}


def _instant(stamp: str) -> float:
    """Seconds of an RFC 3339 time with nanoseconds, as Docker writes them."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
    return moment + float(f"0.{fraction or 0}")

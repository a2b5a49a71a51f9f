"""A worker's warm pool: spare stacks started ahead of need, each given to one test.

A test that waits for its fresh stack to come up leaves the engine idle while it does
its own work, and idle again while the next test waits for its stack. The pool uses
that idle time: after a spec is first asked for (or at worker start, for specs named in
configuration), it starts up to ``size`` spares of it on one background thread, and the
next request for an *equal* spec takes a ready one at the cost of a lock and a
comparison.

Rules that keep a spare indistinguishable from a fresh stack:

- A spare is given once and never comes back: the taker removes it like any stack.
- Spec equality decides the match. A request names a *key* (what was asked for, e.g. a
  stack file's path) and a *source* that resolves it again; a spare is started only
  when a fresh resolution equals the request, so a key whose spec differs on every
  resolution (a fresh random secret each time) or changed since (an edited file) gets
  no spare rather than a wrong one.
- What the caller's ``eligible`` refuses (a spec sharing host state, such as devices
  or bind mounts, that a spare would touch while an earlier test still runs) is never
  pooled.
- A spare whose start failed refuses its key from then on: the requester starts its
  own stack and meets the error itself, with its own report.
- A worker holds at most ``max_spares`` spares across all keys (ready and starting): a
  suite that asks for many specs would otherwise keep ``size`` idle stacks of each until
  the session ends. To make room for the key just asked for, the spares of the key
  asked for least recently are retired (handed to ``discard``, which removes in the
  background); a retired key is pooled again when it is next asked for.

The thread is a daemon, like the remover's: a process that dies with spares (or one
half-started) leaves them to its watchdog, which removes every stack of the dead owner.
:meth:`Pool.close` calls off the start in progress (``stop``), hands every spare to
``discard`` (the background remover) once its start ended, and waits for that, so an
interrupted run removes its own spares before the session's leak check looks: the
watchdog is for a process that died, not for one that was asked to stop.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

S = TypeVar("S")
T = TypeVar("T")


@dataclass(eq=False)
class _Spare(Generic[S, T]):
    """One spare: the spec it was started for and its stack, once started."""

    spec: S | None  # None until a prepared spare's key is first resolved
    future: Future[T] = field(default_factory=Future)


@dataclass(frozen=True, kw_only=True)
class _Job(Generic[S, T]):
    key: Hashable
    spare: _Spare[S, T]
    source: Callable[[], S]


class Pool(Generic[S, T]):
    """Keeps up to *size* spares per key, started in the background.

    :param size: spares kept per key (ready and starting); ``0`` keeps none.
    :param max_spares: spares kept across all keys; over it, the spares of the least
        recently requested keys go. ``None``: no bound beyond *size* per key.
    :param start: makes a started stack of a spec (runs on the pool's thread).
    :param discard: takes down a spare nobody took (hands it to the remover).
    :param eligible: ``None`` if a spec may be pooled, else why not.
    :param stop: called once by :meth:`close` to call off the start in progress, which
        then ends early (raising); its spare is discarded like any other.
    :param name: the thread's name.
    """

    def __init__(
        self, *, size: int, start: Callable[[S], T], discard: Callable[[T], object],
        eligible: Callable[[S], str | None] = lambda spec: None,
        stop: Callable[[], object] = lambda: None, name: str = "envkit-pool",
        max_spares: int | None = None,
    ) -> None:
        self.size = size
        self.max_spares = max_spares
        self._start = start
        self._discard = discard
        self._eligible = eligible
        self._stop = stop
        self._name = name
        self._lock = threading.Lock()
        #: Spares by key, the least recently requested key first.
        self._spares: OrderedDict[Hashable, list[_Spare[S, T]]] = OrderedDict()
        #: Keys never pooled again, with the reason (shown by :attr:`refused`).
        self._refused: dict[Hashable, str] = {}
        self._queue: queue.SimpleQueue[_Job[S, T] | None] = queue.SimpleQueue()
        #: Spares on their way out, each with an event set once it was discarded (or
        #: never made a stack): :meth:`close` waits for these.
        self._leaving: list[tuple[_Spare[S, T], threading.Event]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def refused(self) -> dict[Hashable, str]:
        """Keys the pool gave up on, and why (for reports and tests)."""
        with self._lock:
            return dict(self._refused)

    def ready(self, key: Hashable) -> int:
        """How many spares of *key* are started and waiting."""
        with self._lock:
            return sum(_usable(s) for s in self._spares.get(key, []))

    @property
    def _off(self) -> bool:
        """Closed, or sized to keep no spare (read under the lock)."""
        return self._closed or self.size <= 0 or self.max_spares == 0

    def held(self) -> dict[Hashable, int]:
        """Spares held (ready and starting) per key, least recently requested first."""
        with self._lock:
            counts = {key: sum(not _failed(s) for s in group)
                      for key, group in self._spares.items()}
        return {key: count for key, count in counts.items() if count}

    def take(self, key: Hashable, spec: S, source: Callable[[], S]) -> T | None:
        """A started spare of a spec equal to *spec*, else ``None``; then refill.

        A spare still starting is waited for (it is further along than a stack the
        caller would start now); one that fails to start yields ``None``.

        :param key: what was asked for; spares are kept and counted per key.
        :param source: resolves *key* again, for the spares that replace this one.
        """
        with self._lock:
            if self._off or key in self._refused:
                return None
            if (why := self._eligible(spec)) is not None:
                self._refused[key] = why
                return None
            spares = self._spares.setdefault(key, [])
            self._spares.move_to_end(key)
            spares[:] = [s for s in spares if not _failed(s)]
            stale = [s for s in spares if s.spec != spec]
            chosen = _pick([s for s in spares if s.spec == spec])
            spares[:] = [s for s in spares if s.spec == spec and s is not chosen]
            retired = self._refill(key, spec, source)
        self._leave(stale)  # resolved differently now: not what is asked for any more
        self._leave(retired)
        if chosen is None:
            return None
        try:
            return chosen.future.result()
        except Exception:  # the start's error is the requester's to meet
            return None
        except BaseException:  # Ctrl-C while waiting: nobody took it, so it goes
            self._leave([chosen])
            raise

    def prepare(self, key: Hashable, source: Callable[[], S]) -> None:
        """Start spares of what *source* resolves to, before anyone asks (worker start)."""
        with self._lock:
            if self._off or key in self._refused:
                return
            self._enqueue(_Job(key=key, spare=_Spare(spec=None), source=source))

    def close(self, timeout: float | None = None) -> list[str]:
        """Stop starting spares and discard every spare; what could not be, as lines.

        The first call calls off the start in progress (``stop``). Every spare is handed
        to ``discard`` once its start ended, and this waits up to *timeout* seconds for
        all of them, also those a previous call or :meth:`take` let go; one still
        starting after that is discarded whenever its start ends. It may be called again
        (``timeout=0`` first, to begin at once; then to wait).
        """
        with self._lock:
            first, self._closed = not self._closed, True
            spares = [s for group in self._spares.values() for s in group]
            self._spares.clear()
        if first:
            self._queue.put(None)
            self._stop()
        self._leave(spares)
        with self._lock:
            leaving = list(self._leaving)
        deadline = None if timeout is None else time.monotonic() + timeout
        failures = []
        for spare, gone in leaving:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not gone.wait(left):
                failures.append(f"a spare of {spare.spec!r:.60} still starting after "
                                f"{timeout} s")
        return failures

    def _refill(self, key: Hashable, spec: S, source: Callable[[], S]) -> list[_Spare[S, T]]:
        """Queue starts until *key* has ``size`` spares, within ``max_spares`` (held lock).

        :returns: the spares retired to make room, for :meth:`_leave` once unlocked.
        """
        spares = self._spares[key]
        wanted = self.size if self.max_spares is None else min(self.size, self.max_spares)
        retired = self._make_room(key, max(wanted - len(spares), 0))
        while len(spares) < wanted:
            spare: _Spare[S, T] = _Spare(spec=spec)
            spares.append(spare)
            self._enqueue(_Job(key=key, spare=spare, source=source))
        return retired

    def _make_room(self, key: Hashable, more: int) -> list[_Spare[S, T]]:
        """Retire other keys' spares, least recently requested first, so *more* fit.

        A spare not started yet is called off; one starting or ready is returned, to be
        discarded once its start ends (held lock).
        """
        if self.max_spares is None:
            return []
        retired: list[_Spare[S, T]] = []
        held = sum(not _failed(s) for group in self._spares.values() for s in group)
        for other in [k for k in self._spares if k != key]:
            if held + more <= self.max_spares:
                break
            group = self._spares.pop(other)
            held -= sum(not _failed(s) for s in group)
            for spare in group:
                spare.future.cancel()  # a start still queued never runs
            retired += group
        return retired

    def _enqueue(self, job: _Job[S, T]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(job)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            self._do(job)

    def _do(self, job: _Job[S, T]) -> None:
        """Resolve the job's key again and start its spare, unless that is refused."""
        spare = job.spare
        with self._lock:
            if self._closed:
                spare.future.cancel()
            if not spare.future.set_running_or_notify_cancel():
                return
        try:
            spec = self._check(job)
            if isinstance(spec, _Refusal):
                self._refuse(job.key, spec.why)
                spare.future.set_exception(LookupError(spec.why))
                return
            spare.future.set_result(self._start(spec))
        except Exception as exc:  # kept: the requester meets it itself
            self._refuse(job.key, f"a spare failed to start: {exc}")
            spare.future.set_exception(exc)

    def _check(self, job: _Job[S, T]) -> S | _Refusal:
        """The spec to start the job's spare from, or why it must not start."""
        fresh = job.source()
        wanted = job.spare.spec
        if wanted is None:  # prepare(): no request yet, compare two resolutions
            wanted = job.spare.spec = fresh
            with self._lock:
                if self._closed:  # close() has already collected the spares it discards
                    return _Refusal("the pool is closed")
                if (why := self._eligible(fresh)) is not None:
                    return _Refusal(why)
                retired = self._make_room(job.key, 1)
                self._spares.setdefault(job.key, []).append(job.spare)
                self._spares.move_to_end(job.key)
            self._leave(retired)
            fresh = job.source()
        if fresh != wanted:
            return _Refusal("its spec differs each time it is resolved (or changed since)")
        return wanted

    def _refuse(self, key: Hashable, why: str) -> None:
        """Pool *key* no more; its spares go (the one starting now fails on its own)."""
        with self._lock:
            self._refused.setdefault(key, why)
            spares = self._spares.pop(key, [])
            dropped = [s for s in spares if not s.future.running()]
        for spare in dropped:
            spare.future.cancel()
        self._leave(dropped)

    def _leave(self, spares: Iterable[_Spare[S, T]]) -> None:
        """Discard each of *spares* once its start ended; :meth:`close` waits for that."""
        for spare in spares:
            gone = threading.Event()
            with self._lock:
                self._leaving = [(s, e) for s, e in self._leaving if not e.is_set()]
                self._leaving.append((spare, gone))
            spare.future.add_done_callback(partial(self._discard_done, gone))

    def _discard_done(self, gone: threading.Event, future: Future[T]) -> None:
        """Discard the stack *future* made, if it made one; then set *gone*.

        *gone* is set only after ``discard`` returned (the removal is handed over), not
        when the future is done: a waiter woken by the future alone could look for the
        removal before it exists.
        """
        try:
            if not future.cancelled() and future.exception() is None:
                # A spare that will not go is still seen by the leak check and watchdog.
                with contextlib.suppress(Exception):
                    self._discard(future.result())
        finally:
            gone.set()


@dataclass(frozen=True)
class _Refusal:
    why: str


def _failed(spare: _Spare[S, T]) -> bool:
    future = spare.future
    return future.done() and (future.cancelled() or future.exception() is not None)


def _usable(spare: _Spare[S, T]) -> bool:
    future = spare.future
    return future.done() and not future.cancelled() and future.exception() is None


def _pick(spares: list[_Spare[S, T]]) -> _Spare[S, T] | None:
    """A started spare if there is one, else one still starting, else none."""
    for spare in spares:
        if _usable(spare):
            return spare
    for spare in spares:
        if not spare.future.done():
            return spare
    return None

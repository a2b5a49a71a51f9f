"""A worker's background remover: stacks go down while the next test starts.

A test's stack used to be removed in its fixture's finalizer, so the test's teardown lasted
as long as the engine took to stop and remove its containers, and the engine sat idle
while the next test ran its own work. The finalizer now hands the removal to this object
and returns at once; one thread per process works through the handed-over removals in
order, and the session waits for it at its end (:meth:`Remover.wait`) before the leak
check looks.

The thread is a daemon: a process that dies with removals pending leaves them to its
watchdog, which removes every stack labelled with the dead owner, as it does for a
SIGKILLed run. Removal errors are kept and returned by :meth:`Remover.wait`, never lost.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RemovalFailure:
    """One removal that failed: what it was about and why.

    :param key: the removal's key (a stack id).
    :param message: the error's text.
    """

    key: str
    message: str


class Remover:
    """Runs removals on a background thread, in the order they were handed over.

    :param name: the thread's name (seen in ``py-spy`` dumps and thread listings).
    """

    def __init__(self, *, name: str = "envkit-remover") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[str, Callable[[], object]]] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending: dict[str, int] = {}
        self._failures: list[RemovalFailure] = []
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """How many removals were handed over and have not finished yet."""
        with self._cond:
            return sum(self._pending.values())

    def submit(self, key: str, remove: Callable[[], object]) -> None:
        """Hand over *remove* (which takes down what *key* names) and return at once.

        :param key: what is removed (a stack id); :meth:`wait_for` waits on it.
        :param remove: does the removal; an exception it raises is kept as a failure.
        """
        with self._cond:
            self._pending[key] = self._pending.get(key, 0) + 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put((key, remove))

    def wait_for(self, key: str, timeout: float | None = None) -> bool:
        """Wait until no removal of *key* is pending (a new stack reuses its id).

        :returns: whether none is pending (``False``: *timeout* passed first).
        """
        with self._cond:
            return self._cond.wait_for(lambda: key not in self._pending, timeout)

    def wait(self, timeout: float | None = None) -> list[RemovalFailure]:
        """Wait for every removal handed over so far; the failures since the last call.

        :param timeout: seconds to wait at most; removals still running then are reported
            as failures (their stacks are left to the leak check and the watchdog).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            self._cond.wait_for(lambda: not self._pending, left)
            failures, self._failures = self._failures, []
            failures += [RemovalFailure(key=key, message=f"still being removed after {timeout} s")
                         for key in self._pending]
            return failures

    def _run(self) -> None:
        while True:
            key, remove = self._queue.get()
            failure: RemovalFailure | None = None
            try:
                remove()
            except Exception as exc:  # one stack that will not go must not stop the others
                failure = RemovalFailure(key=key, message=str(exc) or type(exc).__name__)
            with self._cond:
                if failure is not None:
                    self._failures.append(failure)
                self._pending[key] -= 1
                if not self._pending[key]:
                    del self._pending[key]
                self._cond.notify_all()

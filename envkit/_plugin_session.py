"""The plugin's run: its state, its start, Ctrl-C and SIGTERM, and its end with the leak check.

The controller picks one session id for the run and hands it to the workers through
xdist's ``testrunuid``, so every resource of the run carries the same ``envkit.session``;
workers report through ``workeroutput`` whether they used the engine (and which
background removals failed), so the controller checks for leftovers only then.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from envkit._plugin_options import (
    ini,
    is_worker,
    kit_options,
    pool_max_spares,
    pool_size,
    resolve_settings,
    session_id,
)
from envkit.config import Settings
from envkit.errors import EngineUnavailableError, EnvkitError

if TYPE_CHECKING:
    from envkit.session import Envkit

HOLDER_KEY = pytest.StashKey["Holder"]()
USED_OUTPUT = "envkit_used"
REMOVALS_OUTPUT = "envkit_removal_failures"
#: How long the end of a session waits for background removals (a stuck engine call
#: must not hang the run; what is left then is the leak check's and the watchdog's).
REMOVAL_WAIT = 300.0


class Holder:
    """The run's settings and ids at once; its :class:`Envkit` only when first needed."""

    def __init__(self, config: pytest.Config, settings: Settings, session: str) -> None:
        self.config = config
        self.settings = settings
        self.session = session
        self.worker = config.workerinput["workerid"] if is_worker(config) else "main"  # type: ignore[attr-defined]
        #: xdist's id of this run (the same in every worker), when xdist runs.
        self.run: str | None = (config.workerinput["testrunuid"] if is_worker(config)  # type: ignore[attr-defined]
                                else getattr(config.option, "testrunuid", None))
        self._kit: Envkit | None = None
        self._lock = threading.Lock()
        #: Set on the controller when an xdist worker reports it reached the engine.
        self.workers_used = False
        #: ``--envkit-logs`` followers of the stacks fixtures started, by stack id.
        self.streams: dict[str, Any] = {}
        #: On the controller: background removals the workers reported as failed.
        self.removal_failures: list[str] = []
        #: Spares per spec per worker (``--envkit-pool``).
        self.pool = pool_size(config)
        #: Spares per worker across specs (``--envkit-pool-max-spares``).
        self.max_spares = pool_max_spares(config)

    @property
    def made(self) -> Envkit | None:
        """The Envkit, if any fixture asked for it."""
        return self._kit

    def kit(self) -> Envkit:
        from envkit.session import Envkit

        with self._lock:
            if self._kit is None:
                settings = replace(self.settings, options=dict(kit_options(self.config)))
                verbose = self.config.getoption("verbose") > 0
                self._kit = Envkit(
                    settings=settings, environ=os.environ, session=self.session,
                    worker=self.worker, progress=stderr_line if verbose else None,
                    sweep=not self.config.getoption("envkit_no_sweep"), run=self.run,
                    pool=self.pool, max_spares=self.max_spares,
                )
            return self._kit


def pytest_configure(config: pytest.Config) -> None:
    settings = resolve_settings(config)
    holder = Holder(config, settings, session_id(config, settings))
    config.stash[HOLDER_KEY] = holder
    # pytest_keyboard_interrupt gets no config: a plugin object holds it (as pytest's
    # terminal reporter does).
    config.pluginmanager.register(_OnInterrupt(holder), "envkit-interrupt")
    _interrupt_handlers(config, holder)


class _OnInterrupt:
    """Ctrl-C that did not come through envkit's handler still closes the pool first."""

    def __init__(self, holder: Holder) -> None:
        self._holder = holder

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Before pytest tears fixtures down (and formats the interrupt), see :func:`_spares_go`."""
        _spares_go(self._holder)


def _spares_go(holder: Holder) -> None:
    """Start taking the warm pool's spares down now, on a thread; idempotent.

    A spare's start is called off and ready spares go to the remover, while the tests'
    own stacks are torn down; ``pytest_sessionfinish`` waits for both. Time matters: an
    xdist worker has about 5 s after the controller's shutdown before execnet interrupts
    it again, and what is left then is the watchdog's. A thread, because this may run in
    a signal handler, which must not wait for a lock the interrupted code holds.
    """
    kit = holder.made
    if kit is not None:
        threading.Thread(target=kit.close_pool, args=(0,), name="envkit-pool-close",
                         daemon=True).start()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start spares of ini ``envkit_pool_stacks`` in the background while collection runs.

    On each process that runs tests (each xdist worker, not the controller).
    """
    config = session.config
    refs = ini(config, "envkit_pool_stacks") or []
    holder = config.stash[HOLDER_KEY]
    controller = not is_worker(config) and getattr(config.option, "dist", "no") != "no"
    if not refs or holder.pool <= 0 or controller or config.getoption("collectonly"):
        return
    kit = holder.kit()
    for ref in refs:
        kit.prepare(ref)


def _interrupt_handlers(config: pytest.Config, holder: Holder) -> None:
    """Make SIGTERM unwind like Ctrl-C, and both take the warm pool's spares down at once.

    Unwinding runs the fixture finalizers, which tear stacks down. Installed on the
    controller and on every worker (each owns its stacks). A second SIGTERM gets the
    default action: the process dies and its watchdog reaps the rest. A handler someone
    else installed is left alone (``pytest_keyboard_interrupt`` still closes the pool).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def on_sigterm(signum: int, frame: object) -> None:
            _default_sigterm()
            _spares_go(holder)
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, on_sigterm)
        config.add_cleanup(_default_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:

        def on_sigint(signum: int, frame: object) -> None:
            _spares_go(holder)
            signal.default_int_handler(signum, frame)  # type: ignore[arg-type]

        signal.signal(signal.SIGINT, on_sigint)
        config.add_cleanup(_default_sigint)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def stderr_line(line: str) -> None:
    sys.__stderr__.write(f"envkit: {line}\n") if sys.__stderr__ else None


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the controller: note that a worker used the engine (xdist's ``workeroutput``)."""
    output = getattr(node, "workeroutput", {})
    holder = node.config.stash[HOLDER_KEY]
    if output.get(USED_OUTPUT):
        holder.workers_used = True
    holder.removal_failures += output.get(REMOVALS_OUTPUT, [])


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every worker tore down, fail the run if this session left anything behind.

    Each process first waits for its background removals (a worker's sessionfinish ends
    before the controller's begins), and a failed one is reported with the leak check.
    """
    config = session.config
    holder = config.stash[HOLDER_KEY]
    used = holder.made is not None and holder.made.connected
    failures = _finish_removals(holder)
    if is_worker(config):
        config.workeroutput[USED_OUTPUT] = used  # type: ignore[attr-defined]
        config.workeroutput[REMOVALS_OUTPUT] = failures  # type: ignore[attr-defined]
        return
    for failure in [*holder.removal_failures, *failures]:
        _fail_run(session, f"envkit: background removal failed: {failure}")
    if config.getoption("envkit_no_leak_check"):
        return
    if not (used or holder.workers_used):
        return  # no process of this run reached the engine: nothing can have leaked
    _leak_check(session, holder.kit())


def _finish_removals(holder: Holder) -> list[str]:
    """Discard the pool's spares, wait for this process's removals; failures as lines."""
    kit = holder.made
    if kit is None:
        return []
    spares = [f"warm pool: {line}" for line in kit.close_pool(REMOVAL_WAIT)]
    return spares + [f"stack {f.key}: {f.message}" for f in kit.finish_removals(REMOVAL_WAIT)]


def _leak_check(session: pytest.Session, kit: Envkit) -> None:
    from envkit._engines import leftovers

    try:  # on every engine of ENVKIT_DOCKER_HOSTS
        leaked = leftovers(kit.settings, kit.environ, kit.session, kit.engine)
    except EngineUnavailableError:
        return  # the fixtures already said so, once
    except EnvkitError as exc:
        _fail_run(session, f"envkit: could not check session {kit.session} for leftovers: "
                  f"{exc}")
        return
    if leaked:
        _fail_run(session, f"envkit: session {kit.session} left {len(leaked)} resources "
                  f"behind: {', '.join(leaked)}")


def _fail_run(session: pytest.Session, message: str) -> None:
    """End the run with *message* as one red line and exit status 1, no traceback."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True)
    else:
        stderr_line(message.removeprefix("envkit: "))
    # A failed or interrupted run keeps its own status; only a clean one turns red.
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

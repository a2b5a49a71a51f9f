"""pytest plugin: a private stack per xdist worker, generic fixtures, diagnostics, leak check.

It costs nothing until a test asks for an envkit fixture: at start it imports only
pytest and envkit's configuration, reads settings and picks the session id, and makes no
engine call (pytest-xdist's plugin keeps its heavy machinery out of the same way). The
engine connection, the kits, the dead-owner sweep and the images are made when the first
fixture needs them; the end-of-run leak check runs only in runs that reached the engine.

The controller picks one session id for the run and hands it to the workers through
xdist's ``testrunuid``, so every resource of the run carries the same ``envkit.session``;
workers report through ``workeroutput`` whether they used the engine, so the controller
checks for leftovers only then.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterator, MutableMapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from envkit.config import Settings, new_session_id, sanitize_ident
from envkit.errors import EngineUnavailableError, EnvkitError

if TYPE_CHECKING:
    from envkit.runtime import Stack
    from envkit.session import Envkit
    from envkit.spec import StackSpec

HOLDER_KEY = pytest.StashKey["_Holder"]()
OPTIONS_KEY = pytest.StashKey[dict[str, str]]()
USED_OUTPUT = "envkit_used"
REMOVALS_OUTPUT = "envkit_removal_failures"
#: How long the end of a session waits for background removals (a stuck engine call
#: must not hang the run; what is left then is the leak check's and the watchdog's).
REMOVAL_WAIT = 300.0
StackFactory = Callable[..., "Stack"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envkit", "envkit: isolated container stacks per worker")
    group.addoption(
        "--envkit-stack", metavar="NAME|PATH", default=None,
        help="stack for the envkit_stack fixture: a kit's stack name or a YAML stack file, "
        "relative to the rootdir (default: ini envkit_stack, $ENVKIT_STACK, else 'default')",
    )
    group.addoption(
        "--envkit-ready-timeout", metavar="SECONDS", type=float, default=None,
        help="default readiness deadline per service (default: $ENVKIT_READY_TIMEOUT or 60)",
    )
    group.addoption(
        "--envkit-no-leak-check", action="store_true", default=False,
        help="do not fail the run when envkit resources of this session remain at its end",
    )
    group.addoption(
        "--envkit-artifacts", metavar="DIR", default=None,
        help="for each failed test, write each service's full log, its inspect JSON and "
        "the stack's description under DIR/<test>/<stack>/ (for CI to upload)",
    )
    group.addoption(
        "--envkit-keep-on-failure", action="store_true", default=False,
        help="leave a failed test's stacks running, spared by the reaper and the leak check "
        "until `envkit down <stack>`; the report says how to reach them",
    )
    group.addoption(
        "--envkit-logs", metavar="DIR", default=None,
        help="stream every service's log live into DIR/<stack>.log while tests run",
    )
    group.addoption(
        "--envkit-sync-teardown", action="store_true", default=False,
        help="remove each test's stacks in its teardown, not in the background while the "
        "next test starts (the run still waits for background removals at its end)",
    )
    group.addoption(
        "--envkit-pool", metavar="N", type=int, default=None,
        help="spares of each spec envkit_stack_factory is asked for, kept started per worker "
        "in the background so the next test takes one at once; 0 turns it off "
        "(default: ini envkit_pool, else 1)",
    )
    group.addoption(
        "--envkit-no-sweep", action="store_true", default=False,
        help="do not remove dead test runs' stacks before the first stack "
        "(see `envkit gc`; $ENVKIT_GC_OLDER_THAN also removes any stack that old)",
    )
    parser.addini("envkit_stack", "stack for envkit_stack: a kit's stack name or a YAML file "
                  "relative to the rootdir", default=None)
    parser.addini("envkit_kits", "kits in this project: module:attribute references",
                  type="linelist", default=[])
    parser.addini("envkit_project", "namespace of this project's image tags "
                  "(default: the rootdir's name)", default=None)
    parser.addini("envkit_pool", "spares per spec per worker (--envkit-pool)", default=None)
    parser.addini("envkit_pool_stacks", "stacks (names or YAML files) whose spares each worker "
                  "starts at its start, while collection runs", type="linelist", default=[])
    parser.addini("envkit_base_packages", "Debian packages this project's base image adds",
                  type="linelist", default=[])


def kit_options(config: pytest.Config) -> MutableMapping[str, str]:
    """Settings a kit's own plugin sets from its options (``Settings.options``).

    Fill it in the kit plugin's ``pytest_configure``; stacks are made after every plugin
    was configured, so the values are there when a kit's factory reads them.
    """
    return config.stash.setdefault(OPTIONS_KEY, {})


class _Holder:
    """The run's settings and ids at once; its :class:`Envkit` only when first needed."""

    def __init__(self, config: pytest.Config, settings: Settings, session: str) -> None:
        self.config = config
        self.settings = settings
        self.session = session
        self.worker = config.workerinput["workerid"] if _is_worker(config) else "main"  # type: ignore[attr-defined]
        #: xdist's id of this run (the same in every worker), when xdist runs.
        self.run: str | None = (config.workerinput["testrunuid"] if _is_worker(config)  # type: ignore[attr-defined]
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
        self.pool = _pool_size(config)

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
                    worker=self.worker, progress=_stderr_line if verbose else None,
                    sweep=not self.config.getoption("envkit_no_sweep"), run=self.run,
                    pool=self.pool,
                )
            return self._kit


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


#: Spares per spec per worker unless configured: one covers the common test that takes
#: one fresh stack, and costs at most one idle stack per spec and worker.
DEFAULT_POOL = 1


def _pool_size(config: pytest.Config) -> int:
    """``--envkit-pool``, else ini ``envkit_pool``, else :data:`DEFAULT_POOL`.

    :raises pytest.UsageError: for a value that is not a whole number >= 0.
    """
    raw = config.getoption("envkit_pool")
    where = "--envkit-pool"
    if raw is None:
        raw, where = _ini(config, "envkit_pool"), "ini envkit_pool"
    if raw is None or raw == "":
        return DEFAULT_POOL
    try:
        size = int(raw)
    except ValueError:
        size = -1
    if size < 0:
        raise pytest.UsageError(f"envkit: {where} is {raw!r}: not a number of spares; "
                                "give a whole number >= 0 (0 turns the warm pool off)")
    return size


def _ini(config: pytest.Config, name: str) -> Any:
    """An ini value, or ``None`` where the config has no such ini (a test's stand-in)."""
    try:
        return config.getini(name)
    except (ValueError, AttributeError):
        return None


def _session_id(config: pytest.Config, settings: Settings) -> str:
    """The run's id: ``ENVKIT_SESSION`` whole, else xdist's testrunuid (first 12 chars).

    The controller picks it and hands it to workers as xdist's ``testrunuid``, so every
    process of the run labels its resources alike.
    """
    if settings.session is not None:
        chosen: str | None = settings.session
    elif _is_worker(config):
        chosen = sanitize_ident(config.workerinput["testrunuid"], limit=12)  # type: ignore[attr-defined]
    else:
        uid = getattr(config.option, "testrunuid", None)
        chosen = sanitize_ident(uid, limit=12) if uid else None
    session = chosen or new_session_id()
    # With ENVKIT_SESSION every worker reads it itself, and xdist keeps a random run id
    # of its own (several runs may share a session; each run sweeps once).
    if settings.session is None and getattr(config.option, "testrunuid", "") is None:
        config.option.testrunuid = session
    return session


def _settings(config: pytest.Config) -> Settings:
    """Settings from the environment, the ini file and the command line.

    :raises pytest.UsageError: for an unusable value, with envkit's fix.
    """
    root = Path(str(config.rootpath))
    try:
        settings = Settings.from_env(os.environ, root=root)
    except EnvkitError as exc:
        raise pytest.UsageError(f"envkit: {exc}") from None
    changes: dict[str, Any] = {}
    # The command line, then ENVKIT_STACK, then the ini file, as pytest ranks its own.
    if config.getoption("envkit_stack"):
        changes["stack"] = config.getoption("envkit_stack")
    elif config.getini("envkit_stack") and not os.environ.get("ENVKIT_STACK"):
        changes["stack"] = config.getini("envkit_stack")
    if config.getini("envkit_kits"):
        changes["kits"] = (*settings.kits, *config.getini("envkit_kits"))
    if config.getini("envkit_project") and not os.environ.get("ENVKIT_PROJECT"):
        changes["project"] = sanitize_ident(config.getini("envkit_project"), limit=40)
    if config.getini("envkit_base_packages"):
        changes["base_packages"] = (*settings.base_packages,
                                    *config.getini("envkit_base_packages"))
    if config.getoption("envkit_ready_timeout"):
        changes["ready_timeout"] = config.getoption("envkit_ready_timeout")
    return replace(settings, **changes)


def pytest_configure(config: pytest.Config) -> None:
    settings = _settings(config)
    holder = _Holder(config, settings, _session_id(config, settings))
    config.stash[HOLDER_KEY] = holder
    # pytest_keyboard_interrupt gets no config: a plugin object holds it (as pytest's
    # terminal reporter does).
    config.pluginmanager.register(_OnInterrupt(holder), "envkit-interrupt")
    _interrupt_handlers(config, holder)


class _OnInterrupt:
    """Ctrl-C that did not come through envkit's handler still closes the pool first."""

    def __init__(self, holder: _Holder) -> None:
        self._holder = holder

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """Before pytest tears fixtures down (and formats the interrupt), see :func:`_spares_go`."""
        _spares_go(self._holder)


def _spares_go(holder: _Holder) -> None:
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
    refs = _ini(config, "envkit_pool_stacks") or []
    holder = config.stash[HOLDER_KEY]
    controller = not _is_worker(config) and getattr(config.option, "dist", "no") != "no"
    if not refs or holder.pool <= 0 or controller or config.getoption("collectonly"):
        return
    kit = holder.kit()
    for ref in refs:
        kit.prepare(ref)


def _interrupt_handlers(config: pytest.Config, holder: _Holder) -> None:
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


def _stderr_line(line: str) -> None:
    sys.__stderr__.write(f"envkit: {line}\n") if sys.__stderr__ else None


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line from settings alone: the header must not reach for the engine."""
    holder = config.stash[HOLDER_KEY]
    hosts = holder.settings.docker_hosts
    where = (f"engines {', '.join(map(str, hosts))} (one per worker)" if len(hosts) > 1
             else (hosts[0].url if hosts else holder.settings.docker_host) or "the local engine")
    return [f"envkit: session {holder.session}, stack {holder.settings.stack!r}, "
            f"project {holder.settings.project!r}, {where} (connected on first use)"]


def _kit_or_stop(request: pytest.FixtureRequest) -> Envkit:
    """The run's Envkit with a live engine; an unreachable engine stops the run.

    The first test that needs the engine fails with the cause and the fix, and the
    session is told to stop, so the run ends there instead of failing every test.
    ``session.shouldstop`` is what xdist's workers also honour (``pytest.exit`` in a
    worker would be reported as a crash).
    """
    kit = request.config.stash[HOLDER_KEY].kit()
    try:
        kit.engine  # noqa: B018 - connecting is the point
        return kit
    except EngineUnavailableError as exc:
        error = exc
    request.session.shouldstop = f"envkit: the Docker engine is unreachable: {error.cause}"
    pytest.fail(f"envkit: {error}", pytrace=False)


def _resolve(kit: Envkit, spec: StackSpec | str) -> StackSpec:
    """The spec *spec* names (a kit's stack or a file), failing the test with the fix."""
    try:
        return kit.spec(spec) if isinstance(spec, str) else spec
    except EnvkitError as exc:
        pytest.fail(f"envkit: {exc}", pytrace=False)


def _take(kit: Envkit, asked: StackSpec | str, spec: StackSpec) -> Stack | None:
    """A started spare equal to *spec* from the worker's warm pool, if it has one.

    A name or path is resolved again for each spare (a spare gets its own fresh spec,
    used only if equal to what this test resolved); a spec object is its own source.
    """
    if isinstance(asked, str):
        return kit.take(spec, key=asked, source=lambda: kit.spec(asked))
    return kit.take(spec)


def _start(kit: Envkit, spec: StackSpec | str, name: str | None, *, shared: bool = False) -> Stack:
    """Resolve and start a stack, turning envkit's errors into one readable failure.

    :param shared: the worker's one session stack, named after its spec (unnumbered), so
        its id is ``<session>-<worker>-<spec>``.
    """
    try:
        resolved = kit.spec(spec) if isinstance(spec, str) else spec
        return kit.stack(resolved, name=resolved.name if shared else name)
    except EnvkitError as exc:
        pytest.fail(f"envkit: {exc}", pytrace=False)


def _up(stack: Stack, config: pytest.Config) -> Stack:
    """Start *stack*, failing the test with envkit's own error and no traceback.

    The error already carries what a traceback through envkit's internals would hide:
    the service, its state, its log tail and the fix. With ``--envkit-logs`` its services'
    logs are followed into a file from here on.
    """
    __tracebackhide__ = True
    try:
        stack.up()
    except EnvkitError as exc:
        pytest.fail(f"envkit: {exc}", pytrace=False)
    return _follow(stack, config)


def _follow(stack: Stack, config: pytest.Config) -> Stack:
    """With ``--envkit-logs``, follow *stack*'s services' logs into a file from now on."""
    folder = config.getoption("envkit_logs")
    if folder:
        from envkit.artifacts import LogStreams

        config.stash[HOLDER_KEY].streams[stack.id] = LogStreams(stack, Path(folder))
    return stack


def _down(stack: Stack, config: pytest.Config) -> None:
    """Take *stack* down unless a failed test kept it; stop following its logs.

    The removal is handed to the worker's background remover and this returns at once,
    so the next test starts while the engine removes (``--envkit-sync-teardown``: here
    and now). The session waits for the remover before its leak check.
    """
    holder = config.stash[HOLDER_KEY]
    streams = holder.streams.pop(stack.id, None)
    stop = streams.stop if streams is not None else None
    if not stack.kept and holder.made is not None and not config.getoption(
            "envkit_sync_teardown"):
        holder.made.remove_later(stack, then=stop)
        return
    if not stack.kept:
        stack.down()
    if stop is not None:
        stop()


@pytest.fixture(scope="session")
def envkit_session(request: pytest.FixtureRequest) -> Envkit:
    """The worker's :class:`~envkit.session.Envkit`: session id, worker id, engine, kits."""
    return _kit_or_stop(request)


@pytest.fixture(scope="session")
def envkit_stack(envkit_session: Envkit, pytestconfig: pytest.Config) -> Iterator[Stack]:
    """The configured stack, started once per worker and shared by its tests."""
    stack = _up(_start(envkit_session, envkit_session.settings.stack, None, shared=True),
                pytestconfig)
    try:
        yield stack
    finally:
        _down(stack, pytestconfig)


@pytest.fixture
def envkit_stack_factory(
    envkit_session: Envkit, pytestconfig: pytest.Config
) -> Iterator[StackFactory]:
    """Start fresh stacks from any spec; all of them are removed after the test.

    Call it as ``envkit_stack_factory(spec)``, ``envkit_stack_factory("stack.yml")`` or
    with a kit's stack name.
    """
    started: list[Stack] = []

    def start(spec: StackSpec | str, *, name: str | None = None) -> Stack:
        __tracebackhide__ = True
        resolved = _resolve(envkit_session, spec)
        spare = _take(envkit_session, spec, resolved) if name is None else None
        if spare is not None:
            started.append(spare)
            return _follow(spare, pytestconfig)
        stack = _start(envkit_session, resolved, name)
        started.append(stack)
        return _up(stack, pytestconfig)

    yield start
    errors: list[BaseException] = []
    for stack in reversed(started):
        try:
            _down(stack, pytestconfig)
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Remember how many stacks existed before *item*, to know which it made."""
    kit = item.config.stash[HOLDER_KEY].made
    item.stash[_BEFORE_KEY] = len(kit.made) if kit is not None else 0
    return (yield)


_BEFORE_KEY = pytest.StashKey[int]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the state and logs of every stack a failed test used, however it was made.

    A test used a stack when it received one through any fixture, or when one was made
    while it ran (by a factory, a fixture of its own, or ``Envkit.stack`` directly).
    """
    if call.excinfo is not None and not item.config.getoption("fulltrace"):
        _hide_envkit_frames(call.excinfo)
    report = yield
    kit = item.config.stash[HOLDER_KEY].made
    if kit is None or not report.failed or report.when not in ("setup", "call"):
        return report
    from envkit import diagnostics
    from envkit.runtime import Stack, StackState

    args = getattr(item, "funcargs", {})
    used = [v for v in args.values() if isinstance(v, Stack)]
    used += [s for s in kit.made[item.stash.get(_BEFORE_KEY, 0):] if s not in used]
    used = [s for s in used if s.state is StackState.UP]
    for stack in used:
        report.sections.append((f"envkit stack {stack.id}", diagnostics.describe(stack)))
    _evidence(item, report, used)
    return report


_ENVKIT_DIR = str(Path(__file__).resolve().parent)


def _hide_envkit_frames(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Cut an envkit error's traceback at envkit's first frame, as ``__tracebackhide__`` would.

    What lies below (the runtime, thread pools, the readiness loop, tenacity) explains
    nothing the error's own message does not: the user's line and envkit's message remain.
    """
    if not isinstance(excinfo.value, EnvkitError):
        return
    entries = list(excinfo.traceback)
    for index, entry in enumerate(entries):
        if str(entry.path).startswith(_ENVKIT_DIR + os.sep) and index > 0:
            excinfo.traceback = excinfo.traceback[:index]
            return


def _evidence(item: pytest.Item, report: pytest.TestReport, used: list[Stack]) -> None:
    """Artifacts (``--envkit-artifacts``) and kept stacks (``--envkit-keep-on-failure``)."""
    folder = item.config.getoption("envkit_artifacts")
    if folder:
        from envkit.artifacts import folder_name, write_stack

        where = Path(folder) / folder_name(item.nodeid)
        try:
            where.mkdir(parents=True, exist_ok=True)
            (where / "failure.txt").write_text(report.longreprtext + "\n")
            for stack in used:
                write_stack(stack, where / stack.id)
        except (OSError, EnvkitError) as exc:
            # Evidence that cannot be written must not end the run (an INTERNALERROR).
            report.sections.append(("envkit artifacts", f"could not write {where}: {exc}"))
    if item.config.getoption("envkit_keep_on_failure"):
        for stack in used:
            try:
                if not stack.kept:
                    stack.keep()
            except EnvkitError as exc:
                report.sections.append((f"envkit stack {stack.id} not kept", str(exc)))
                continue
            report.sections.append((f"envkit kept stack {stack.id}", _how_to_reach(stack)))


def _how_to_reach(stack: Stack) -> str:
    lines = [f"stack {stack.id} is left running (the reaper and the leak check spare it)",
             "  list it:    envkit ps", f"  remove it:  envkit down {stack.id}"]
    for service, doc in stack.describe()["services"].items():
        ports = ", ".join(f"{k} -> {v}" for k, v in doc["ports"].items()) or "no ports"
        lines.append(f"  {service}: {ports}; docker logs {doc['container'][:12]}; "
                     f"docker exec -it {doc['container'][:12]} sh")
    return "\n".join(lines)


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
    if _is_worker(config):
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


def _finish_removals(holder: _Holder) -> list[str]:
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
        _stderr_line(message.removeprefix("envkit: "))
    # A failed or interrupted run keeps its own status; only a clean one turns red.
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

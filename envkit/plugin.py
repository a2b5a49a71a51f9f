"""pytest plugin: a private stack per xdist worker, fixtures, report header, leak check.

The controller picks one session id for the run and hands it to the workers through
xdist's ``testrunuid``, so every resource of the run carries the same ``envkit.session``
and the controller can check, after the workers are gone, that none was left behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from envkit import camera, diagnostics, mediamtx, reaper
from envkit.config import Settings, sanitize_ident
from envkit.errors import EngineUnavailableError, EnvkitError
from envkit.inventory import list_resources
from envkit.rpc import RpcClient, connect_rpc
from envkit.runtime import Stack, StackState
from envkit.session import Envkit, new_session_id
from envkit.spec import StackSpec

ENVKIT_KEY = pytest.StashKey["Envkit"]()
STACKS_KEY = pytest.StashKey[list["Stack"]]()
#: The ``workerinput`` key carrying the controller's MediaMTX choice to the workers.
MEDIAMTX_INPUT = "envkit_mediamtx"
StackFactory = Callable[..., Stack]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envkit", "envkit: isolated container stacks per worker")
    group.addoption(
        "--envkit-stack", metavar="NAME|PATH", default=None,
        help="stack for the envkit_stack fixture: a built-in name or a YAML stack file "
        "(default: $ENVKIT_STACK, else 'default')",
    )
    group.addoption(
        "--envkit-ready-timeout", metavar="SECONDS", type=float, default=None,
        help="default readiness deadline per service (default: $ENVKIT_READY_TIMEOUT or 60)",
    )
    group.addoption(
        "--envkit-mediamtx", metavar="upstream|standin|IMAGE", default=None,
        help="MediaMTX image of the default stack (default: $ENVKIT_MEDIAMTX, else the "
        "upstream image if it can be had, else the locally built stand-in)",
    )
    group.addoption(
        "--envkit-no-leak-check", action="store_true", default=False,
        help="do not fail the run when envkit resources of this session remain at its end",
    )
    group.addoption(
        "--envkit-no-sweep", action="store_true", default=False,
        help="do not remove dead test runs' stacks at session start "
        "(see `envkit gc`; $ENVKIT_GC_OLDER_THAN also removes any stack that old)",
    )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


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
    if hasattr(config.option, "testrunuid") and config.option.testrunuid is None:
        config.option.testrunuid = session
    return session


def _settings(config: pytest.Config) -> Settings:
    """Settings from the environment, the command line, and (on a worker) the controller."""
    try:
        settings = Settings.from_env(os.environ)
    except EnvkitError as exc:
        raise pytest.UsageError(f"envkit: {exc}") from None
    if config.getoption("envkit_stack"):
        settings = replace(settings, stack=config.getoption("envkit_stack"))
    if config.getoption("envkit_mediamtx"):
        settings = replace(settings, mediamtx=config.getoption("envkit_mediamtx"))
    if config.getoption("envkit_ready_timeout"):
        settings = replace(settings, ready_timeout=config.getoption("envkit_ready_timeout"))
    handed = getattr(config, "workerinput", {}).get(MEDIAMTX_INPUT)
    if handed:
        settings = replace(settings, mediamtx=handed)
    return settings


def pytest_configure(config: pytest.Config) -> None:
    settings = _settings(config)
    worker = config.workerinput["workerid"] if _is_worker(config) else "main"  # type: ignore[attr-defined]
    verbose = config.getoption("verbose") > 0
    config.stash[ENVKIT_KEY] = Envkit(
        settings=settings, environ=os.environ, session=_session_id(config, settings),
        worker=worker, progress=_stderr_line if verbose else None,
    )
    _terminate_like_interrupt(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the controller, hand each xdist worker the run's MediaMTX choice.

    Decided once here (it may try a pull) so every worker runs the same MediaMTX, the
    one the report header names; a worker finds it in ``workerinput`` and makes it its
    ``mediamtx`` setting. ``optionalhook``: without xdist the hook is simply never called.
    """
    kit = node.config.stash[ENVKIT_KEY]
    if kit.settings.stack != "default" and not kit.settings.mediamtx:
        return  # no MediaMTX in the configured stack: no pull to try for it
    try:
        choice = kit.mediamtx
    except EngineUnavailableError:
        return  # each worker reports it, once, where a test needs the engine
    except EnvkitError:
        choice = mediamtx.Choice(mediamtx.STANDIN, "the engine refused the check")
    node.workerinput[MEDIAMTX_INPUT] = mediamtx.setting_for(choice)


def _terminate_like_interrupt(config: pytest.Config) -> None:
    """Make SIGTERM unwind like Ctrl-C, so fixture finalizers tear stacks down.

    Installed on the controller and on every worker (each owns its stacks). A second
    SIGTERM gets the default action: the process dies and its watchdog reaps the rest.
    A handler someone else installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        _default_sigterm()
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    config.add_cleanup(_default_sigterm)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_sessionstart(session: pytest.Session) -> None:
    """On the controller, remove stacks whose owner died (see :func:`envkit.reaper.sweep`)."""
    config = session.config
    if _is_worker(config) or config.getoption("envkit_no_sweep"):
        return
    kit = config.stash[ENVKIT_KEY]
    try:
        older_than = reaper.older_than_from_env(os.environ)
        swept = reaper.sweep(kit.engine, older_than=older_than)
    except EngineUnavailableError:
        return  # the fixtures report it, once, if a test needs the engine
    except EnvkitError as exc:
        raise pytest.UsageError(f"envkit: {exc}") from None
    gone = [s for s in swept if s.verdict.remove]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if gone and reporter is not None:
        reporter.write_line(f"envkit: removed {len(gone)} stale stacks: "
                            + ", ".join(f"{s.stack.stack} ({s.verdict.reason})" for s in gone))


def _stderr_line(line: str) -> None:
    sys.__stderr__.write(f"envkit: {line}\n") if sys.__stderr__ else None


def pytest_report_header(config: pytest.Config) -> list[str]:
    kit = config.stash[ENVKIT_KEY]
    try:
        engine = kit.engine
    except EngineUnavailableError as exc:
        return [f"envkit: engine unreachable ({exc.cause}); session {kit.session}"]
    try:
        spec = kit.spec()
    except EnvkitError as exc:
        return [f"envkit: stack {kit.settings.stack!r} invalid: {exc.message}"]
    images = ", ".join(f"{s.name}={s.image}" for s in spec.services)
    stack = f"stack {spec.name!r} ({images})"
    if spec.name == "default":
        choice = kit.mediamtx
        stack += f"; MediaMTX: {choice.flavour} ({choice.reason})"
    return [
        f"envkit: session {kit.session}, engine {engine.server_version()} "
        f"(API {engine.api_version}) at {engine.docker_host}, ports on {engine.publish_ip}",
        f"envkit: {stack}",
    ]


def _kit_or_stop(request: pytest.FixtureRequest) -> Envkit:
    """The run's Envkit with a live engine; an unreachable engine stops the run.

    The first test that needs the engine fails with the cause and the fix, and the
    session is told to stop, so the run ends there instead of failing every test.
    ``session.shouldstop`` is what xdist's workers also honour (``pytest.exit`` in a
    worker would be reported as a crash).
    """
    kit = request.config.stash[ENVKIT_KEY]
    try:
        kit.engine  # noqa: B018 - connecting is the point
        return kit
    except EngineUnavailableError as exc:
        error = exc
    request.session.shouldstop = f"envkit: the Docker engine is unreachable: {error.cause}"
    pytest.fail(f"envkit: {error}", pytrace=False)


@pytest.fixture(scope="session")
def envkit_session(request: pytest.FixtureRequest) -> Envkit:
    """The worker's :class:`~envkit.session.Envkit`: session id, worker id, engine."""
    return _kit_or_stop(request)


@pytest.fixture(scope="session")
def envkit_stack(envkit_session: Envkit) -> Iterator[Stack]:
    """The configured default stack, started once per worker and shared by its tests."""
    spec = envkit_session.spec()
    with envkit_session.stack(spec, name=spec.name) as stack:
        yield stack


@pytest.fixture
def envkit_stack_factory(
    envkit_session: Envkit, request: pytest.FixtureRequest
) -> Iterator[StackFactory]:
    """Start fresh stacks from any spec; all of them are removed after the test.

    Call it as ``envkit_stack_factory(spec)`` or ``envkit_stack_factory("demo")``.
    """
    started = request.node.stash.setdefault(STACKS_KEY, [])

    def start(spec: StackSpec | str, *, name: str | None = None) -> Stack:
        resolved = envkit_session.spec(spec) if isinstance(spec, str) else spec
        stack = envkit_session.stack(resolved, name=name)
        started.append(stack)
        return stack.up()

    yield start
    errors: list[BaseException] = []
    for stack in reversed(started):
        try:
            stack.down()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def envkit_rpc(envkit_stack: Stack) -> Iterator[RpcClient]:
    """A JSON-RPC client connected to the worker's camera service, authenticated as admin.

    For another role, use ``connect_rpc(camera.ws_url(stack), stack.token(role))``.
    """
    with connect_rpc(camera.ws_url(envkit_stack), envkit_stack.token("admin")) as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the state and logs of the stacks a failed test used to its report."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        shared = item.funcargs.get("envkit_stack") if hasattr(item, "funcargs") else None
        stacks = [*([shared] if isinstance(shared, Stack) else []),
                  *item.stash.get(STACKS_KEY, [])]
        for stack in stacks:
            if stack.state is StackState.UP:
                report.sections.append((f"envkit stack {stack.id}", diagnostics.describe(stack)))
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On the controller, after every worker tore down, fail the run if anything leaked."""
    config = session.config
    if _is_worker(config) or config.getoption("envkit_no_leak_check"):
        return
    kit = config.stash[ENVKIT_KEY]
    try:
        leaked = list_resources(kit.engine.client, session=kit.session)
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

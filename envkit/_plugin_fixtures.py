"""The plugin's generic fixtures: the worker's Envkit, its shared stack, and a stack factory.

Each turns envkit's own errors into one readable test failure (no traceback through
envkit), and hands its stacks' removal to the worker's background remover.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from envkit._plugin_session import HOLDER_KEY
from envkit.errors import EngineUnavailableError, EnvkitError

if TYPE_CHECKING:
    from envkit.runtime import Stack
    from envkit.session import Envkit
    from envkit.spec import StackSpec

StackFactory = Callable[..., "Stack"]


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

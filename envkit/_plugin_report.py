"""The plugin's reporting: its header line, and the evidence a failed test's stacks leave.

A failed test's report gets each stack's state and logs; with ``--envkit-artifacts`` they
are written for CI, and with ``--envkit-keep-on-failure`` the stacks are left running
with how to reach them. Tracebacks stop at envkit's first frame.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from envkit._plugin_session import HOLDER_KEY
from envkit.errors import EnvkitError

if TYPE_CHECKING:
    from envkit.runtime import Stack


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line from settings alone: the header must not reach for the engine."""
    holder = config.stash[HOLDER_KEY]
    hosts = holder.settings.docker_hosts
    where = (f"engines {', '.join(map(str, hosts))} (one per worker)" if len(hosts) > 1
             else (hosts[0].url if hosts else holder.settings.docker_host) or "the local engine")
    return [f"envkit: session {holder.session}, stack {holder.settings.stack!r}, "
            f"project {holder.settings.project!r}, {where} (connected on first use)"]


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
            (where / "failure.txt").write_text(_redacted(item, report.longreprtext, used) + "\n")
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


def _redacted(item: pytest.Item, text: str, used: list[Stack]) -> str:
    """*text* less the secrets of every stack this worker made, not only the test's own.

    ``failure.txt`` quotes pytest's report, with ``-l`` locals and assertion operands: a
    test may hold a secret read from a stack's spec, even from an earlier test's stack.
    """
    from envkit._privileges import redact, secret_values

    kit = item.config.stash[HOLDER_KEY].made
    stacks = [*(kit.made if kit is not None else ()), *used]
    return redact(text, secret_values(
        svc.environment for stack in stacks for svc in stack.spec.services))


def _how_to_reach(stack: Stack) -> str:
    lines = [f"stack {stack.id} is left running (the reaper and the leak check spare it)",
             "  list it:    envkit ps", f"  remove it:  envkit down {stack.id}"]
    for service, doc in stack.describe()["services"].items():
        ports = ", ".join(f"{k} -> {v}" for k, v in doc["ports"].items()) or "no ports"
        lines.append(f"  {service}: {ports}; docker logs {doc['container'][:12]}; "
                     f"docker exec -it {doc['container'][:12]} sh")
    return "\n".join(lines)

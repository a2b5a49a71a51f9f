"""The plugin in real pytest runs: session id checks, MediaMTX per worker, the leak check."""

from __future__ import annotations

import re

import pytest

NO_SWEEP = ("-p", "no:cacheprovider", "--envkit-no-sweep")


def test_unusable_envkit_session_is_a_usage_error(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVKIT_SESSION", "x" * 40)
    pytester.makepyfile("def test_nothing(): pass\n")
    result = pytester.runpytest_subprocess(*NO_SWEEP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"ENVKIT_SESSION='{'x' * 40}' is 40 characters long (at most 32)" in err
    assert "fix: set ENVKIT_SESSION to at most 32" in err and "x" * 32 in err
    assert "Traceback" not in err and "INTERNALERROR" not in result.stdout.str()


def test_plugin_works_without_xdist(pytester: pytest.Pytester,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The xdist hooks (``pytest_testnodedown``) are optional: pytest alone runs the plugin.

    The header is one line from the settings: it names the engine but does not reach it,
    so an unreachable engine goes unmentioned in a run that uses no fixture.
    """
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    pytester.makepyfile("def test_nothing(): pass\n")
    result = pytester.runpytest_subprocess("-p", "no:xdist", *NO_SWEEP)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([
        "envkit: session *, stack 'default', project *, tcp://127.0.0.1:9 "
        "(connected on first use)",
        "*1 passed*",
    ])
    out = result.stdout.str()
    assert "unreachable" not in out
    # The camera kit's header line comes from its setting alone: no choice was made.
    assert "envkit camera kit: MediaMTX: auto (upstream where the engine has it" in out


CHOICE = """
from pathlib import Path

from envkit.camera import mediamtx

def test_choice(request, envkit_session):
    choice = mediamtx.chosen(envkit_session)
    assert mediamtx.chosen(envkit_session) is choice  # once per process
    worker = request.config.workerinput["workerid"]
    Path(f"chosen-{worker}").write_text(
        f"{envkit_session.settings.options.get('mediamtx')} {choice.flavour}")

test_again = test_choice
"""


@pytest.mark.integration
def test_each_worker_applies_the_mediamtx_option_on_first_use(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hand-off from the controller: every process reads ``--envkit-mediamtx`` itself.

    Each chooses when a stack first needs MediaMTX; the report header names the setting.
    """
    monkeypatch.delenv("ENVKIT_MEDIAMTX", raising=False)
    pytester.makepyfile(CHOICE)
    result = pytester.runpytest_subprocess("-n", "2", "--envkit-mediamtx", "standin", *NO_SWEEP)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert "envkit camera kit: MediaMTX: standin (by setting)" in out
    chosen = {p.read_text() for p in pytester.path.glob("chosen-gw*")}
    assert chosen == {"standin standin"}, chosen


UNCHOSEN = """
def test_no_choice_for_a_stack_without_mediamtx(envkit_session):
    envkit_session.spec("demo")
    assert "camera.mediamtx" not in envkit_session._memo
"""


@pytest.mark.integration
def test_no_mediamtx_choice_until_a_stack_needs_it(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVKIT_MEDIAMTX", raising=False)
    pytester.makepyfile(UNCHOSEN)
    result = pytester.runpytest_subprocess(*NO_SWEEP)
    result.assert_outcomes(passed=1)


LEAK_CHECK_FAILS = """
import envkit.inventory
from envkit.errors import EngineError

def refuse(client, **selection):
    raise EngineError(action="list containers", cause="500 Server Error: daemon busy")

envkit.inventory.list_resources = refuse
"""

LEAKS = """
import envkit.inventory

envkit.inventory.list_resources = lambda client, **selection: ["container left-over"]
"""


@pytest.mark.integration
@pytest.mark.parametrize(("conftest", "line"), [
    (LEAK_CHECK_FAILS, "envkit: could not check session * for leftovers: Docker refused to "
                       "list containers: 500 Server Error: daemon busy"),
    (LEAKS, "envkit: session * left 1 resources behind: container left-over"),
], ids=["engine-error", "leak"])
def test_leak_check_ends_the_run_with_one_red_line(pytester: pytest.Pytester, conftest: str,
                                                   line: str) -> None:
    pytester.makeconftest(conftest)
    pytester.makepyfile("def test_engine(envkit_session): pass\n")
    result = pytester.runpytest_subprocess(*NO_SWEEP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([line])
    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out


FAILS_TO_START = """
from envkit import Http, ServiceSpec, StackSpec
from envkit.demo import TESTSVC

DIES = StackSpec(name="dies", services=[ServiceSpec(
    name="web", image=TESTSVC, ports=[8080], ready=[Http(8080, "/health")],
    command=["python3", "-c", "print('bad config'); raise SystemExit(3)"])])

def test_start(envkit_stack_factory):
    envkit_stack_factory(DIES)
"""


@pytest.mark.integration
def test_a_stack_that_fails_to_start_fails_the_test_without_envkits_traceback(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(FAILS_TO_START)
    result = pytester.runpytest_subprocess(*NO_SWEEP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    # It exited at once: said so, with how long it ran, not "not ready after 60s".
    assert re.search(r"service 'web' exited after \d+\.\d s \(exit code 3\)", out), out
    assert "not ready after" not in out and "bad config" in out
    assert "fix: read the log lines above" in out
    for internal in ("envkit/runtime.py", "envkit/readiness.py", "envkit/plugin.py",
                     "envkit/_plugin_fixtures.py"):
        assert internal not in out, out

"""The plugin in real pytest runs: session id checks, xdist hand-off, the end-of-run leak check."""

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
    """``pytest_configure_node`` is an xdist hook: unknown to pytest unless xdist is loaded."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    pytester.makepyfile("def test_nothing(): pass\n")
    result = pytester.runpytest_subprocess("-p", "no:xdist", *NO_SWEEP)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["envkit: engine unreachable*", "*1 passed*"])


HANDED = """
from pathlib import Path

def test_choice(request, envkit_session):
    handed = request.config.workerinput["envkit_mediamtx"]
    assert envkit_session.settings.mediamtx == handed
    Path(f"handed-{request.config.workerinput['workerid']}").write_text(
        f"{handed} {envkit_session.mediamtx.flavour}")

test_again = test_choice
"""


@pytest.mark.integration
def test_workers_run_the_controllers_mediamtx_choice(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVKIT_MEDIAMTX", raising=False)
    pytester.makepyfile(HANDED)
    result = pytester.runpytest_subprocess("-n", "2", *NO_SWEEP)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.OK, out
    header = re.search(r"MediaMTX: (upstream|standin) \(", out)
    assert header is not None, out
    handed = {p.read_text() for p in pytester.path.glob("handed-gw*")}
    assert len(handed) == 1, handed  # the same choice on every worker that ran a test
    value, flavour = handed.pop().split()
    assert flavour == header.group(1)
    if flavour == "standin":
        assert value == "standin"
    else:
        assert value.startswith("bluenviron/mediamtx:")


LEAK_CHECK_FAILS = """
import envkit.plugin
from envkit.errors import EngineError

def refuse(client, **selection):
    raise EngineError(action="list containers", cause="500 Server Error: daemon busy")

envkit.plugin.list_resources = refuse
"""

LEAKS = """
import envkit.plugin

envkit.plugin.list_resources = lambda client, **selection: ["container left-over"]
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

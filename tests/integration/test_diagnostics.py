"""A failing test's report shows the state and log tail of the stacks it used."""

from __future__ import annotations

import re

import pytest

FAILING = """
import urllib.request

def test_fails_with_a_stack(envkit_stack_factory):
    stack = envkit_stack_factory("demo")
    urllib.request.urlopen(stack.url("client", 8080)).read()  # the web log gets a line
    assert False, "the assertion that failed"

def test_passes_with_a_stack(envkit_stack_factory):
    envkit_stack_factory("demo")
"""


def test_failed_test_report_carries_stack_logs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert out.count("- envkit stack ") == 1, out  # only the failing test's report
    result.stdout.fnmatch_lines([
        "*- envkit stack *-main-demo-* -*",
        "--- web (running; image envkit/envkit/testsvc:*; ports 8080/tcp -> 127.0.0.1:*; "
        "user 65534:65534, caps none, read-only, pids 64); last 25 log lines:",
        "*GET / HTTP/1.1*",
        "--- client (running; image envkit/envkit/testsvc:*; ports 8080/tcp -> 127.0.0.1:*)*",
    ])


HOWEVER_MADE = """
import re

import pytest

made = []


@pytest.fixture(autouse=True)
def _down_after_the_report():
    # The stacks go in teardown, after the call's report was made: that report must see them.
    yield
    while made:
        made.pop().down()


@pytest.fixture(scope="module")
def shared(envkit_session):
    with envkit_session.stack(envkit_session.spec("demo"), name="shared") as stack:
        yield stack


def test_fails_with_a_direct_stack(envkit_session):
    made.append(envkit_session.stack(envkit_session.spec("demo"), name="direct").up())
    assert False, "failed beside a stack made directly"


def test_fails_without_a_stack(envkit_session):
    assert False, "failed with no stack"


def test_passes_with_a_direct_stack(envkit_session):
    made.append(envkit_session.stack(envkit_session.spec("demo"), name="quiet").up())


def test_passes_with_the_shared_stack(shared):
    pass


def test_fails_with_the_shared_stack(shared):
    assert False, "failed with a stack made before it ran"
"""


def _failure_blocks(out: str) -> dict[str, str]:
    """Each failed test's part of the FAILURES section, by test name."""
    failures = out.split("= FAILURES =", 1)[1].split("short test summary info", 1)[0]
    blocks = re.split(r"^_{3,} (\w+) _{3,}$", failures, flags=re.MULTILINE)
    return dict(zip(blocks[1::2], blocks[2::2], strict=True))


def test_diagnostics_reach_every_failed_test_that_used_a_stack_and_only_those(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(HOWEVER_MADE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envkit-no-sweep",
                                           "-rA")
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    blocks = _failure_blocks(out)
    assert set(blocks) == {"test_fails_with_a_direct_stack", "test_fails_without_a_stack",
                           "test_fails_with_the_shared_stack"}, out
    direct = blocks["test_fails_with_a_direct_stack"]
    assert re.search(r"- envkit stack \S+-main-direct -", direct), direct
    assert "--- web (running; image envkit/envkit/testsvc:" in direct
    assert "- envkit stack " not in blocks["test_fails_without_a_stack"]
    shared = blocks["test_fails_with_the_shared_stack"]
    assert re.search(r"- envkit stack \S+-main-shared -", shared), shared
    assert "-main-direct" not in shared
    # Two sections in all: the passing tests' reports (shown by -rA) carry none.
    assert out.count("- envkit stack ") == 2, out

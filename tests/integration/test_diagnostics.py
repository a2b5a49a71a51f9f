"""A failing test's report shows the state and log tail of the stacks it used."""

from __future__ import annotations

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
        "--- web (running; ports 8080/tcp -> 127.0.0.1:*); last 25 log lines:",
        "*GET / HTTP/1.1*",
        "--- client (running; ports 8080/tcp -> 127.0.0.1:*)*",
    ])

"""An unreachable engine ends the run with one clear error, with and without xdist."""

from __future__ import annotations

import pytest

TESTS = """
def test_a(envkit_stack): pass
def test_b(envkit_stack): pass
def test_c(envkit_stack_factory): pass
def test_d(envkit_stack_factory): pass
def test_e(envkit_stack_factory): pass
def test_f(envkit_stack_factory): pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_one_error_per_process_then_stop(pytester: pytest.Pytester, workers: list[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess(*workers, "-p", "no:cacheprovider")
    out = result.stdout.str()
    errors = out.count("ERROR test_one_error_per_process_then_stop.py::")
    assert 1 <= errors <= (2 if workers else 1), out  # at most one per process
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert "Interrupted: envkit: the Docker engine is unreachable" in out
    assert "fix: start the daemon" in out
    assert result.ret != 0

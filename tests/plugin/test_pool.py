"""The warm pool's option and its start at worker start, through pytest itself.

No engine is needed: the runs aim at an unreachable one, which a spare's start meets in
the background without a word; the fixture then reports it once, as without a pool.
"""

from __future__ import annotations

import json

import pytest

UNREACHABLE = "tcp://127.0.0.1:9"

TESTS = """
def test_a(envkit_stack_factory): envkit_stack_factory("demo")
def test_b(envkit_stack_factory): envkit_stack_factory("demo")
"""

#: Records, per process, which threads run once collection is done.
CONFTEST = """
import json, os, pathlib, threading

def pytest_collection_finish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    names = [t.name for t in threading.enumerate()]
    pathlib.Path(session.config.rootpath, f"threads-{worker}.json").write_text(json.dumps(names))
"""


def _threads(pytester: pytest.Pytester) -> dict[str, list[str]]:
    return {p.stem.removeprefix("threads-"): json.loads(p.read_text())
            for p in pytester.path.glob("threads-*.json")}


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_bad_pool_size_is_a_usage_error_with_the_fix(pytester: pytest.Pytester,
                                                       value: str) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--envkit-pool={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--envkit-pool" in err and ("whole number >= 0" in err or "invalid int" in err)
    assert "Traceback" not in err


def test_a_bad_ini_pool_size_names_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nenvkit_pool = lots\n")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini envkit_pool is 'lots'" in result.stderr.str()


def test_a_bad_max_spares_is_a_usage_error_with_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nenvkit_pool_max_spares = -2\n")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "ini envkit_pool_max_spares is '-2'" in err and "whole number >= 0" in err
    assert "Traceback" not in err


def test_configured_stacks_start_on_each_worker_while_collection_runs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)
    pytester.makeini("[pytest]\nenvkit_pool = 1\nenvkit_pool_stacks =\n    demo\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    out = result.stdout.str()
    threads = _threads(pytester)
    assert set(threads) == {"gw0", "gw1"}, threads  # the workers, not the controller
    for worker, names in threads.items():
        assert f"envkit-pool-{worker}" in names, names
    # The spare's failed start says nothing; the fixture reports the engine once.
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert "the Docker engine is unreachable" in out and result.ret != 0


@pytest.mark.parametrize("args", [["--envkit-pool", "0"], ["--collect-only"]],
                         ids=["pool-0", "collect-only"])
def test_no_spares_when_off_or_only_collecting(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str],
) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)
    pytester.makeini("[pytest]\nenvkit_pool = 1\nenvkit_pool_stacks =\n    demo\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    threads = _threads(pytester)
    assert threads and not any(n.startswith("envkit-pool") for t in threads.values() for n in t)

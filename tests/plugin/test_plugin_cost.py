"""The plugin costs nothing until used: no heavy import and no engine call without a fixture.

A run that asks for no envkit fixture imports none of the heavy modules and never reaches
the engine, even an unroutable one.

``bench/bench_plugin_cost.py`` measures the same runs' wall time against ``-p no:envkit``.
"""

from __future__ import annotations

import json

import pytest

UNROUTABLE = "tcp://192.0.2.1:1"  # TEST-NET-1: nothing answers there
#: What a fixture-less run must not import: the engine client and the camera kit's libraries.
HEAVY = ("docker", "testcontainers", "yaml", "websockets", "jwt", "tenacity", "requests",
         "envkit._engine", "envkit.runtime", "envkit.images", "envkit.camera.mediamtx")

PLAIN = f"""
import sys

HEAVY = {HEAVY!r}

def test_plain():
    assert [name for name in HEAVY if name in sys.modules] == []
"""

# Recorded once the whole run is over (after the plugin's own session-finish hooks), in
# every process of the run: the controller and each xdist worker.
RECORD = f"""
import json, os, sys
from pathlib import Path

HEAVY = {HEAVY!r}

def pytest_unconfigure(config):
    loaded = [name for name in HEAVY if name in sys.modules]
    Path(f"loaded-{{os.getpid()}}.json").write_text(json.dumps(loaded))
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_run_without_envkit_fixtures_costs_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNROUTABLE)
    monkeypatch.delenv("ENVKIT_MEDIAMTX", raising=False)
    pytester.makeconftest(RECORD)
    pytester.makepyfile(PLAIN)
    # Only envkit's plugins (and xdist): the dev extra's others (pytest-docker,
    # schemathesis) import requests themselves, and what is measured is envkit's cost.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins = ["-p", "envkit.plugin", "-p", "envkit.camera.plugin"]
    if workers:
        plugins += ["-p", "xdist.plugin"]
    result = pytester.runpytest_subprocess(*workers, *plugins, "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, out
    result.assert_outcomes(passed=1)
    for word in ("unreachable", "error", "Traceback", "pull", "chosen", "standin"):
        assert word not in out, out
    assert "MediaMTX: auto" in out  # the camera kit's header: its setting, no choice
    # A connection attempt, had there been one, would have gone through envkit._engine.
    records = [json.loads(p.read_text()) for p in pytester.path.glob("loaded-*.json")]
    assert len(records) == (3 if workers else 1), records
    assert all(loaded == [] for loaded in records), records
    # No engine call, no pull, no sweep (the records above prove it); how long that takes
    # is measured by bench/bench_plugin_cost.py, never asserted here.


def test_a_run_that_uses_the_engine_fails_with_one_clear_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNROUTABLE)
    pytester.makepyfile("def test_engine(envkit_session): pass\n"
                        "def test_plain(): pass\n")
    # -rN: no short summary, which repeats the message untruncated where the terminal is wide.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--envkit-no-sweep", "-rN")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret != pytest.ExitCode.OK
    assert out.count(f"the Docker engine at {UNROUTABLE} does not answer") == 1, out
    assert "fix: start the daemon" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out

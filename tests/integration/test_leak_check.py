"""The plugin's end-of-run check fails a run that leaves envkit resources behind."""

from __future__ import annotations

import uuid

import pytest

from envkit import labels
from envkit._teardown import teardown
from envkit.session import Envkit

LEAKY = """
from envkit.demo import demo

def test_forgets_to_tear_down(envkit_session):
    envkit_session.stack(demo(), name="forgotten").up()
"""


def test_leftover_resources_fail_the_run(pytester: pytest.Pytester,
                                         monkeypatch: pytest.MonkeyPatch,
                                         envkit_session: Envkit) -> None:
    session = f"leak{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ENVKIT_SESSION", session)
    pytester.makepyfile(LEAKY)
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        out = result.stdout.str()
        assert result.ret == pytest.ExitCode.TESTS_FAILED, out
        result.stdout.fnmatch_lines([f"*envkit: session {session} left 3 resources behind*"])
        assert "1 passed" in out
    finally:
        teardown(envkit_session.engine, f"{session}-main-forgotten")
    client = envkit_session.engine.client
    assert client.containers.list(all=True, filters=labels.selector(session=session)) == []

"""A failing test through pytester: artifacts written, a kept stack that `envkit down` removes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from envkit import labels
from envkit.inventory import list_resources, list_stacks
from envkit.session import Envkit

FAILING = """
from envkit.demo import demo

def test_fails(envkit_stack_factory):
    stack = envkit_stack_factory(demo())
    assert stack.exec("web", "exit 3").ok, "the service said no"

def test_passes(envkit_stack_factory):
    envkit_stack_factory(demo())
"""


def _envkit(*args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("envkit")
    return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.integration
def test_failed_test_leaves_artifacts_and_a_kept_stack(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, envkit_session: Envkit,
) -> None:
    session = f"art-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("ENVKIT_SESSION", session)
    pytester.makepyfile(FAILING)
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--envkit-no-sweep",
        "--envkit-artifacts", "artifacts", "--envkit-keep-on-failure",
        "--envkit-logs", "logs")
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    result.assert_outcomes(passed=1, failed=1)
    assert "resources behind" not in out  # the run's leak check spared the kept stack
    assert "envkit kept stack" in out and "envkit down " in out and "docker logs " in out

    folder = next((pytester.path / "artifacts").iterdir())
    assert "test_fails" in folder.name
    stack_dir = next(p for p in folder.iterdir() if p.is_dir())
    doc = json.loads((stack_dir / "stack.json").read_text())
    assert set(doc["services"]) == {"web", "client"}
    assert "GET /health" in (stack_dir / "web.log").read_text()  # the whole log, probes too
    assert json.loads((stack_dir / "web.inspect.json").read_text())["State"]["Running"]
    assert "the service said no" in (folder / "failure.txt").read_text()
    assert any(p.read_text() for p in (pytester.path / "logs").iterdir())

    client = envkit_session.engine.client
    kept = list_stacks(client, selector=labels.selector(session=session))
    try:
        assert [s.stack for s in kept] == [doc["stack"]] and kept[0].kept
        assert kept[0].state == "running"
        assert list_resources(client, session=session) == []  # the leak check spares it
        ps = _envkit("ps", "--json")
        assert any(s["stack"] == doc["stack"] and s["kept"] for s in json.loads(ps.stdout))
    finally:
        down = _envkit("down", doc["stack"])
    assert down.returncode == 0, down.stderr
    assert list_stacks(client, selector=labels.selector(session=session)) == []


SECRET_IN_LOCALS = """
import secrets
from pathlib import Path

from envkit import Http, ServiceSpec, StackSpec
from envkit.demo import LOCKED_DOWN, TESTSVC

EARLIER = {}


def _spec():
    secret = "jwt-" + secrets.token_hex(12)
    return StackSpec(name="secretive", services=[ServiceSpec(
        name="web", image=TESTSVC, ports=[8080], ready=[Http(8080, "/health")],
        environment={"SERVICE_NAME": "web", "APP_JWT_SECRET": secret}, **LOCKED_DOWN)])


def test_holds_its_stack_s_secret(envkit_stack_factory):
    stack = envkit_stack_factory(_spec())
    secret = stack.spec.service("web").environment["APP_JWT_SECRET"]
    Path("secret.txt").write_text(secret)
    EARLIER["secret"] = secret
    assert secret.startswith("nope"), secret

def test_holds_an_earlier_test_s_secret():
    remembered = EARLIER["secret"]
    assert remembered.startswith("nope")
"""


@pytest.mark.integration
def test_failure_txt_has_no_secret_of_the_worker_s_stacks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``-l`` locals and assertion operands quote a secret; ``failure.txt`` cuts it out.

    The second test uses no stack: the secret it holds came from the first test's stack,
    already down, and is still one this worker's stacks had.
    """
    monkeypatch.setenv("ENVKIT_SESSION", f"art-{uuid.uuid4().hex[:10]}")
    pytester.makepyfile(SECRET_IN_LOCALS)
    result = pytester.runpytest_subprocess(
        "-p", "no:xdist", "-p", "no:cacheprovider", "--envkit-no-sweep", "-l",
        "--envkit-artifacts", "artifacts")
    out = result.stdout.str()
    result.assert_outcomes(failed=2)
    secret = (pytester.path / "secret.txt").read_text()
    assert secret in out  # pytest's own report quotes it: the artifact had it to leak
    failures = {p.parent.name: p.read_text()
                for p in (pytester.path / "artifacts").glob("*/failure.txt")}
    assert len(failures) == 2, sorted(failures)
    for name, text in failures.items():
        # Not left out but cut out: the local is still listed (``-l``), its value hidden.
        assert " = '<redacted>'" in text and "AssertionError" in text, (name, text)
        assert secret not in text, (name, text)

"""A testcontainers container joins a running stack: reached by alias, removed with it."""

from __future__ import annotations

import json

import pytest
from testcontainers.core.container import DockerContainer

from envkit import Envkit, SpecError, Stack
from envkit.demo import demo
from envkit.interop import join_stack
from envkit.labels import selector


@pytest.fixture
def ryuk_left_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ryuk needs a pulled image; whether it runs is the caller's testcontainers setting.
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.mark.usefixtures("ryuk_left_to_the_caller")
def test_testcontainers_container_joins_a_stack_and_goes_with_it(
    envkit_session: Envkit,
) -> None:
    stack: Stack = envkit_session.stack(demo()).up()
    try:
        tag = stack.describe()["services"]["web"]["image"]
        extra = DockerContainer(tag, docker_client_kw={"environment": dict(
            envkit_session.engine.environ)})
        extra.with_env("SERVICE_NAME", "extra")
        join_stack(extra, stack, alias="extra").start()
        # The stack's client service fetches what the joined container answers, by alias.
        # The joined container's readiness is testcontainers' (none here): poll briefly.
        fetch = ["python3", "-c", "import time, urllib.request as u\n"
                 "for _ in range(100):\n"
                 "    try: print(u.urlopen('http://extra:8080/').read().decode()); break\n"
                 "    except OSError: time.sleep(0.1)"]
        code, out = stack.container("client").exec_run(fetch)
        assert code == 0 and out, out
        assert json.loads(out)["service"] == "extra"
        with pytest.raises(SpecError, match="already a service of the stack"):
            join_stack(DockerContainer(tag), stack, alias="web")
    finally:
        stack.down()
    left = envkit_session.engine.client.containers.list(
        all=True, filters=selector(stack=stack.id))
    assert left == []

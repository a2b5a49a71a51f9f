"""Plugin decisions without pytester or an engine: the session id and the MediaMTX hand-off.

Hand-written stand-ins for xdist's config and ``WorkerController``, in the manner of
pytest's ``FakeConfig`` in ``testing/test_tmpdir.py`` and xdist's ``MockNode``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from envkit import mediamtx, plugin
from envkit.config import SESSION_MAX, Settings
from envkit.errors import EngineUnavailableError
from envkit.session import Envkit


class FakeConfig:
    """A controller's config (``testrunuid`` option) or, with *workerinput*, a worker's."""

    def __init__(self, *, testrunuid: str | None = None,
                 workerinput: dict[str, Any] | None = None) -> None:
        self.option = SimpleNamespace(testrunuid=testrunuid)
        self.stash = pytest.Stash()
        if workerinput is not None:
            self.workerinput = workerinput


def session_of(config: FakeConfig, session: str | None = None) -> str:
    return plugin._session_id(config, Settings(session=session))  # type: ignore[arg-type]


def test_envkit_session_is_kept_whole_on_controller_and_workers() -> None:
    given = "gh-12345678901-5-shard-one-xyz12"
    assert len(given) == 32
    controller = FakeConfig()
    assert session_of(controller, given) == given
    assert controller.option.testrunuid == given  # handed to the workers
    worker = FakeConfig(workerinput={"testrunuid": given, "workerid": "gw0"})
    assert session_of(worker, given) == given


def test_only_xdists_testrunuid_is_shortened_to_12() -> None:
    uid = "0123456789abcdef0123456789abcdef"
    assert session_of(FakeConfig(testrunuid=uid)) == uid[:12]
    assert session_of(FakeConfig(workerinput={"testrunuid": uid})) == uid[:12]


def test_without_any_id_the_controller_makes_one_for_the_workers() -> None:
    controller = FakeConfig()
    made = session_of(controller)
    assert len(made) == 12 and controller.option.testrunuid == made


class FakeKit:
    def __init__(self, choice: mediamtx.Choice | None, stack: str = "default") -> None:
        self._choice = choice
        self.settings = Settings(stack=stack)

    @property
    def mediamtx(self) -> mediamtx.Choice:
        if self._choice is None:
            raise EngineUnavailableError(docker_host="tcp://127.0.0.1:9", cause="refused")
        return self._choice


def configure_node(choice: mediamtx.Choice | None, stack: str = "default") -> dict[str, Any]:
    config = FakeConfig()
    config.stash[plugin.ENVKIT_KEY] = FakeKit(choice, stack)  # type: ignore[arg-type]
    node = SimpleNamespace(config=config, workerinput={"workerid": "gw0"})
    plugin.pytest_configure_node(node)
    return node.workerinput


@pytest.mark.parametrize(("choice", "handed"), [
    (mediamtx.Choice(mediamtx.STANDIN, "no registry"), "standin"),
    (mediamtx.Choice(mediamtx.upstream(), "available"), mediamtx.UPSTREAM_IMAGE),
    (mediamtx.Choice(mediamtx.upstream("reg.local/mtx:1"), "set"), "reg.local/mtx:1"),
])
def test_controller_hands_its_mediamtx_choice_to_each_worker(
    choice: mediamtx.Choice, handed: str
) -> None:
    assert configure_node(choice)[plugin.MEDIAMTX_INPUT] == handed


def test_no_hand_off_when_the_engine_is_unreachable() -> None:
    assert plugin.MEDIAMTX_INPUT not in configure_node(None)


def test_no_pull_for_a_stack_without_mediamtx() -> None:
    """FakeKit(None) raises if asked: a demo stack must not even ask."""
    assert plugin.MEDIAMTX_INPUT not in configure_node(None, stack="demo")


def test_envkit_keeps_a_32_char_session_whole() -> None:
    given = "s" * SESSION_MAX
    assert Envkit(settings=Settings(), environ={}, session=given).session == given

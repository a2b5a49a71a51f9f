"""Plugin decisions without pytester or an engine: session id, laziness, MediaMTX, sweep.

Each process makes the MediaMTX choice on first use (no hand-off from the controller),
and the dead-owner sweep waits for the session's first stack.

Hand-written stand-ins for xdist's config and a kit's context, in the manner of pytest's
``FakeConfig`` in ``testing/test_tmpdir.py`` and xdist's ``MockNode``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from envkit import _engine, _plugin_options, _plugin_session, plugin, reaper
from envkit.camera import mediamtx
from envkit.camera import plugin as camera_plugin
from envkit.camera.stack import default_for
from envkit.config import SESSION_MAX, Settings
from envkit.demo import demo
from envkit.session import Envkit

T = TypeVar("T")


class FakeConfig:
    """A controller's config (``testrunuid`` option) or, with *workerinput*, a worker's."""

    def __init__(self, *, testrunuid: str | None = None,
                 workerinput: dict[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.option = SimpleNamespace(testrunuid=testrunuid)
        self.stash = pytest.Stash()
        self._options = {"verbose": 0, "envkit_no_sweep": False, **(options or {})}
        if workerinput is not None:
            self.workerinput = workerinput

    def getoption(self, name: str) -> Any:
        return self._options.get(name)

    def addinivalue_line(self, name: str, line: str) -> None:
        """Markers registered by the camera plugin; nothing here reads them."""


def session_of(config: FakeConfig, session: str | None = None) -> str:
    return _plugin_options.session_id(config, Settings(session=session))  # type: ignore[arg-type]


def test_envkit_session_is_kept_whole_on_controller_and_workers() -> None:
    given = "gh-12345678901-5-shard-one-xyz12"
    assert len(given) == 32
    controller = FakeConfig()
    assert session_of(controller, given) == given
    # Workers read ENVKIT_SESSION themselves; xdist keeps its own random run id.
    assert controller.option.testrunuid is None
    worker = FakeConfig(workerinput={"testrunuid": "0123456789abcdef", "workerid": "gw0"})
    assert session_of(worker, given) == given


def test_only_xdists_testrunuid_is_shortened_to_12() -> None:
    uid = "0123456789abcdef0123456789abcdef"
    assert session_of(FakeConfig(testrunuid=uid)) == uid[:12]
    assert session_of(FakeConfig(workerinput={"testrunuid": uid})) == uid[:12]


def test_without_any_id_the_controller_makes_one_for_the_workers() -> None:
    controller = FakeConfig()
    made = session_of(controller)
    assert len(made) == 12 and controller.option.testrunuid == made


def test_envkit_keeps_a_32_char_session_whole() -> None:
    given = "s" * SESSION_MAX
    assert Envkit(settings=Settings(), environ={}, session=given).session == given


# --- laziness: nothing is made until a fixture asks -------------------------------------


def test_the_holder_makes_no_envkit_until_asked() -> None:
    config = FakeConfig(workerinput={"workerid": "gw1", "testrunuid": "r"},
                        options={"envkit_no_sweep": True})
    plugin.kit_options(config)["mediamtx"] = "standin"  # type: ignore[arg-type]
    holder = _plugin_session.Holder(config, Settings(), "s1")  # type: ignore[arg-type]
    assert holder.made is None and holder.worker == "gw1"
    kit = holder.kit()
    assert holder.made is kit and holder.kit() is kit
    assert (kit.session, kit.worker, kit.connected) == ("s1", "gw1", False)
    assert kit.settings.options == {"mediamtx": "standin"}  # a kit plugin's option reaches it
    assert kit._sweep is False  # --envkit-no-sweep


def test_the_xdist_hand_off_of_mediamtx_is_gone() -> None:
    """Each process chooses on first use; the controller hands nothing to its workers."""
    assert not hasattr(plugin, "pytest_configure_node")
    assert not hasattr(plugin, "MEDIAMTX_INPUT")


@pytest.mark.parametrize(("given", "stored"), [("standin", {"mediamtx": "standin"}),
                                               (None, {})])
def test_the_camera_plugin_stores_its_option_for_the_kit(
    given: str | None, stored: dict[str, str]
) -> None:
    config = FakeConfig(options={"envkit_mediamtx": given})
    camera_plugin.pytest_configure(config)  # type: ignore[arg-type]
    options = dict(plugin.kit_options(config))  # type: ignore[arg-type]
    assert {k: v for k, v in options.items() if k == "mediamtx"} == stored


# --- the camera kit's MediaMTX choice ----------------------------------------------------


class FakeCtx:
    """A :class:`envkit.kits.KitContext` whose engine counts its uses (or refuses them)."""

    def __init__(self, *, options: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None, probe: bool = True) -> None:
        self.settings = Settings(root=Path("/nonexistent"), options=dict(options or {}))
        self.environ = dict(environ or {})
        self.client: Any = SimpleNamespace(api=object()) if probe else Unprobed()
        self.engine_uses = 0
        self._memo: dict[str, Any] = {}

    @property
    def engine(self) -> Any:
        self.engine_uses += 1
        return SimpleNamespace(client=self.client)

    def memo(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._memo:
            self._memo[key] = make()
        value: T = self._memo[key]
        return value


class Unprobed:
    """A docker client that fails any use: looking for (or pulling) an image is a probe."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was probed ({name})")


@pytest.mark.parametrize(("options", "environ", "image"), [
    ({"mediamtx": "standin"}, {}, mediamtx.STANDIN),
    ({}, {"ENVKIT_MEDIAMTX": "standin"}, mediamtx.STANDIN),
    ({"mediamtx": "upstream"}, {"ENVKIT_MEDIAMTX": "standin"}, mediamtx.upstream()),
    ({"mediamtx": "reg.local/mtx:1"}, {}, mediamtx.upstream("reg.local/mtx:1")),
], ids=["option", "environment", "option-wins", "image"])
def test_an_explicit_choice_never_probes_the_engine(
    options: dict[str, str], environ: dict[str, str], image: Any
) -> None:
    ctx = FakeCtx(options=options, environ=environ, probe=False)
    choice = mediamtx.chosen(ctx)
    assert (choice.image, choice.reason) == (image, "chosen by setting")


def test_the_choice_is_made_once_per_run_and_process(monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[object] = []

    def choose(client: object, setting: str | None) -> mediamtx.Choice:
        probes.append(client)
        return mediamtx.Choice(mediamtx.STANDIN, "no registry")

    monkeypatch.setattr(mediamtx, "choose", choose)
    ctx = FakeCtx()
    first = mediamtx.chosen(ctx)
    assert mediamtx.chosen(ctx) is first and default_for(ctx).services[0].image == first.image
    assert len(probes) == 1 and ctx.engine_uses == 1


def test_no_probe_for_a_stack_without_mediamtx(monkeypatch: pytest.MonkeyPatch) -> None:
    """A demo stack is resolved with no engine call and no MediaMTX choice."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("connected to the engine")

    monkeypatch.setattr(_engine, "connect", refuse)
    kit = Envkit(settings=Settings(), environ={"DOCKER_HOST": "tcp://192.0.2.1:1"}, session="s")
    assert kit.spec("demo").name == "demo"
    assert not kit.connected and "camera.mediamtx" not in kit._memo


# --- the sweep: before the session's first stack, once, not at session start ---------------


def sweeping_kit(tmp_path: Path, swept: list[object], *, sweep: bool = True,
                 run: str | None = "r", session: str = "s") -> Envkit:
    kit = Envkit(settings=Settings(root=tmp_path, cache_dir=tmp_path / "cache"), environ={},
                 session=session, sweep=sweep, run=run)
    kit._engine = SimpleNamespace(client=None)  # type: ignore[assignment]
    kit._builder = SimpleNamespace()  # type: ignore[assignment]
    return kit


@pytest.fixture
def swept(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    monkeypatch.setattr(reaper, "sweep", lambda engine, **kw: calls.append(engine) or [])
    return calls


def test_the_sweep_waits_for_the_first_stack_and_runs_once(tmp_path: Path,
                                                           swept: list[object]) -> None:
    kit = sweeping_kit(tmp_path, swept)
    kit.engine  # noqa: B018 - a session fixture connects, and must not sweep
    kit.spec("demo")
    assert swept == []
    kit.stack(demo())
    kit.stack(demo())
    assert swept == [kit.engine] and len(kit.made) == 2


def test_one_process_of_a_run_sweeps(tmp_path: Path, swept: list[object]) -> None:
    """Every worker gets to its first stack; the run's marker elects one sweeper."""
    for _ in range(3):
        sweeping_kit(tmp_path, swept, run="run-1").stack(demo())
    assert len(swept) == 1
    # A later run of the same session (a CI job's fixed ENVKIT_SESSION) sweeps again.
    sweeping_kit(tmp_path, swept, run="run-2").stack(demo())
    assert len(swept) == 2
    # A process alone (no xdist) needs no election.
    sweeping_kit(tmp_path, swept, run=None).stack(demo())
    sweeping_kit(tmp_path, swept, run=None).stack(demo())
    assert len(swept) == 4


def test_stale_sweep_markers_are_removed(tmp_path: Path, swept: list[object]) -> None:
    sweeping_kit(tmp_path, swept, run="old").stack(demo())
    marker = tmp_path / "cache" / "sweeps" / "old"
    os.utime(marker, (0, 0))
    sweeping_kit(tmp_path, swept, run="new").stack(demo())
    assert not marker.exists() and (tmp_path / "cache" / "sweeps" / "new").exists()


def test_no_sweep_when_told_not_to(tmp_path: Path, swept: list[object]) -> None:
    sweeping_kit(tmp_path, swept, sweep=False).stack(demo())
    assert swept == []

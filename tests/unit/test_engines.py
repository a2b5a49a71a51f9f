"""Several engines, pure logic: parsing ENVKIT_DOCKER_HOSTS, binding workers, copying images.

No Docker: image copies run between fake API clients that hold images as dicts.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from envkit import _engines, cli, labels, reaper
from envkit._images_build import obtain
from envkit.config import EngineHost, Settings, parse_docker_hosts
from envkit.errors import EngineUnavailableError, EnvkitError

A, B, C = "unix:///var/run/docker.sock", "unix:///tmp/e2/s.sock", "tcp://ci-2:2376"


def test_hosts_parse_with_weights_and_ignore_empty_entries() -> None:
    hosts = parse_docker_hosts(f" {A}*2 , {B},, {C}*1 ,")
    assert hosts == (EngineHost(url=A, weight=2), EngineHost(url=B), EngineHost(url=C))
    assert [str(h) for h in hosts] == [f"{A}*2", B, C]
    assert parse_docker_hosts("") == parse_docker_hosts(None) == ()


@pytest.mark.parametrize(("raw", "problem"), [
    ("http://x:2375", "is not a unix://, tcp:// or ssh:// engine URL"),
    ("/var/run/docker.sock", "is not a unix://, tcp:// or ssh:// engine URL"),
    ("unix://", "names no socket path or host"),
    ("tcp:// ", "names no socket path or host"),
    (f"{A}*0", "has weight '0', not a positive whole number"),
    (f"{A}*x", "has weight 'x', not a positive whole number"),
    (f"{A}*-1", "has weight '-1', not a positive whole number"),
    (f"{A},{A}*2", "is listed twice"),
])
def test_unusable_hosts_name_the_entry_and_the_fix(raw: str, problem: str) -> None:
    with pytest.raises(EnvkitError) as info:
        Settings.from_env({"ENVKIT_DOCKER_HOSTS": raw})
    assert info.value.message.startswith("ENVKIT_DOCKER_HOSTS: ")
    assert problem in info.value.message
    assert info.value.fix


def test_weights_interleave_engines_in_each_round() -> None:
    hosts = parse_docker_hosts(f"{A}*2,{B}")
    assert [h.url for h in _engines.schedule(hosts)] == [A, B, A]
    five = parse_docker_hosts(f"{A}*5,{B},{C}")
    order = [h.url for h in _engines.schedule(five)]
    assert Counter(order) == {A: 5, B: 1, C: 1}
    assert order[:2] != [A, A] or order.index(B) < 4  # B is not left to the end


def test_workers_bind_by_their_index_and_others_take_the_first() -> None:
    hosts = parse_docker_hosts(f"{A},{B}")
    assert [_engines.bind(hosts, f"gw{n}").url for n in range(4)] == [A, B, A, B]
    assert _engines.bind(hosts, "main").url == A
    assert _engines.bind(hosts, "cli").url == A
    with pytest.raises(ValueError):
        _engines.bind((), "gw0")


def test_one_engine_keeps_the_old_lock_and_sweep_names() -> None:
    alone = Settings.from_env({"DOCKER_HOST": B})
    assert _engines.urls(alone) == [B] and not _engines.several(alone)
    assert _engines.urls(Settings.from_env({})) == [_engines.DEFAULT_URL]
    both = Settings.from_env({"ENVKIT_DOCKER_HOSTS": f"{A},{B}", "DOCKER_HOST": C})
    assert _engines.urls(both) == [A, B] and _engines.several(both)


def test_engine_keys_are_distinct_and_file_name_safe() -> None:
    keys = {_engines.key(url) for url in (A, B, C, "unix:///tmp/e2/s.sock2")}
    assert len(keys) == 4
    assert all(k.replace("-", "").replace("_", "").replace(".", "").isalnum() for k in keys)


class FakeApi:
    """An engine's image store: ``inspect_image``, ``get_image``, ``load_image``."""

    def __init__(self, name: str, images: dict[str, dict[str, Any]] | None = None,
                 *, broken_load: bool = False) -> None:
        self.name = name
        self.images = dict(images or {})
        self.loads = 0
        self.broken_load = broken_load

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.images:
            raise docker.errors.ImageNotFound(f"no such image: {ref}")
        return self.images[ref]

    def get_image(self, ref: str, chunk_size: int) -> Iterator[bytes]:
        yield repr((ref, self.images[ref])).encode()

    def load_image(self, data: Iterator[bytes], quiet: bool) -> Iterator[dict[str, str]]:
        ref, info = eval(b"".join(data).decode())
        self.loads += 1
        if self.broken_load:
            yield {"error": "no space left on device"}
            return
        self.images[ref] = info
        yield {"stream": f"Loaded image: {ref}"}


class Peers:
    def __init__(self, *apis: FakeApi) -> None:
        self._apis = apis

    def apis(self) -> list[tuple[str, Any]]:
        return [(api.name, api) for api in self._apis]


TAG = "envkit/base:bookworm-0123456789ab"


def _obtain(api: FakeApi, tmp_path: Path, peers: Peers | None, made: list[str],
            lines: list[str] | None = None) -> None:
    def make() -> None:
        made.append(api.name)
        api.images[TAG] = {"Id": f"sha256:{api.name}"}

    obtain(api, TAG, lock_dir=tmp_path, say=(lines if lines is not None else []).append,
           make=make, engine=_engines.key(api.name) if peers else "", peers=peers)


def test_an_image_a_peer_has_is_copied_not_made(tmp_path: Path) -> None:
    main, second, made = FakeApi("a", {TAG: {"Id": "sha256:a"}}), FakeApi("b"), []
    lines: list[str] = []
    _obtain(second, tmp_path, Peers(main), made, lines)
    assert made == [] and second.images[TAG] == {"Id": "sha256:a"} and second.loads == 1
    assert any("copying" in line for line in lines)
    _obtain(second, tmp_path, Peers(main), made)  # present now: nothing more
    assert second.loads == 1


def test_an_image_no_engine_has_is_made_once_then_copied(tmp_path: Path) -> None:
    main, second, made = FakeApi("a"), FakeApi("b"), []
    _obtain(main, tmp_path, Peers(second), made)
    _obtain(second, tmp_path, Peers(main), made)
    assert made == ["a"] and second.images[TAG] == {"Id": "sha256:a"}


def test_a_failed_copy_falls_back_to_making_it(tmp_path: Path) -> None:
    main, second, made = FakeApi("a", {TAG: {"Id": "sha256:a"}}), FakeApi("b", broken_load=True), []
    lines: list[str] = []
    _obtain(second, tmp_path, Peers(main), made, lines)
    assert made == ["b"] and second.loads == 1
    assert any("no space left on device" in line for line in lines)


def test_one_engine_makes_without_looking_elsewhere(tmp_path: Path) -> None:
    alone, made = FakeApi("a"), []
    _obtain(alone, tmp_path, None, made)
    assert made == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == [TAG.replace("/", "_").replace(":", "_")
                                                    + ".lock"]


def test_racing_workers_on_two_engines_make_it_once(tmp_path: Path) -> None:
    """Two workers per engine at once: one makes it, the other engine copies it."""
    main, second, made = FakeApi("a"), FakeApi("b"), []
    calls = [(main, Peers(second)), (second, Peers(main))] * 2
    threads = [threading.Thread(target=_obtain, args=(api, tmp_path, peers, made))
               for api, peers in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert main.images[TAG] == second.images[TAG]


def test_the_sweep_is_elected_per_engine_only_with_several() -> None:
    class Bound:
        def __init__(self, url: str) -> None:
            self.docker_host = url

    run = "f" * 32
    alone = Settings.from_env({})
    both = Settings.from_env({"ENVKIT_DOCKER_HOSTS": f"{A},{B}"})
    assert _engines.sweep_scope(alone, run, Bound(A)) == run  # type: ignore[arg-type]
    scopes = {_engines.sweep_scope(both, run, Bound(u)) for u in (A, B)}  # type: ignore[arg-type]
    assert len(scopes) == 2 and all(s.startswith(run) and len(s) <= 64 for s in scopes)


class ListApi:
    """An engine holding one container per given stack, listed through label filters."""

    def __init__(self, stacks: dict[str, str]) -> None:
        self.stacks = stacks  # stack id -> session

    def containers(self, *, all: bool, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        found = []
        for stack, session in self.stacks.items():
            have = {labels.SESSION: session, labels.STACK: stack, labels.WORKER: "gw0",
                    labels.SERVICE: "web"}
            if all_match(have, filters["label"]):
                found.append({"Names": [f"/{stack}-web"], "State": "running",
                              "Labels": have, "Ports": []})
        return found

    def networks(self, *, filters: Any) -> list[dict[str, Any]]:
        return []

    def volumes(self, *, filters: Any) -> dict[str, Any]:
        return {"Volumes": None}


def all_match(have: dict[str, str], wanted: list[str]) -> bool:
    return all(have.get(w.partition("=")[0]) == w.partition("=")[2] if "=" in w
               else w in have for w in wanted)


@pytest.fixture
def two_engines(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The CLI over two fake engines; one stack of session s1 on each, s2 on the second."""
    monkeypatch.setenv("ENVKIT_DOCKER_HOSTS", f"{A},{B}")
    fakes = {A: ListApi({"s1-gw0-demo-1": "s1"}),
             B: ListApi({"s1-gw1-demo-1": "s1", "s2-gw1-demo-1": "s2"})}
    engines = {url: SimpleNamespace(docker_host=url, client=SimpleNamespace(api=api))
               for url, api in fakes.items()}
    monkeypatch.setattr(_engines, "connect_url", lambda settings, environ, url: engines[url])
    removed: list[tuple[str, str]] = []

    def remove(engine: Any, stacks: list[Any]) -> dict[str, int]:
        removed.extend((engine.docker_host, s.stack) for s in stacks)
        return {s.stack: 1 for s in stacks}

    monkeypatch.setattr(reaper, "remove_stacks", remove)
    return {"cli": cli, "removed": removed}


def test_ps_lists_every_engine_with_its_url(two_engines: dict[str, Any],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert two_engines["cli"].main(["ps", "--json"]) == 0
    listed = {(s["stack"], s["engine"]) for s in json.loads(capsys.readouterr().out)}
    assert listed == {("s1-gw0-demo-1", A), ("s1-gw1-demo-1", B), ("s2-gw1-demo-1", B)}
    assert two_engines["cli"].main(["ps"]) == 0
    table = capsys.readouterr().out
    assert "ENGINE" in table and A in table and B in table


def test_down_session_removes_its_stacks_on_every_engine(
    two_engines: dict[str, Any], capsys: pytest.CaptureFixture[str],
) -> None:
    assert two_engines["cli"].main(["down", "--session", "s1"]) == 0
    assert set(two_engines["removed"]) == {(A, "s1-gw0-demo-1"), (B, "s1-gw1-demo-1")}
    assert "2 stacks removed" in capsys.readouterr().err
    assert two_engines["cli"].main(["down", "--session", "nope"]) == 1
    assert "sessions on the engine: s1, s2" in capsys.readouterr().err


def test_an_unreachable_engine_is_named_and_skipped(
    two_engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    working = _engines.connect_url

    def flaky(settings: Settings, environ: Any, url: str) -> Any:
        if url == B:
            raise EngineUnavailableError(docker_host=B, cause="connection refused")
        return working(settings, environ, url)

    monkeypatch.setattr(_engines, "connect_url", flaky)
    assert two_engines["cli"].main(["ps", "--json"]) == 0
    out = capsys.readouterr()
    assert "skipping engine unix:///tmp/e2/s.sock: connection refused" in out.err
    assert "s1-gw0-demo-1" in out.out and "gw1" not in out.out


def test_made_here_by_a_one_engine_run_while_waiting_is_not_made_again(tmp_path: Path) -> None:
    """A run without ENVKIT_DOCKER_HOSTS holds the same tag lock while it builds here."""
    main, second, made = FakeApi("a"), FakeApi("b"), []
    original = main.inspect_image
    seen: list[str] = []

    def inspect(ref: str) -> dict[str, Any]:
        seen.append(ref)
        if len(seen) == 3:  # looked twice; the other run finished its build since
            main.images[TAG] = {"Id": "sha256:other-run"}
        return original(ref)

    main.inspect_image = inspect  # type: ignore[method-assign]
    _obtain(main, tmp_path, Peers(second), made)
    assert made == [] and main.images[TAG] == {"Id": "sha256:other-run"}

"""Pure logic of settings, labels and engine addressing; no Docker."""

from __future__ import annotations

import pytest

from envkit import EnvkitError, labels
from envkit._engine import host_address, is_remote
from envkit.config import Settings


def test_settings_come_from_the_given_mapping_only() -> None:
    s = Settings.from_env({"ENVKIT_SESSION": "CI Run/42", "ENVKIT_STACK": "demo",
                           "ENVKIT_READY_TIMEOUT": "12.5", "XDG_CACHE_HOME": "/c"})
    assert s.session == "ci-run-42"
    assert s.stack == "demo" and s.ready_timeout == 12.5
    assert str(s.lock_dir) == "/c/envkit/locks"
    assert Settings.from_env({}).session is None


def test_bad_timeout_names_variable_and_fix() -> None:
    with pytest.raises(EnvkitError, match=r"ENVKIT_READY_TIMEOUT='soon' is not a positive"):
        Settings.from_env({"ENVKIT_READY_TIMEOUT": "soon"})


@pytest.mark.parametrize(("docker_host", "address", "remote"), [
    (None, "127.0.0.1", False),
    ("unix:///var/run/docker.sock", "127.0.0.1", False),
    ("tcp://10.0.0.5:2376", "10.0.0.5", True),
    ("ssh://ci@build-box", "build-box", True),
    ("tcp://localhost:2375", "localhost", False),
])
def test_host_address_follows_docker_host(docker_host: str | None, address: str,
                                          remote: bool) -> None:
    assert host_address(docker_host) == address
    assert is_remote(docker_host) is remote
    assert host_address(docker_host, override="h.example") == "h.example"


def test_labels_contract_and_selectors() -> None:
    own = labels.Ownership(session="s1", worker="gw0", stack="s1-gw0-demo", owner="h:1",
                           created="2026-01-01T00:00:00+00:00")
    got = own.service_labels("web", {"team": "cam"})
    assert got == {"team": "cam", "envkit.session": "s1", "envkit.worker": "gw0",
                   "envkit.stack": "s1-gw0-demo", "envkit.owner": "h:1",
                   "envkit.created": "2026-01-01T00:00:00+00:00", "envkit.service": "web"}
    assert labels.selector() == {"label": ["envkit.session"]}
    assert labels.selector(session="s1", worker="gw0") == {
        "label": ["envkit.session=s1", "envkit.worker=gw0"]}
    assert labels.reserved({"envkit.x": "1", "other": "2"}) == ["envkit.x"]

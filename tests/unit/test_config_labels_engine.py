"""Pure logic of settings, labels and engine addressing; no Docker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from envkit import EnvkitError, labels
from envkit._engine import host_address, is_remote
from envkit.config import Settings


def test_settings_come_from_the_given_mapping_only() -> None:
    s = Settings.from_env({"ENVKIT_SESSION": "ci-run-42", "ENVKIT_STACK": "demo",
                           "ENVKIT_READY_TIMEOUT": "12.5", "XDG_CACHE_HOME": "/c"})
    assert s.session == "ci-run-42"
    assert s.stack == "demo" and s.ready_timeout == 12.5
    assert str(s.lock_dir) == "/c/envkit/locks"
    assert Settings.from_env({}).session is None


@pytest.mark.parametrize("session", [
    "s" * 32, "gh-12345678901-5", "gh-99999999999-v4l2", "a.b_c-1",
])
def test_session_is_kept_whole_up_to_32_chars(session: str) -> None:
    assert Settings.from_env({"ENVKIT_SESSION": session}).session == session


@pytest.mark.parametrize(("session", "problem", "suggested"), [
    ("s" * 33, "is 33 characters long (at most 32)", "s" * 32),
    ("CI Run/42", "holds characters a session id cannot", "ci-run-42"),
    ("-lead", "holds characters a session id cannot", "lead"),
])
def test_unusable_session_is_refused_not_folded(session: str, problem: str,
                                                suggested: str) -> None:
    with pytest.raises(EnvkitError) as info:
        Settings.from_env({"ENVKIT_SESSION": session})
    assert info.value.message == f"environment variable ENVKIT_SESSION={session!r} {problem}"
    assert f"ENVKIT_SESSION={suggested}" in info.value.fix and "unset it" in info.value.fix


def test_ci_workflow_sessions_fit() -> None:
    """The ids CI sets (``gh-<run id>-<job index>``, ...) are valid with room to spare."""
    workflow = (Path(__file__).parents[2] / ".github" / "workflows" / "ci.yml").read_text()
    templates = re.findall(r"ENVKIT_SESSION: (.+)", workflow)
    assert templates
    for template in templates:
        # run_id is a 64-bit integer (at most 20 digits); run_attempt and job-index small
        # integers (job names do not fit in 32 characters beside a 20-digit run id).
        value = template.strip()
        value = re.sub(r"\$\{\{ github\.run_id \}\}", "9" * 20, value)
        value = re.sub(r"\$\{\{ github\.run_attempt \}\}", "999", value)
        value = re.sub(r"\$\{\{ strategy\.job-index \}\}", "99", value)
        assert "${{" not in value, template
        assert Settings.from_env({"ENVKIT_SESSION": value}).session == value


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
                           created="2026-01-01T00:00:00+00:00", owner_ns=None)
    got = own.service_labels("web", {"team": "cam"})
    assert got == {"team": "cam", "envkit.session": "s1", "envkit.worker": "gw0",
                   "envkit.stack": "s1-gw0-demo", "envkit.owner": "h:1",
                   "envkit.created": "2026-01-01T00:00:00+00:00", "envkit.service": "web"}
    assert labels.selector() == {"label": ["envkit.session"]}
    assert labels.selector(session="s1", worker="gw0") == {
        "label": ["envkit.session=s1", "envkit.worker=gw0"]}
    assert labels.reserved({"envkit.x": "1", "other": "2"}) == ["envkit.x"]

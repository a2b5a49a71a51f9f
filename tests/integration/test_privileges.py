"""Least privilege on the real engine: what ``docker inspect`` and the kernel say.

Every service drops all capabilities (its bounding set is empty unless ``cap_add``),
envkit's own services run as unprivileged users on a read-only root with a process
limit, a service that needs a capability fails with a hint and runs once given it, and
the default stack's JWT secret shows up nowhere envkit writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from envkit import Http, ReadinessTimeoutError, ServiceSpec, StackSpec
from envkit.demo import TESTSVC
from envkit.plugin import StackFactory
from envkit.session import Envkit
from envkit.stackfile import load_stack_file

CAMERA_TMPFS = {"/tmp", "/run/camera-service", "/var/lib/camera-service"}


def _settings(attrs: dict[str, Any]) -> dict[str, Any]:
    host = attrs["HostConfig"]
    return {"user": attrs["Config"]["User"], "cap_drop": host["CapDrop"],
            "cap_add": host["CapAdd"], "groups": host["GroupAdd"],
            "read_only": host["ReadonlyRootfs"], "pids": host["PidsLimit"],
            "tmpfs": set(host.get("Tmpfs") or {}), "security": host["SecurityOpt"]}


def _in(stack: Any, service: str, script: str | list[str]) -> tuple[int, str]:
    result = stack.exec(service, script)
    return result.exit_code, result.output


def _kernel_view(stack: Any, service: str) -> dict[str, str]:
    """The service's process as the kernel has it: ids, capability sets, its cgroup's pids."""
    code, out = _in(stack, service, "id -u; id -G; grep -E '^Cap(Eff|Bnd)' /proc/1/status; "
                    "cat /sys/fs/cgroup/pids/pids.current /sys/fs/cgroup/pids.current "
                    "2>/dev/null; true")
    assert code == 0, out
    lines = out.split("\n")
    caps = dict(line.split(":\t") for line in lines if line.startswith("Cap"))
    pids = [line for line in lines[2:] if line.strip().isdigit()]
    return {"uid": lines[0], "groups": lines[1], "CapEff": caps["CapEff"],
            "CapBnd": caps["CapBnd"], "pids": pids[-1] if pids else "?"}


def test_the_default_stack_runs_unprivileged_read_only_and_limited(
    envkit_stack_factory: StackFactory,
) -> None:
    stack = envkit_stack_factory("default")
    cam = _settings(stack.container("camera-service").attrs)
    media = _settings(stack.container("mediamtx").attrs)
    assert cam == {"user": "10001:10001", "cap_drop": ["ALL"], "cap_add": None,
                   "groups": ["video"], "read_only": True, "pids": 256,
                   "tmpfs": CAMERA_TMPFS, "security": ["no-new-privileges"]}
    assert media == {"user": "10002:10002", "cap_drop": ["ALL"], "cap_add": None,
                     "groups": None, "read_only": True, "pids": 256, "tmpfs": {"/tmp"},
                     "security": ["no-new-privileges"]}
    for service in ("camera-service", "mediamtx"):
        seen = _kernel_view(stack, service)
        print(f"{service}: {seen}")  # pids in use, for the report
        assert seen["CapEff"] == seen["CapBnd"] == "0000000000000000", seen
        assert seen["uid"] != "0"
        code, out = _in(stack, service, "touch /opt/x")
        assert code != 0 and "Read-only file system" in out
    assert "44" in _kernel_view(stack, "camera-service")["groups"].split()  # video
    # It still works: its synthetic camera is served (readiness waited for it).
    code, out = _in(stack, "camera-service", "ls /run/camera-service/synthetic")
    assert (code, out.split()) == (0, ["video0"])


def test_the_demo_and_its_degrading_proxy_run_as_nobody(
    envkit_stack_factory: StackFactory,
) -> None:
    stack = envkit_stack_factory("demo")
    web = _settings(stack.container("web").attrs)
    assert (web["user"], web["cap_drop"], web["cap_add"], web["read_only"], web["pids"]) == (
        "65534:65534", ["ALL"], None, True, 64)
    with stack.degrade("web", 8080, latency=0.01):
        proxy = _settings(stack.container("web-proxy").attrs)
        assert (proxy["user"], proxy["cap_drop"], proxy["read_only"], proxy["pids"]) == (
            "65534:65534", ["ALL"], True, 64)
        assert _kernel_view(stack, "web-proxy")["CapBnd"] == "0000000000000000"


CHOWNS = ["sh", "-c", "touch /tmp/f && chown 1:1 /tmp/f && "
          "exec python3 /app/svc.py serve --port 8080"]


def test_a_service_lacking_a_capability_gets_a_hint_and_runs_with_cap_add(
    envkit_session: Envkit,
) -> None:
    def spec(**kw: Any) -> StackSpec:
        return StackSpec(name="caps", services=[ServiceSpec(
            name="chowner", image=TESTSVC, user="0", command=CHOWNS, ports=[8080],
            ready=[Http(8080, "/health")], ready_timeout=20, **kw)])

    with pytest.raises(ReadinessTimeoutError) as info, envkit_session.stack(spec()):
        pass
    assert "Operation not permitted" in str(info.value)
    assert "cap_add" in info.value.fix and "CHOWN" in info.value.fix
    with envkit_session.stack(spec(cap_add=["CHOWN"])) as stack:
        assert stack.container("chowner").attrs["HostConfig"]["CapAdd"] == ["CAP_CHOWN"] or (
            stack.container("chowner").attrs["HostConfig"]["CapAdd"] == ["CHOWN"])
        assert _in(stack, "chowner", "stat -c %u:%g /tmp/f") == (0, "1:1\n")


def test_limits_from_a_stack_file_hold_in_the_kernel(
    envkit_session: Envkit, tmp_path: Path,
) -> None:
    path = tmp_path / "limits.yml"
    path.write_text(textwrap.dedent("""
        name: limits
        services:
          web:
            use: testsvc
            pids_limit: 24
            mem_limit: 96m
            read_only: true
            tmpfs: [/tmp]
    """))
    spec = load_stack_file(path, environ={}, services=lambda block, options: ServiceSpec(
        name=block, image=TESTSVC, ports=[8080], ready=[Http(8080, "/health")]))
    with envkit_session.stack(spec) as stack:
        host = stack.container("web").attrs["HostConfig"]
        assert (host["PidsLimit"], host["Memory"], host["ReadonlyRootfs"]) == (
            24, 96 * 1024**2, True)
        # 40 children cannot all start under a limit of 24 processes.
        code, out = _in(stack, "web", ["python3", "-c", FORKER])
        print(f"pids_limit 24: {out.strip()}")
        assert code == 0 and "refused: Resource temporarily unavailable" in out, out
        assert int(out.split()[1]) < 24


FORKER = """
import os, time
started, refused = 0, ""
for _ in range(40):
    try:
        pid = os.fork()
    except OSError as exc:
        refused = exc.strerror
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    started += 1
print("started", started, "refused:", refused)
"""


KNOWN_SECRET = f"known-jwt-secret-{uuid.uuid4().hex}"

# The inner files name the secret only through the environment: pytest prints the
# failing test's source, which must not be what shows it.
INNER_CONFTEST = """
import os

import envkit.camera.stack

# Every default stack of this run gets the one secret the outer test looks for.
envkit.camera.stack.new_secret = lambda: os.environ["LEAK_SECRET"]
"""

INNER_TEST = """
import json, os, subprocess, sys
from pathlib import Path

import docker

OUT = Path(os.environ["LEAK_OUT"])


def test_default_stack_then_fail(envkit_stack_factory):
    stack = envkit_stack_factory("default")
    assert stack.spec.service("camera-service").environment[
        "CAMERA_SERVICE_JWT_SECRET"] == os.environ["LEAK_SECRET"]
    envkit = str(Path(sys.executable).with_name("envkit"))
    ps = subprocess.run([envkit, "ps", "--json"], capture_output=True, text=True)
    (OUT / "ps.json").write_text(ps.stdout + ps.stderr)
    (OUT / "up.json").write_text(json.dumps(stack.describe()))
    client = docker.from_env()
    made = client.containers.list(filters={"label": f"envkit.stack={stack.id}"})
    (OUT / "labels.json").write_text(json.dumps([c.labels for c in made]))
    (OUT / "network-labels.json").write_text(json.dumps(
        client.networks.get(stack.network).attrs["Labels"]))
    (OUT / "logs.txt").write_text("".join(stack.logs(s.name) for s in stack.spec.services))
    # Fail on purpose: pytest prints the spec, envkit adds its report and artifacts.
    assert not stack.spec, stack.spec
"""


def test_the_jwt_secret_shows_nowhere_envkit_writes(tmp_path: Path) -> None:
    root, out = tmp_path / "proj", tmp_path / "out"
    (root / "tests").mkdir(parents=True)
    out.mkdir()
    (root / "tests" / "conftest.py").write_text(INNER_CONFTEST)
    (root / "tests" / "test_leak.py").write_text(INNER_TEST)
    (root / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "LEAK_OUT": str(out), "LEAK_SECRET": KNOWN_SECRET,
           "ENVKIT_SESSION": f"leak-{uuid.uuid4().hex[:8]}"}
    env.pop("ENVKIT_STACK", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-l", "-rA", "-v",
         f"--envkit-artifacts={tmp_path / 'artifacts'}", f"--envkit-logs={tmp_path / 'logs'}",
         "tests"], cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    report = run.stdout + run.stderr
    assert "1 failed" in report, report[-4000:]
    # The inner test reached its deliberate failure: the secret was the known one.
    assert "assert not StackSpec(" in report and "<redacted>" in report, report[-4000:]
    written = {p: p.read_text(errors="replace") for folder in (out, tmp_path / "artifacts",
                                                                 tmp_path / "logs")
               for p in sorted(folder.rglob("*")) if p.is_file()}
    kinds = {p.name.split(".", 1)[-1] for p in written}
    assert {"json", "log", "inspect.json", "txt"} <= kinds, sorted(map(str, written))
    assert any(p.name == "camera-service.inspect.json" for p in written)
    assert KNOWN_SECRET not in report
    leaked = [str(p) for p, text in written.items() if KNOWN_SECRET in text]
    assert leaked == []
    # Not left out but cut out: the inspect document still has the variable.
    inspect = next(t for p, t in written.items() if p.name == "camera-service.inspect.json")
    assert "CAMERA_SERVICE_JWT_SECRET=<redacted>" in inspect
    client = docker.from_env()
    try:
        left = client.containers.list(all=True, filters={
            "label": f"envkit.session={env['ENVKIT_SESSION']}"})
    finally:
        client.close()
    assert left == []

"""A team's compose file, as they wrote it, runs under ``pytest -n 2`` on the real engine.

The file fixes host ports 8002/8003/8554/9997 (held by other processes during the run),
waits on ``service_healthy``, builds from a context outside ``images/``, reads an
``env_file`` and shares a named volume. Each worker must get its own copy on ephemeral
ports, and nothing of the run may remain.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

import envkit
from envkit.camera.mediamtx import PACKAGES
from envkit.camera.stack import COMPOSE_FILE
from envkit.plugin import StackFactory

TESTSVC = Path(envkit.__file__).parent / "contexts" / "testsvc"
FIXED_PORTS = (8002, 8003, 8554, 9997)

COMPOSE = """\
# As a team would write it for `docker compose up`: fixed ports, a healthcheck, a volume.
services:
  media:
    build:
      context: ../src/web
      args: {BASE_IMAGE: "${ENVKIT_BASE_IMAGE:?export ENVKIT_BASE_IMAGE}"}
    command: [python3, /app/svc.py, serve, --port, "9997"]
    ports: ["8554:8554", "9997:9997"]
    environment: {SERVICE_NAME: media}
    healthcheck:
      test: [CMD, python3, -c, "import urllib.request as u; u.urlopen('http://127.0.0.1:9997/health')"]
      interval: 1s
      retries: 30
    volumes: [recordings:/recordings]
  app:
    build:
      context: ../src/web
      args: {BASE_IMAGE: "${ENVKIT_BASE_IMAGE:?export ENVKIT_BASE_IMAGE}"}
    command: python3 /app/svc.py serve --port 8003 --upstream http://media:9997/
    ports: ["8002:8002", "127.0.0.1:8003:8003"]
    env_file: app.env
    environment:
      SERVICE_NAME: ${APP_NAME:-app}
    depends_on:
      media: {condition: service_healthy}
    volumes: [recordings:/recordings]
    x-envkit:
      ready: [{http: {port: 8003, path: /health}}]
volumes:
  recordings:
"""

INNER_TESTS = """\
import json, os, urllib.request
from pathlib import Path

import pytest

OUT = Path(os.environ["COMPOSE_IT_OUT"])


def get(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def sh(stack, service, command):
    # As root: the image runs as nobody, and the volume is root's (Docker makes it so).
    code, out = stack.container(service).exec_run(["sh", "-c", command], user="0")
    assert code == 0, out
    return out.decode().strip()


@pytest.mark.parametrize("n", range(3))
def test_own_copy(envkit_stack, worker_id, n):
    host, port = envkit_stack.endpoint("app", 8003)
    assert (host, port != 8003) == ("127.0.0.1", True)
    for fixed in (8554, 9997):
        assert envkit_stack.endpoint("media", fixed)[1] != fixed
    body = get(envkit_stack.url("app", 8003, path="/"))
    assert body["service"] == "app" and body["upstream"]["service"] == "media"
    assert sh(envkit_stack, "app", "printenv FROM_ENV_FILE") == "team-file"
    # The named volume is shared by the stack's services, and is this worker's alone.
    sh(envkit_stack, "media", f"echo {worker_id} > /recordings/{worker_id}-{n}")
    files = sh(envkit_stack, "app", "ls /recordings").split()
    assert f"{worker_id}-{n}" in files
    assert all(f.startswith(worker_id + "-") for f in files), files
    (OUT / f"{worker_id}.json").write_text(json.dumps({
        "stack": envkit_stack.id, "ports": envkit_stack.ports("app"),
        "container": envkit_stack.container("app").id}))
"""


@contextlib.contextmanager
def held(ports: tuple[int, ...]) -> Iterator[list[int]]:
    """Listen on *ports* (as a running deployment would); ports already taken stay taken."""
    socks: list[socket.socket] = []
    taken: list[int] = []
    for port in ports:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            socks.append(sock)
        except OSError:
            sock.close()
        taken.append(port)
    try:
        yield taken
    finally:
        for sock in socks:
            sock.close()


def team_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    shutil.copytree(TESTSVC, root / "src" / "web")
    (root / "deploy").mkdir()
    (root / "deploy" / "docker-compose.yml").write_text(COMPOSE)
    (root / "deploy" / "app.env").write_text("# the team's settings\nFROM_ENV_FILE=team-file\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_team.py").write_text(INNER_TESTS)
    (root / "pytest.ini").write_text("[pytest]\nenvkit_stack = deploy/docker-compose.yml\n")
    return root


def leftovers(session: str) -> list[str]:
    client = docker.from_env()
    try:
        wanted = {"label": [f"envkit.session={session}"]}
        return ([c.name for c in client.containers.list(all=True, filters=wanted)]
                + [n.name for n in client.networks.list(filters=wanted)]
                + [v.name for v in client.volumes.list(filters=wanted)])
    finally:
        client.close()


def test_a_team_compose_file_runs_per_worker_beside_the_fixed_ports(tmp_path: Path) -> None:
    root = team_project(tmp_path / "team")
    out = tmp_path / "out"
    out.mkdir()
    session = f"compose-it-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "ENVKIT_SESSION": session, "COMPOSE_IT_OUT": str(out),
           "ENVKIT_PROJECT": "envkit-compose-it"}
    env.pop("ENVKIT_STACK", None)  # it would outrank the project's ini
    with held(FIXED_PORTS):
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q",
             "tests"], check=False, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout or "6 passed" in run.stdout, run.stdout[-2000:]
    seen = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert len(seen) == 2, "both workers ran a stack"
    assert seen[0]["stack"] != seen[1]["stack"]
    assert seen[0]["container"] != seen[1]["container"]
    assert seen[0]["ports"]["8003/tcp"] != seen[1]["ports"]["8003/tcp"]
    assert all(not p.endswith(":8003") for s in seen for p in s["ports"].values())
    assert leftovers(session) == []


@pytest.mark.parametrize("route", ["kit", "file"])
def test_the_default_stack_from_the_packaged_compose_file(
    route: str, envkit_stack_factory: StackFactory, monkeypatch: pytest.MonkeyPatch,
    envkit_session: envkit.Envkit,
) -> None:
    """The kit's ``default`` and the packaged file itself start the same containers."""
    if route == "file":
        environ = envkit_session.environ
        assert isinstance(environ, dict)
        monkeypatch.setitem(environ, "CAMERA_SERVICE_JWT_SECRET", "from-the-shell")
    stack = envkit_stack_factory("default" if route == "kit" else str(COMPOSE_FILE))
    cam = stack.container("camera-service").attrs
    env = dict(e.split("=", 1) for e in cam["Config"]["Env"])
    assert env["CAMERA_SERVICE_MEDIAMTX_HOST"] == "mediamtx"
    assert env["CAMERA_SERVICE_CAMERAS_POLL_INTERVAL"] == "0.5"
    assert (env["CAMERA_SERVICE_JWT_SECRET"] == "from-the-shell") == (route == "file")
    assert cam["HostConfig"]["Init"] is True
    assert cam["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    media = stack.container("mediamtx").attrs
    assert media["Config"]["Healthcheck"]["Interval"] == 2_000_000_000
    assert sorted(stack.ports("mediamtx")) == ["8554/tcp", "8888/tcp", "8889/tcp", "9997/tcp"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no docker-compose here")
def test_docker_compose_users_stay_visible_and_down_works_in_a_new_shell(
    tmp_path: Path, envkit_session: envkit.Envkit,
) -> None:
    """``python -m envkit.compose labels`` + docker-compose: ``envkit ps``/``down`` see it."""
    tag = envkit_session.images.ensure(envkit.Build(name="testsvc", context=TESTSVC))
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(f"version: '2.4'\nservices:\n  web:\n    image: {tag}\n"
                       "    ports: ['127.0.0.1::8080']\n    volumes: [data:/data]\n"
                       "volumes:\n  data: {}\n")
    stack = f"compose-it-{uuid.uuid4().hex[:8]}"
    override = tmp_path / "envkit-labels.yml"
    made = subprocess.run([sys.executable, "-m", "envkit.compose", "labels", str(compose),
                           "--stack", stack], check=True, capture_output=True, text=True)
    override.write_text(made.stdout)
    project = ["docker-compose", "-p", stack.replace("-", ""), "-f", str(compose), "-f",
               str(override)]
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    envkit_cli = Path(sys.executable).with_name("envkit")
    try:
        subprocess.run([*project, "up", "-d"], check=True, capture_output=True)
        ps = subprocess.run([envkit_cli, "ps", "--json"], check=True, capture_output=True,
                            text=True, env=clean)
        found = [s for s in json.loads(ps.stdout) if s["stack"] == stack]
        assert found and found[0]["detached"] is True, ps.stdout
        # A new shell, no variable set: envkit down removes container, network and volume.
        down = subprocess.run([envkit_cli, "down", stack], check=False, capture_output=True,
                              text=True, env=clean)
        assert down.returncode == 0, down.stderr
        assert "(3 resources)" in down.stderr
    finally:
        subprocess.run([*project, "down", "-v"], check=False, capture_output=True)


def _settings_of(containers: dict[str, dict[str, object]]) -> dict[str, object]:
    """What must agree between routes: env (less the secret), init, options, ports."""
    seen: dict[str, object] = {}
    for service, attrs in sorted(containers.items()):
        config, host = attrs["Config"], attrs["HostConfig"]
        assert isinstance(config, dict) and isinstance(host, dict)
        env = dict(e.split("=", 1) for e in config["Env"] or [])
        env.pop("CAMERA_SERVICE_JWT_SECRET", None)
        seen[service] = {
            "env": {k: v for k, v in env.items() if k.startswith("CAMERA_SERVICE_")},
            # Docker reads "no-new-privileges" and "no-new-privileges:true" alike.
            "init": host["Init"],
            "security": sorted(o.removesuffix(":true") for o in host["SecurityOpt"] or []),
            "ports": sorted(host["PortBindings"] or {}),
            "bound": sorted({b["HostIp"] for bs in (host["PortBindings"] or {}).values()
                             for b in bs}),
            # Least privilege, however started (docker-compose reads it from the file).
            "privileges": [config["User"], host["CapDrop"], host["CapAdd"], host["GroupAdd"],
                           host["ReadonlyRootfs"], host["PidsLimit"],
                           sorted(host.get("Tmpfs") or {})],
        }
    return seen


def _containers(client: docker.DockerClient, label: str) -> dict[str, dict[str, object]]:
    found = client.containers.list(filters={"label": label})
    return {c.labels.get("envkit.service") or c.labels["com.docker.compose.service"]: c.attrs
            for c in found}


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="no docker-compose here")
def test_python_cli_and_docker_compose_routes_start_the_same_default_stack(
    envkit_stack_factory: StackFactory, envkit_session: envkit.Envkit, tmp_path: Path,
) -> None:
    """One definition: the kit (Python), ``envkit up`` and ``docker-compose -f`` agree."""
    client = envkit_session.engine.client
    stack = envkit_stack_factory("default")
    python_route = _settings_of(_containers(client, f"envkit.stack={stack.id}"))
    env = {**os.environ, "ENVKIT_SESSION": envkit_session.session}
    envkit_cli = Path(sys.executable).with_name("envkit")
    up = subprocess.run([envkit_cli, "up", "--stack", "default", "--json", "--detach"],
                        env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert up.returncode == 0, up.stderr
    cli_id = json.loads(up.stdout)["stack"]
    try:
        cli_route = _settings_of(_containers(client, f"envkit.stack={cli_id}"))
    finally:
        subprocess.run([envkit_cli, "down", cli_id], env=env, check=True, capture_output=True)
    project = ["docker-compose", "-p", f"envkitroutes{uuid.uuid4().hex[:8]}",
               "-f", str(COMPOSE_FILE)]
    compose_env = {**os.environ, "CAMERA_SERVICE_JWT_SECRET": "x",
                   "ENVKIT_BASE_IMAGE": envkit_session.images.ensure_base(PACKAGES)}
    try:
        subprocess.run([*project, "up", "-d", "--build"], env=compose_env, check=True,
                       capture_output=True)
        compose_route = _settings_of(_containers(
            client, f"com.docker.compose.project={project[2]}"))
    finally:
        subprocess.run([*project, "down", "-v", "--rmi", "local"], env=compose_env,
                       check=False, capture_output=True)
    assert python_route == cli_route == compose_route
    assert set(python_route) == {"mediamtx", "camera-service"}

"""A second Docker engine for the tests: a private ``dockerd`` started and stopped here.

It shares the machine's kernel with the main engine, so it is kept out of that engine's
way: its own data root, exec root, socket, pid file and containerd namespace, a default
bridge of its own, and no iptables management (``--iptables=false``: two daemons
rewriting the same chains would break each other). Found on this machine:

- ``--bridge=none`` must not be used beside another daemon: at start, dockerd then
  deletes any host interface named ``docker0`` (it assumes its own, left from an earlier
  configuration), and the main engine loses its default bridge: every ``docker build``
  RUN step and every container on the default network fails ("could not find bridge
  docker0") until docker0 is recreated. So a bridge interface is made here for the second
  daemon (``--bridge=<it>``, outside both daemons' pools) and deleted on stop.

- The main daemon's ``/etc/docker/daemon.json`` would be read too (it names the main data
  root, which a second daemon must not share), so an empty ``--config-file`` is given.
- Both daemons would draw stack subnets from the same default pools; a private
  ``--default-address-pool`` keeps their bridges from overlapping.
- Port publishing works through docker-proxy (userland proxy), iptables or not.
- Traffic between two containers on one of its bridges crosses the host's FORWARD chain
  (br_netfilter is loaded), whose policy the main daemon set to DROP; without iptables
  nothing lets it through, so a stack's services could not reach each other. One rule in
  ``DOCKER-USER`` accepts traffic within the private pool, and is removed on stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest


class DockerdUnavailable(Exception):
    """``dockerd`` cannot be started here (not installed, not root, does not answer)."""


@dataclass(frozen=True, kw_only=True)
class Dockerd:
    """A running private engine.

    :param url: its ``unix://`` socket URL; :param pool: its stack subnets.
    """

    url: str
    pool: str
    folder: Path
    data_root: Path
    process: subprocess.Popen[bytes]
    rule: tuple[str, ...] | None
    bridge: str

    @property
    def log(self) -> str:
        """The daemon's log so far (for failure messages)."""
        path = self.folder / "dockerd.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _data_root(folder: Path) -> Path:
    """Under /dev/shm when it has room: loading an image there is about a third faster."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 << 30:
        return Path(tempfile.mkdtemp(prefix="envkit-e2-data-", dir=shm))
    return folder / "data"


def _accept_rule(pool: str) -> tuple[str, ...] | None:
    """Let the pool's containers talk to each other through a FORWARD policy of DROP."""
    iptables = shutil.which("iptables")
    if iptables is None:
        return None
    rule = ("DOCKER-USER", "-s", pool, "-d", pool, "-j", "ACCEPT")
    listed = subprocess.run([iptables, "-S", "DOCKER-USER"], check=False, capture_output=True)
    if listed.returncode != 0:
        rule = ("FORWARD", *rule[1:])
    done = subprocess.run([iptables, "-I", *rule], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise DockerdUnavailable(f"iptables -I {' '.join(rule)} failed: {done.stderr.strip()}")
    return rule


def _bridge(index: int) -> str:
    """Make the second daemon's default bridge (dockerd needs a named one to exist)."""
    name = f"envkit-e2-{index % 50}"
    ip = shutil.which("ip")
    if ip is None:
        raise DockerdUnavailable("no `ip` command to make the second engine's bridge")
    subprocess.run([ip, "link", "del", name], check=False, capture_output=True)  # a leftover
    for step in (["link", "add", name, "type", "bridge"],
                 ["addr", "add", f"10.199.{index % 50}.1/24", "dev", name],
                 ["link", "set", name, "up"]):
        done = subprocess.run([ip, *step], check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise DockerdUnavailable(f"ip {' '.join(step)} failed: {done.stderr.strip()}")
    return name


def start(*, index: int = 0, timeout: float = 60.0, pool_base: int = 16,
          pool_size: int = 24) -> Dockerd:
    """Start a private engine; *index* picks its subnet pool (one per concurrent engine).

    Its default address pool is ``10.<200+index>.0.0/<pool_base>`` cut into
    ``/<pool_size>`` networks: 256 by default; ``pool_base=24, pool_size=26`` gives 4,
    for tests of an engine whose pools run out. The accept rule covers the whole /16.

    :raises DockerdUnavailable: with the reason and the daemon's log tail.
    """
    binary = shutil.which("dockerd")
    if binary is None:
        raise DockerdUnavailable("dockerd is not installed")
    if os.geteuid() != 0:
        raise DockerdUnavailable("dockerd needs root, and these tests do not run as root")
    # Short: the socket path (and containerd's under the exec root) must fit 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="envkit-e2-", dir="/tmp"))
    (folder / "daemon.json").write_text(json.dumps({}))
    pool = f"10.{200 + index % 50}.0.0/16"
    base = f"10.{200 + index % 50}.0.0/{pool_base}"
    data_root = _data_root(folder)
    # containerd refuses a namespace with "_" next to "-" or at an end, and mkdtemp's random
    # part may hold "_": hex is always valid.
    namespace = f"envkit-e2-{secrets.token_hex(4)}"
    bridge = _bridge(index)
    cmd = [binary, "--config-file", str(folder / "daemon.json"), "--data-root", str(data_root),
           "-H", f"unix://{folder}/s.sock", "--exec-root", str(folder / "x"),
           "--pidfile", str(folder / "pid"), f"--bridge={bridge}", "--iptables=false",
           "--containerd-namespace", namespace,
           "--containerd-plugins-namespace", f"{namespace}-plugins",
           "--default-address-pool", f"base={base},size={pool_size}"]
    with (folder / "dockerd.log").open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    engine = Dockerd(url=f"unix://{folder}/s.sock", pool=pool, folder=folder,
                     data_root=data_root, process=process, rule=None, bridge=bridge)
    try:
        _wait_until_up(engine, timeout)
        engine = Dockerd(url=engine.url, pool=pool, folder=folder, data_root=data_root,
                         process=process, rule=_accept_rule(pool), bridge=bridge)
    except BaseException:
        stop(engine)
        raise
    return engine


@contextlib.contextmanager
def running(*, index: int, pool_base: int = 16, pool_size: int = 24) -> Iterator[Dockerd]:
    """A private engine for a test's fixture: started, yielded, then stopped.

    The test is skipped only when the engine cannot start here (the skip says why).

    The main engine's default bridge must survive both the start and the stop (a
    ``--bridge=none`` daemon deleted it: see the module docstring), so that is asserted.
    Engines running at once need distinct *index* values (their bridge names and pools).
    """
    docker0 = Path("/sys/class/net/docker0")
    had_docker0 = docker0.exists()
    try:
        engine = start(index=index, pool_base=pool_base, pool_size=pool_size)
    except DockerdUnavailable as exc:
        pytest.skip(f"a second engine could not be started here: {exc}")
    try:
        assert docker0.exists() == had_docker0, "starting the second dockerd removed docker0"
        yield engine
    finally:
        stop(engine)
    assert docker0.exists() == had_docker0, "stopping the second dockerd removed docker0"


def worker_index(offset: int = 0) -> int:
    """*offset* plus this xdist worker's number: each worker's engines get their own index."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return offset + (int(worker[2:]) if worker.startswith("gw") else 0)


def _wait_until_up(engine: Dockerd, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            raise DockerdUnavailable(f"dockerd exited with status {engine.process.returncode}:"
                                     f"\n{engine.log[-2000:]}")
        with contextlib.suppress(docker.errors.DockerException, OSError):
            client = docker.DockerClient(base_url=engine.url, timeout=5)
            try:
                client.ping()
                return
            finally:
                client.close()
        time.sleep(0.2)
    raise DockerdUnavailable(f"dockerd did not answer within {timeout:.0f}s:\n"
                             f"{engine.log[-2000:]}")


def stop(engine: Dockerd) -> None:
    """Stop the daemon (its containers with it), drop its rule, remove its files."""
    if engine.rule is not None and (iptables := shutil.which("iptables")):
        subprocess.run([iptables, "-D", *engine.rule], check=False, capture_output=True)
    if engine.process.poll() is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(engine.process.pid, signal.SIGKILL)
            engine.process.wait(timeout=10)
    _unmount_under(engine.folder, engine.data_root)
    subprocess.run(["ip", "link", "del", engine.bridge], check=False, capture_output=True)
    shutil.rmtree(engine.folder, ignore_errors=True)
    shutil.rmtree(engine.data_root, ignore_errors=True)


def _unmount_under(*roots: Path) -> None:
    """Lazily unmount what a daemon killed hard left mounted (overlays, netns files)."""
    prefixes = tuple(f"{root}/" for root in roots)
    with contextlib.suppress(OSError):
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for point in sorted((m for m in mounts if m.startswith(prefixes)), reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

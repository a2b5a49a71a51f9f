"""A private ``sshd`` for the tests: an ``ssh://`` engine reached the way users reach one.

It listens on 127.0.0.1 at a free port, with a throwaway host key and client key in a temp
folder, and lets in only that key (no passwords, no PAM). The client side is the ``ssh``
binary that envkit (as the docker CLI) runs: OpenSSH reads ``~/.ssh/config`` from the
passwd entry's home, not ``$HOME``, so a test cannot hand it a private config by the
environment; a wrapper named ``ssh`` that adds ``-F <config>`` goes first on ``PATH``
instead. That config pins the host key (``StrictHostKeyChecking yes``) and never prompts
(``BatchMode yes``), so a failure is an error, never a question on a terminal.

The login user runs ``docker system dial-stdio`` remotely. Without ``docker_host`` that
reaches the remote user's default engine; with it, sshd's ``SetEnv`` gives the session
``DOCKER_HOST`` (how a daemon on another socket is reached over ssh).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SKIP_FIX = ("apt-get install openssh-server (`make host-tools` and .ci/run install it, so CI "
            "runs this test)")


@dataclass(frozen=True, kw_only=True)
class Sshd:
    """A running private sshd.

    :param url: the ``ssh://user@127.0.0.1:port`` engine URL through it.
    :param bin_dir: the folder whose ``ssh`` wrapper must come first on ``PATH``.
    """

    url: str
    user: str
    port: int
    bin_dir: Path
    folder: Path

    @property
    def log(self) -> str:
        """The daemon's log so far (for failure messages)."""
        path = self.folder / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keys(folder: Path) -> None:
    for name in ("host_key", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "envkit-test",
                        "-f", str(folder / name)], check=True, capture_output=True)
    shutil.copy(folder / "id.pub", folder / "authorized_keys")


def _configs(folder: Path, port: int, docker_host: str | None) -> None:
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder}/host_key\n"
        f"AuthorizedKeysFile {folder}/authorized_keys\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {folder}/sshd.pid\n"
        + (f"SetEnv DOCKER_HOST={docker_host}\n" if docker_host else ""))
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (folder / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {folder}/id\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {folder}/known_hosts\n  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n  ConnectTimeout 10\n")
    wrapper = folder / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {folder}/ssh_config "$@"\n')
    wrapper.chmod(0o755)


@contextlib.contextmanager
def running(*, docker_host: str | None = None, timeout: float = 30.0) -> Iterator[Sshd]:
    """A private sshd for a test, stopped and its folder removed after.

    The test is skipped (saying why and the fix) when sshd or the ssh client is absent.
    """
    sshd = shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/sbin/sshd") if os.access(p, os.X_OK)), None)
    if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip(f"no sshd/ssh/ssh-keygen here for an ssh:// engine: {SKIP_FIX}")
    if os.geteuid() == 0:
        # sshd refuses to start as root without its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="envkit-sshd-"))
    port = _free_port()
    _keys(folder)
    _configs(folder, port, docker_host)
    user = getpass.getuser()
    with (folder / "sshd.log").open("wb") as log:
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Sshd(url=f"ssh://{user}@127.0.0.1:{port}", user=user, port=port,
                  bin_dir=folder / "bin", folder=folder)
    try:
        _wait_until_listening(process, server, timeout)
        yield server
    finally:
        if process.poll() is None:
            # The session children too (start_new_session made sshd a group leader).
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_listening(process: subprocess.Popen[bytes], server: Sshd,
                          timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"sshd exited with status {process.returncode}:\n{server.log}")
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", server.port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"sshd did not listen within {timeout:.0f}s:\n{server.log}")

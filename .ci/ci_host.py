"""The host side of ``make ci-local``: the runner user, the workspace, the mount namespace.

Why a namespace: the Debian keyring, mmdebstrap and /root are hidden from the job's steps
only; the machine (and everyone else on it) keeps them.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from gh_stand_ins import note

REPO = Path(__file__).resolve().parent.parent
USER = "envkit-ci"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Debian installs its archive keys here too; Ubuntu does not, and mmdebstrap reads them.
TRUSTED = Path("/etc/apt/trusted.gpg.d")


def ensure_runner_user() -> pwd.struct_passwd:
    """The runner-like user: a home, passwordless sudo, the docker group (as on GitHub)."""
    if shutil.which("sudo") is None:
        note("installing sudo (the runner user needs it)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "sudo"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
    subprocess.run(["usermod", "-aG", "docker", USER], check=True)
    sudoers = Path(f"/etc/sudoers.d/{USER}")
    sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    return pwd.getpwnam(USER)


def checkout(dest: Path, user: pwd.struct_passwd) -> None:
    """Stand-in for actions/checkout: the work tree's files (as .ci/example copies them)."""
    dest.mkdir(parents=True)
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True).stdout
    present = b"".join(f + b"\0" for f in files.split(b"\0") if f and (REPO / f.decode()).exists())
    subprocess.run(["tar", "-C", str(REPO), "--null", "-T", "-", "-cf", str(dest / ".tree.tar")],
                   input=present, check=True)
    subprocess.run(["tar", "-xf", ".tree.tar"], cwd=dest, check=True)
    (dest / ".tree.tar").unlink()
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(dest)], check=True)


def mount(*args: str) -> None:
    """``mount ARGS`` (inside the private namespace only)."""
    subprocess.run(["mount", *args], check=True)


def private_namespace() -> None:
    """Move this process (and so every step) into a private mount namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        sys.exit(f"ci-local: unshare(CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())}")
    mount("--make-rprivate", "/")


def hide_debian_keyring(run_dir: Path) -> None:
    """Ubuntu has no Debian keyring: hide it from mmdebstrap, keep host apt working.

    With the keyring file hidden but Debian's keys left in /etc/apt/trusted.gpg.d,
    mmdebstrap still verifies Debian (checked), so those are hidden too.

    /usr/share/keyrings becomes a tmpfs holding the other keyrings, so `apt-get install
    --reinstall debian-archive-keyring` (make host-tools) writes the file there, as on Ubuntu.
    Host apt sources that name the keyring get a private copy (Ubuntu's apt has its own keys).
    """
    copy = run_dir / "host-apt-debian-keyring.gpg"
    shutil.copy2(KEYRING, copy)
    _tmpfs_without(KEYRING.parent, KEYRING.name, run_dir / "keyrings")
    _tmpfs_without(TRUSTED, "debian-archive-", run_dir / "trusted")
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for source in sources:
        if source.is_file() and str(KEYRING) in source.read_text():
            private = run_dir / f"apt-{source.name}"
            private.write_text(source.read_text().replace(str(KEYRING), str(copy)))
            mount("--bind", str(private), str(source))
    note(f"{KEYRING} and {TRUSTED}/debian-archive-* hidden (tmpfs); host apt reads Debian "
         "with a private copy")


def _tmpfs_without(directory: Path, prefix: str, stage: Path) -> None:
    """Cover *directory* with a tmpfs holding its files, less those starting with *prefix*."""
    shutil.copytree(directory, stage, symlinks=True,
                    ignore=lambda _d, names: [n for n in names if n.startswith(prefix)])
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", str(directory))
    for path in stage.iterdir():
        shutil.copy2(path, directory / path.name, follow_symlinks=False)


def hide_mmdebstrap(run_dir: Path) -> None:
    """Ubuntu's runner has no mmdebstrap: hide it.

    Only in jobs that never install host tools: dpkg cannot replace a file that is a mount point.
    """
    for tool in ("mmdebstrap", "debootstrap"):
        found = shutil.which(tool)
        if found:
            blank = run_dir / f"no-{tool}"
            blank.write_text("")
            blank.chmod(0o644)
            mount("--bind", str(blank), found)
            note(f"{found} hidden (this job never runs make host-tools)")


def expose_pyenv(run_dir: Path) -> None:
    """Let the runner user reach pyenv's Pythons, and nothing else of /root.

    /root is closed to other users, and pyenv's Pythons link libpython by absolute path, so
    they cannot be moved: /root becomes a tmpfs holding only /root/.pyenv/versions.
    """
    stage = run_dir / "pyenv-versions"
    stage.mkdir()
    # Read-only both times: neither a step nor the workspace's removal can touch pyenv.
    mount("--bind", "/root/.pyenv/versions", str(stage))
    mount("-o", "remount,bind,ro", str(stage))
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/root")
    Path("/root/.pyenv/versions").mkdir(parents=True)
    mount("--bind", str(stage), "/root/.pyenv/versions")
    mount("-o", "remount,bind,ro", "/root/.pyenv/versions")
    subprocess.run(["umount", str(stage)], check=True)


def remove_workspace(run_dir: Path) -> None:
    """Remove *run_dir*, unless something is still mounted inside (never delete through one)."""
    mounted = [p for p in run_dir.rglob("*") if p.is_dir() and os.path.ismount(p)]
    if mounted:
        note(f"{run_dir} kept: {mounted} still mounted")
        return
    shutil.rmtree(run_dir, ignore_errors=True)

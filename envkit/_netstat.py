"""Which addresses listen on a TCP port inside a container: the proof behind ``Tcp``.

The kernel lists a network namespace's sockets in ``/proc/net/tcp`` and ``tcp6``. They
are read from this host's ``/proc/<pid>/net`` when the engine runs here and this process
may look (a fraction of a millisecond); otherwise by the caller with one exec of ``cat``
in the container (tens to hundreds of milliseconds, more on a loaded engine).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

#: What the in-container look runs; works in any image that has ``cat``.
PROC_NET_TCP = ("cat", "/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"  # TCP_LISTEN in the "st" column


def listeners(proc_net_tcp: str, port: int) -> set[str] | None:
    """The local addresses listening on TCP *port*, from ``/proc/net/tcp`` and ``tcp6`` text.

    The kernel prints addresses as hexadecimal 32-bit words in the engine host's byte
    order, read here as little-endian (x86-64 and arm64: every Docker host in practice);
    IPv4-mapped IPv6 addresses are given as IPv4.

    :returns: the addresses (``{"0.0.0.0"}``, ``{"127.0.0.1", "::1"}``), empty when
        nothing listens on *port*, or ``None`` when the text has no socket table at all
        (the command failed: no ``cat`` or no ``/proc`` in the image).
    """
    found: set[str] = set()
    tables = 0
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if fields[:2] == ["sl", "local_address"]:
            tables += 1
            continue
        if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
            continue
        address, _, hex_port = fields[1].partition(":")
        try:
            if int(hex_port, 16) == port:
                found.add(_address(address))
        except ValueError:
            continue
    return found if tables else None


def _address(words: str) -> str:
    raw = b"".join(bytes.fromhex(words[i:i + 8])[::-1] for i in range(0, len(words), 8))
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def host_view(
    target: object, *, tables: Sequence[str] = ("tcp", "tcp6"), proc: Path = Path("/proc"),
) -> str | None:
    """The socket *tables* of *target*'s container, read from this host's ``/proc``.

    Only for targets that are containers (runtime's handle); ``None`` whenever this host
    cannot vouch for the answer: a remote engine, another PID namespace, no permission,
    or a process that is not (or no longer) the container's. The PID the engine reports
    is trusted only if that process's cgroup names the container's id, and every file is
    read through one directory handle, so a PID reused in between cannot answer. Each
    table costs a walk of the kernel's whole TCP hash (about 6 ms of CPU here), hence
    *tables*: a caller satisfied by ``tcp`` need not read ``tcp6``.

    :param proc: where procfs is mounted (tests pass a directory of their own).
    """
    attrs = getattr(getattr(target, "container", None), "attrs", None)
    if not isinstance(attrs, dict):
        return None
    pid, ident = attrs.get("State", {}).get("Pid"), attrs.get("Id")
    if not isinstance(pid, int) or pid <= 0 or not isinstance(ident, str) or len(ident) < 32:
        return None
    try:
        folder = os.open(proc / str(pid), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if ident not in _read(folder, "cgroup"):
            return None
        return "".join(_read(folder, f"net/{name}", missing_ok=name == "tcp6")
                       for name in tables)
    except OSError:
        return None
    finally:
        os.close(folder)


def _read(folder: int, name: str, *, missing_ok: bool = False) -> str:
    try:
        with open(name, encoding="ascii", errors="replace",
                  opener=lambda path, flags: os.open(path, flags, dir_fd=folder)) as handle:
            return handle.read()
    except FileNotFoundError:
        if missing_ok:  # tcp6 on a kernel without IPv6
            return ""
        raise

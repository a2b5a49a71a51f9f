"""Least privilege for service containers, and keeping secrets out of what envkit prints.

Every container envkit starts drops all Linux capabilities and gets back exactly those
its spec's ``cap_add`` names (Docker would grant 14 by default, :data:`DOCKER_DEFAULTS`),
runs with ``no-new-privileges``, and has a process limit (:data:`DEFAULT_PIDS_LIMIT`
unless the spec says otherwise). These are the checks and normal forms of those fields,
pure, so the spec types stay about specs.

Secrets: an environment variable whose name looks like a secret (:func:`is_secret_name`)
is shown as ``<redacted>`` by a spec's ``repr``, and its value is cut out of what envkit
writes about a stack (failure reports, artifacts), see :func:`redact`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from envkit._spec_parts import ReadOnlyMap, is_account
from envkit.errors import SpecError

#: The capabilities of Linux 5.x/6.x as Docker spells them (without ``CAP_``).
CAPABILITIES = frozenset({
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF",
    "CHECKPOINT_RESTORE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID",
    "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE",
    "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT",
    "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE",
    "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
})
#: What Docker grants a container unless told otherwise; ``cap_add=DOCKER_DEFAULTS`` gives
#: an image that needs them all its usual set back (still without ``no-new-privileges``'
#: escape hatches).
DOCKER_DEFAULTS = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                   "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP",
                   "SETUID", "SYS_CHROOT")
#: Processes (threads count) a container may have unless its spec says otherwise: far above
#: what a test service runs, far below what a fork bomb needs to starve the machine.
DEFAULT_PIDS_LIMIT = 1024
_MIN_MEMORY = 6 * 1024 * 1024  # the engine refuses less
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_MEMORY = re.compile(r"^(\d+)\s*([bkmg]?)b?$")
_SECRET = re.compile(r"SECRET|TOKEN|PASSW|PASSPHRASE|PRIVATE|CREDENTIAL|API_?KEY|"
                     r"ACCESS_?KEY|AUTH", re.IGNORECASE)
_MIN_REDACTED = 6  # shorter values would cut ordinary words out of logs
REDACTED = "<redacted>"


def _fail(service: str | None, field: str, value: object, problem: str,
          fix: str) -> SpecError:
    return SpecError(stack=None, service=service, field=field, value=value, problem=problem,
                     fix=fix)


def capabilities(value: object, *, field: str, service: str | None,
                 allow_all: bool = False) -> tuple[str, ...]:
    """*value* (a name or a list of names, ``CAP_`` optional) as sorted upper-case names.

    :raises SpecError: for a name Linux does not have, or ``ALL`` where not allowed.
    """
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not all(isinstance(v, str) for v in items):
        raise _fail(service, field, value, "must be a list of capability names",
                    f"write e.g. {field}=['CHOWN', 'SETUID']")
    names = {v.strip().upper().removeprefix("CAP_") for v in items}
    if "ALL" in names and not allow_all:
        raise _fail(service, field, "ALL", "would hand the container every capability",
                    "name the capabilities the service needs (envkit never runs privileged "
                    f"containers); Docker's usual set is {', '.join(DOCKER_DEFAULTS)}")
    unknown = sorted(names - CAPABILITIES - {"ALL"})
    if unknown:
        raise _fail(service, field, unknown[0], "not a Linux capability",
                    "use names such as CHOWN, SETUID, SETGID, NET_BIND_SERVICE, DAC_OVERRIDE "
                    "(see capabilities(7))")
    return tuple(sorted(names))


def group_names(value: object, *, service: str | None) -> tuple[str, ...]:
    """``group_add``: a list of group names or numeric ids (from 0), as strings.

    A single name or id is refused, as compose refuses it: ``group_add=5`` is more
    likely a slip than a group.

    :raises SpecError: for anything but a list of names and ids, naming the bad entry.
    """
    fix = "write e.g. group_add=['video'] or group_add=[44]"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise _fail(service, "group_add", value, "must be a list of group names or ids", fix)
    for item in value:
        if not is_account(item.strip() if isinstance(item, str) else item):
            raise _fail(service, "group_add", item, "not a group name or an id from 0 "
                        "(names: letters, digits, '_', '.', '-')", fix)
    return tuple(str(v).strip() for v in value)


def pids_limit(value: object, *, service: str | None) -> int | None:
    """A positive process limit, or ``None`` for none (compose's ``-1`` and ``0`` too).

    :raises SpecError: for anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(service, "pids_limit", value, "must be a whole number of processes",
                    f"write e.g. pids_limit=256 (None: no limit; default {DEFAULT_PIDS_LIMIT})")
    return None if value in (0, -1) else _positive(value, "pids_limit", service)


def _positive(value: int, field: str, service: str | None) -> int:
    if value < 0:
        raise _fail(service, field, value, "must not be negative",
                    f"write e.g. {field}=256, or None for no limit")
    return value


def memory_bytes(value: object, *, service: str | None) -> int | None:
    """``mem_limit`` in bytes: a number of bytes, or ``"512m"``-style (b, k, m, g).

    :raises SpecError: for another spelling, or less than the engine's minimum (6 MiB).
    """
    if value is None:
        return None
    match = None if isinstance(value, bool) else _MEMORY.match(str(value).strip().lower())
    if match is None:
        raise _fail(service, "mem_limit", value, "not an amount of memory",
                    "write e.g. mem_limit='512m' (b, k, m or g), or a number of bytes")
    amount = int(match.group(1)) * _UNITS[match.group(2)]
    if amount < _MIN_MEMORY:
        raise _fail(service, "mem_limit", value, "below the engine's minimum of 6 MiB",
                    "give at least '6m'; a test service usually needs 64m or more")
    return amount


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (``JWT_SECRET``...)."""
    return bool(_SECRET.search(name))


class Environment(ReadOnlyMap):
    """A service's environment: read-only, and its ``repr`` hides secret-looking values.

    Specs end up in reprs (pytest's ``-l``, failure reports, ``stack.json`` artifacts);
    the values themselves are there for whoever reads ``spec.environment[...]``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        shown = {k: REDACTED if is_secret_name(k) else v for k, v in self._data.items()}
        return repr(shown)

    def secrets(self) -> frozenset[str]:
        """The values of the secret-looking variables, those :func:`redact` cuts out."""
        return frozenset(v for k, v in self._data.items()
                         if is_secret_name(k) and len(v) >= _MIN_REDACTED)


def secret_values(environments: Iterable[Mapping[str, str]]) -> frozenset[str]:
    """The values of every secret-looking variable of *environments*."""
    found: set[str] = set()
    for env in environments:
        found |= Environment(env).secrets()
    return frozenset(found)


def redact(text: str, secrets: Iterable[str]) -> str:
    """*text* with every one of *secrets* replaced by ``<redacted>``, longest first."""
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text

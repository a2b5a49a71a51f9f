"""Reading a compose file: YAML with line numbers, ``.env`` files, durations, and the subset.

The data is loaded by PyYAML's safe loader as usual; the same text is also composed into
nodes, whose marks give each key's line, so that every key outside envkit's subset of the
compose specification is reported in one error with its line (a silent drop would run a
stack other than the one written).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from envkit import _yamlread

Lines = dict[tuple[str, ...], int]

#: Keys of a service envkit runs, following the compose specification.
SERVICE_KEYS = frozenset({
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "depends_on", "healthcheck", "devices", "volumes", "tmpfs", "user", "init",
    "stop_grace_period", "stop_signal", "labels", "profiles", "networks", "security_opt",
    "cap_add", "cap_drop", "group_add", "read_only", "pids_limit", "mem_limit",
})
_NESTED: dict[str, frozenset[str]] = {
    "build": frozenset({"context", "dockerfile", "args", "target"}),
    "healthcheck": frozenset({"test", "interval", "timeout", "retries", "start_period",
                              "disable"}),
    "x-envkit": frozenset({"ready", "ready_timeout", "build"}),
}
_TOP_KEYS = frozenset({"version", "name", "services", "volumes", "networks"})
_DEPENDENCY_KEYS = frozenset({"condition"})
_PORT_KEYS = frozenset({"target", "published", "protocol", "host_ip", "mode"})
_MOUNT_KEYS = frozenset({"type", "source", "target", "read_only"})

#: What to do instead, for the keys teams' files use most that envkit does not run.
ADVICE = {
    "container_name": "remove it: envkit names containers per worker (a fixed name collides "
                      "between workers)",
    "network_mode": "remove it: every service joins the stack's private network",
    "restart": "remove it: a test stack is not restarted behind the tests' back "
               "(stack.restart(service) restarts on purpose)",
    "privileged": "remove it: envkit never runs privileged containers",
    "links": "remove it: services reach each other by name on the stack's network",
    "extends": "inline the extended service (YAML anchors work)",
    "secrets": "pass the value through environment: (${secret:NAME} in stack files)",
    "configs": "mount the file with volumes: ./file:/path:ro",
    "hostname": "remove it: a service's hostname is its name",
    "external": "remove it: envkit creates the stack's volumes and network, per worker",
    "name": "remove it: envkit names volumes and networks per stack (a fixed name collides)",
    "driver": "remove it: envkit creates local volumes and a bridge network",
    "start_interval": "remove it (Docker 25+); use interval",
}
_GENERIC = "remove it, or set it in the image (Dockerfile); README 'Compose files' lists " \
    "what envkit runs"


def read(path: Path) -> tuple[Any, Lines]:
    """The file's data and the line of every key, by its path of keys.

    :raises SpecError: when the file cannot be read or is not YAML.
    """
    data, node = _yamlread.load_file(path)
    lines: Lines = {}
    if node is not None:
        _mark(node, (), lines)
    return data, lines


def _mark(node: yaml.Node, path: tuple[str, ...], lines: Lines) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: keys of the anchor
                for merged in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                    _mark(merged, path, lines)
                continue
            here = (*path, str(key.value))
            lines.setdefault(here, key.start_mark.line + 1)
            _mark(value, here, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, str(index)), item.start_mark.line + 1)
            _mark(item, (*path, str(index)), lines)


def line_of(lines: Lines, *path: str) -> int | None:
    """The line of the deepest key of *path* that has one."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


@dataclass(frozen=True)
class Unsupported:
    """A key outside envkit's subset: where it is and what to do."""

    path: tuple[str, ...]
    line: int | None

    def __str__(self) -> str:
        key = self.path[-1]
        where = f"line {self.line}" if self.line else "(no line)"
        return f"{where}: {'.'.join(self.path)}: {ADVICE.get(key, _GENERIC)}"


def unsupported(data: Mapping[str, Any], lines: Lines) -> list[Unsupported]:
    """Every key of *data* outside the subset, in file order."""
    found: list[tuple[str, ...]] = []
    _extra(data, (), _TOP_KEYS, found)
    for name, service in _items(data.get("services")):
        here = ("services", name)
        _extra(service, here, SERVICE_KEYS | {"x-envkit"}, found)
        for key, allowed in _NESTED.items():
            _extra(service.get(key), (*here, key), allowed, found)
        for dep, spec in _items(service.get("depends_on")):
            _extra(spec, (*here, "depends_on", dep), _DEPENDENCY_KEYS, found)
        for net, spec in _items(service.get("networks")):
            _extra(spec, (*here, "networks", net), frozenset({"aliases"}), found)
        for key, allowed in (("ports", _PORT_KEYS), ("volumes", _MOUNT_KEYS)):
            entries = service.get(key)
            for index, entry in enumerate(entries if isinstance(entries, list) else []):
                _extra(entry, (*here, key, str(index)), allowed, found)
    for kind in ("volumes", "networks"):
        for name, spec in _items(data.get(kind)):
            _extra(spec, (kind, name), frozenset(), found)
    return sorted((Unsupported(p, line_of(lines, *p)) for p in found),
                  key=lambda u: (u.line or 0, u.path))


def _items(value: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in value.items()] if isinstance(value, Mapping) else []


def _extra(value: Any, path: tuple[str, ...], allowed: frozenset[str],
           found: list[tuple[str, ...]]) -> None:
    if isinstance(value, Mapping):
        found.extend((*path, str(k)) for k in value
                     if str(k) not in allowed and not str(k).startswith("x-"))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(value: object) -> float | None:
    """A compose duration (``1m30s``, ``500ms``, ``10``) in seconds; ``None`` if malformed."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments, blank lines, ``export``, quotes) of an env file.

    :raises OSError: when the file cannot be read.
    """
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # an unquoted value ends at an inline comment
            value = value.split(" #", 1)[0].rstrip()
        if eq:
            values[key.strip()] = value
    return values


_BARE = re.compile(r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)")


def braced(text: str) -> str:
    """Compose's bare ``$VAR`` written ``${VAR}``, so one interpolator serves both forms."""
    return _BARE.sub(lambda m: m.group(0) if m.group(1) is None else "${" + m.group(1) + "}",
                     text)

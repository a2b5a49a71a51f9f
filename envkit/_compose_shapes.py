"""Refusing a compose file that is not of envkit's subset, before anything reads its values.

Two checks, each pointing at the file's line: the first value of a YAML shape compose
does not allow (:func:`check_shapes`), so that interpolation and conversion only ever see
the shapes they expect; then every key outside the subset at once
(:func:`refuse_unsupported`: a silent drop would run a stack other than the one written).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envkit import _compose_yaml
from envkit.errors import SpecError

__all__ = ["check_shapes", "refuse_unsupported"]

#: The YAML shapes compose allows for each key of the subset (before interpolation).
_SHAPES: dict[str, tuple[tuple[type, ...], str]] = {
    "build": ((str, Mapping), "a context path or a mapping {context, dockerfile, args, ...}"),
    "healthcheck": ((Mapping,), "a mapping {test, interval, timeout, retries, ...}"),
    "x-envkit": ((Mapping,), "a mapping {ready, ready_timeout, build}"),
    "environment": ((Mapping, list), "a mapping or a list of NAME=value"),
    "labels": ((Mapping, list), "a mapping or a list of key=value"),
    "depends_on": ((Mapping, list), "a list of service names or a mapping name: {condition}"),
    "ports": ((list,), "a list, e.g. ['8080', '127.0.0.1:8554:8554']"),
    "expose": ((list,), "a list of ports"),
    "devices": ((list,), "a list of host[:container[:perms]]"),
    "volumes": ((list,), "a list, e.g. ['data:/var/lib/data', './in:/in:ro']"),
    "profiles": ((list,), "a list of profile names"),
    "tmpfs": ((str, list), "a path or a list of paths"),
    "env_file": ((str, list), "a path or a list of paths"),
    "command": ((str, list), "a string or a list of arguments"),
    "entrypoint": ((str, list), "a string or a list of arguments"),
    "cap_add": ((list,), "a list of capabilities, e.g. [CHOWN, SETUID]"),
    "cap_drop": ((list,), "a list of capabilities, e.g. [ALL]"),
    "group_add": ((list,), "a list of group names or ids, e.g. [video]"),
    "read_only": ((bool,), "true or false"),
    "pids_limit": ((int, str), "a number of processes, e.g. 256 (-1: no limit)"),
    "mem_limit": ((int, str), "an amount of memory, e.g. 512m"),
    "security_opt": ((list,), "a list, e.g. [no-new-privileges]"),
    "networks": ((Mapping, list), "a list of network names or a mapping name: {aliases}"),
}
#: Shapes of the items of lists and mappings (``None`` items are left to the converter).
_ITEM_SHAPES: dict[str, tuple[tuple[type, ...], str]] = {
    "env_file": ((str, Mapping), "a path or a mapping {path, required}"),
    "profiles": ((str,), "a profile name"),
    "security_opt": ((str,), "a security option"),
    "networks": ((str,), "a network name"),
    "depends_on": ((str,), "a service name"),
}


def check_shapes(data: Mapping[str, Any], lines: _compose_yaml.Lines, stack: str,
                 path: Path) -> None:
    """Refuse a value of the wrong YAML shape with its line, before anything reads it."""
    def fail(service: str | None, key: str, value: object, want: str, *where: str) -> SpecError:
        line = _compose_yaml.line_of(lines, *where)
        return SpecError(stack=stack, service=service, field=key, value=value,
                         problem=f"must be {want} ({path.name} line {line})",
                         fix=f"write {key} as {want}, as the compose specification has it")

    top = data.get("x-envkit")
    if top is not None and not isinstance(top, Mapping):
        raise fail(None, "x-envkit", top, "a mapping {name}", "x-envkit")
    for name, raw in data["services"].items():
        if raw is None:
            continue
        if not isinstance(raw, Mapping):
            raise fail(str(name), "(service)", raw, "a mapping of settings",
                       "services", str(name))
        for key, (types, want) in _SHAPES.items():
            value = raw.get(key)
            if value is not None and not isinstance(value, types):
                raise fail(str(name), key, value, want, "services", str(name), key)
        bad = _bad_item(raw)
        if bad is not None:
            key, at, item, want = bad
            raise fail(str(name), f"{key}.{at}", item, want, "services", str(name), key, at)


def _bad_item(raw: Mapping[str, Any]) -> tuple[str, str, object, str] | None:
    """The first item of a list or mapping of *raw* with the wrong shape: key, place, want."""
    for key, shape in _ITEM_SHAPES.items():
        value = raw.get(key)
        # name: settings (or nothing), else a list of what the table says
        types, want = ((Mapping, type(None)), "a mapping of settings, or nothing") if (
            isinstance(value, Mapping)) else shape
        items = value.items() if isinstance(value, Mapping) else enumerate(
            [value] if isinstance(value, str) else value or [])
        for at, item in items:
            path = item.get("path") if isinstance(item, Mapping) else ""
            if not isinstance(item, types) or (key == "env_file" and not isinstance(path, str)):
                return key, str(at), item, want
    ext = raw.get("x-envkit") or {}
    if not isinstance(ext.get("ready") or [], list):
        return "x-envkit", "ready", ext["ready"], "a list of readiness checks"
    if not isinstance(ext.get("build") or {}, Mapping):
        return "x-envkit", "build", ext["build"], "a mapping {name, namespace, packages, ...}"
    test = (raw.get("healthcheck") or {}).get("test")
    if test is not None and not isinstance(test, str | list):
        return "healthcheck", "test", test, "a string or a list [CMD, ...]"
    retries = (raw.get("healthcheck") or {}).get("retries")
    if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)):
        return "healthcheck", "retries", retries, "a whole number"
    return None


def refuse_unsupported(data: Mapping[str, Any], lines: _compose_yaml.Lines, stack: str,
                       path: Path) -> None:
    """Refuse every key of *data* outside envkit's subset in one error, each with its line.

    :raises SpecError: listing each key, its line and what to write instead.
    """
    found = _compose_yaml.unsupported(data, lines)
    if found:
        listing = "\n".join(f"    {path.name} {item}" for item in found)
        raise SpecError(
            stack=stack, service=None, field="(keys)", value=[".".join(u.path) for u in found],
            problem=f"{len(found)} keys outside envkit's compose subset:\n{listing}",
            fix="change each as its line says (envkit.compose's docstring and README "
            "'Compose files' list what envkit runs)")

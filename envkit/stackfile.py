"""Stack specs written as YAML files, for ``--envkit-stack path/to/stack.yml``.

The format mirrors :class:`~envkit.spec.ServiceSpec`'s fields one to one, so that a file
and the Python it replaces read the same::

    name: web
    services:
      web:
        build: testsvc            # or image: nginx:1.27
        ports: [8080]
        ready: [{http: {port: 8080, path: /health}}]
      client:
        build: {name: testsvc, args: {X: "1"}}
        depends_on: [web]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from envkit.errors import SpecError
from envkit.readiness import Check, Exec, Healthy, Http, LogLine, Tcp
from envkit.spec import Build, ServiceSpec, StackSpec

_SERVICE_KEYS = {
    "image", "build", "command", "environment", "ports", "aliases", "ready", "depends_on",
    "devices", "tmpfs", "user", "labels", "ready_timeout", "stop_timeout",
}


def load_stack_file(path: Path) -> StackSpec:
    """Read and validate a YAML stack file.

    :raises SpecError: for unreadable YAML or any invalid field.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(stack=str(path), service=None, field="(file)", value=str(path),
                        problem=f"cannot read YAML: {exc}",
                        fix="check the path and the YAML syntax") from None
    if not isinstance(data, Mapping):
        raise SpecError(stack=str(path), service=None, field="(file)", value=type(data).__name__,
                        problem="the top level must be a mapping",
                        fix="start the file with 'name:' and 'services:'")
    return stack_from_dict(data, default_name=path.stem)


def stack_from_dict(data: Mapping[str, Any], *, default_name: str) -> StackSpec:
    """Build a :class:`StackSpec` from plain data (parsed YAML or JSON)."""
    name = str(data.get("name", default_name))
    services = data.get("services")
    if not isinstance(services, Mapping) or not services:
        raise SpecError(stack=name, service=None, field="services", value=services,
                        problem="must be a non-empty mapping of service name to settings",
                        fix="add 'services:' with at least one service")
    try:
        return StackSpec(
            name=name,
            services=[_service(str(k), v or {}) for k, v in services.items()],
        )
    except SpecError as exc:
        if exc.stack is None:
            raise SpecError(stack=name, service=exc.service, field=exc.field, value=exc.value,
                            problem=exc.message.split(": ", 2)[-1], fix=exc.fix) from None
        raise


def _service(name: str, raw: Mapping[str, Any]) -> ServiceSpec:
    unknown = sorted(set(raw) - _SERVICE_KEYS)
    if unknown:
        raise SpecError(stack=None, service=name, field=unknown[0], value=raw[unknown[0]],
                        problem="unknown field",
                        fix=f"use one of: {', '.join(sorted(_SERVICE_KEYS))}")
    fields = {k: v for k, v in raw.items() if k not in {"build", "ready", "image"}}
    return ServiceSpec(name=name, image=_image(name, raw),
                       ready=[_check(name, c) for c in raw.get("ready", [])], **fields)


def _image(name: str, raw: Mapping[str, Any]) -> str | Build:
    build = raw.get("build")
    if build is None:
        return str(raw.get("image", ""))
    if isinstance(build, str):
        return Build(name=build)
    if isinstance(build, Mapping):
        return Build(name=str(build.get("name", "")), args=build.get("args", {}))
    raise SpecError(stack=None, service=name, field="build", value=build,
                    problem="must be a name or {name, args}", fix="write build: testsvc")


def _check(service: str, raw: Any) -> Check:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise SpecError(stack=None, service=service, field="ready", value=raw,
                        problem="each check is a one-key mapping",
                        fix="write e.g. {tcp: 8080}, {http: {port: 8080, path: /}}, "
                        "{log: 'regex'}, {healthy: true} or {exec: [cmd, arg]}")
    kind, arg = next(iter(raw.items()))
    if kind == "tcp":
        return Tcp(arg)
    if kind == "http":
        return Http(**arg) if isinstance(arg, Mapping) else Http(arg)
    if kind == "log":
        return LogLine(str(arg))
    if kind == "healthy":
        return Healthy()
    if kind == "exec":
        return Exec(tuple(arg) if isinstance(arg, list) else ("sh", "-c", str(arg)))
    raise SpecError(stack=None, service=service, field="ready", value=kind,
                    problem="unknown check", fix="use tcp, http, log, healthy or exec")

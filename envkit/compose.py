"""A team's compose file as an envkit stack: one private copy per worker.

``--envkit-stack docker-compose.yml``, ``envkit up --stack docker-compose.yml`` and
:meth:`envkit.StackSpec.from_compose` run the file with envkit's own runtime, labels,
watchdog and readiness, following the compose specification's meaning of each key of the
subset below. Where envkit runs differently, on purpose:

- every service joins the stack's one private network, where its name and its
  ``networks.*.aliases`` are its aliases (compose's separate networks are not kept apart);
- ``ports`` publish each container port on an ephemeral ``127.0.0.1`` host port, whatever
  host port the file fixes (``8002:8002``), so workers never collide;
- a ``healthcheck`` must pass before the stack counts as up (``x-envkit.ready``, when
  given, is the readiness instead: ``{healthy: true}`` includes the healthcheck);
  ``depends_on`` waits as its condition says (a plain list: ``started``), where
  ``service_healthy`` means the dependency's readiness passed;
- ``stop_grace_period`` defaults to envkit's 2 s, not compose's 10 s;
- named volumes are made per stack and removed with it; ``init`` defaults to true and
  every container has ``no-new-privileges``;
- every container drops all capabilities (as ``cap_drop: [ALL]``, which the file may
  say or not) and gets back those of ``cap_add``, where compose would keep Docker's
  14; and it has a process limit (``pids_limit``, 1024 unless the file says);
- an unset ``${VAR}`` without a default is an error, not an empty string; a bare ``$VAR``
  is expanded as compose does, ``$$`` is a literal ``$``; ``.env`` beside the file fills
  variables the environment lacks; ``${ENVKIT_BASE_IMAGE}`` is the base envkit builds on.

The subset: ``image``, ``build`` (context, dockerfile, args, target), ``command``,
``entrypoint``, ``environment``, ``env_file``, ``ports``, ``expose``, ``depends_on``
(conditions ``service_started``, ``service_healthy``, ``service_completed_successfully``),
``healthcheck``, ``devices``, ``volumes`` (named, bind, anonymous, tmpfs), ``tmpfs``,
``user``, ``group_add``, ``cap_add``, ``cap_drop``, ``read_only``, ``pids_limit``,
``mem_limit``, ``init``, ``stop_grace_period``, ``stop_signal``, ``labels``, ``profiles``,
``networks`` (aliases), ``security_opt: [no-new-privileges]``; ``x-*`` keys are ignored
except ``x-envkit``: per service ``ready`` (checks as in stack files), ``ready_timeout``
and ``build`` (``name``, ``namespace``, ``packages``, ``requirements``), and at the top
``name``. Any other key is reported, all at once, each with its line and what to do.

For people who run ``docker compose`` themselves, ``python -m envkit.compose labels FILE``
writes an override file that puts envkit's labels on the containers, network and volumes,
so ``envkit ps``, ``envkit down STACK`` (in any shell) and ``envkit gc`` see that stack.

This module runs the steps in order; each lives in a module of its own: reading with
lines (``_compose_yaml``), shapes and the subset (``_compose_shapes``), overrides
(``_compose_overrides``), ``${...}`` (``_compose_interpolation``), which services run
(``_compose_selection``), keys to spec fields (``_compose_service``) and the labels
override (``_compose_labels``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from envkit import _compose_yaml, _stackschema, _yamlread
from envkit._compose_interpolation import Interpolation
from envkit._compose_labels import labels_override
from envkit._compose_overrides import overridden, without_overridden
from envkit._compose_selection import profile_names, selected
from envkit._compose_service import BASE_SENTINEL, Converter
from envkit._compose_shapes import check_shapes, refuse_unsupported
from envkit.errors import SpecError
from envkit.readiness import Healthy
from envkit.spec import ServiceSpec, StackSpec

__all__ = ["is_compose_file", "labels_override", "load_compose"]

COMPOSE_NAMES = frozenset({"compose.yaml", "compose.yml", "docker-compose.yaml",
                           "docker-compose.yml"})


def is_compose_file(path: Path) -> bool:
    """Whether *path* is a compose file rather than an envkit stack file.

    By name (``docker-compose.yml``, ``compose.yaml``...), else by content: a top-level
    ``version`` or ``x-`` key, or a service with a key envkit's stack files do not have,
    a host port or ``depends_on`` conditions; ``ready`` or ``use`` rule it out.
    """
    if path.name in COMPOSE_NAMES:
        return True
    try:
        data, _ = _yamlread.load(_yamlread.read_text(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the stack-file loader reports what is wrong with it
    if not isinstance(data, Mapping) or not isinstance(data.get("services"), Mapping):
        return False
    if "version" in data or any(k.startswith("x-") for k in data if isinstance(k, str)):
        return True
    services = [s for s in data["services"].values() if isinstance(s, Mapping)]
    if any({"ready", "use", "with", "ready_timeout", "stop_timeout"} & set(s) for s in services):
        return False
    # A key stack files do not have is compose's (or a mistake the compose loader reports).
    stack_file_keys = set(_stackschema.schema()["$defs"]["service"]["properties"])
    return any(set(s) - stack_file_keys or _compose_only(s) for s in services)


def _compose_only(service: Mapping[str, Any]) -> bool:
    """Spellings envkit's stack files refuse: host ports, or ``depends_on`` conditions."""
    ports = service.get("ports")
    return any(":" in str(p) or isinstance(p, Mapping) for p in ports or []) or isinstance(
        service.get("depends_on"), Mapping)


def load_compose(
    path: str | Path, *, services: Sequence[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None, profiles: Sequence[str] = (),
) -> StackSpec:
    """The stack the compose file *path* describes.

    :param services: only these services and what they depend on (profiles aside, as
        compose starts a service named on its command line).
    :param overrides: per service, :class:`ServiceSpec` fields replacing the file's; the
        compose keys they replace are not read (nor interpolated); ``environment`` and
        ``labels`` merge key by key.
    :param environ: what ``${VAR}`` reads (``os.environ`` by default).
    :param profiles: active profiles, besides ``COMPOSE_PROFILES`` in *environ*.
    :raises SpecError: for keys outside the subset (every one, with its line), an unset
        variable, or any invalid value, naming the service, field, value and fix.
    """
    path = Path(path).absolute()
    env = dict(os.environ if environ is None else environ)
    data, lines = _compose_yaml.read(path)
    stack = _stack_name(data, path)
    if not isinstance(data, Mapping) or not isinstance(data.get("services"), Mapping):
        raise SpecError(stack=stack, service=None, field="services", value=None,
                        problem=f"{path} has no services", fix="add services: {name: {...}}")
    check_shapes(data, lines, stack, path)
    refuse_unsupported(data, lines, stack, path)
    data = without_overridden(data, overrides or {}, stack)
    dotenv = path.parent / ".env"
    if dotenv.is_file():
        env = {**_compose_yaml.read_env_file(dotenv), **env}  # the shell wins, as in compose
    env["ENVKIT_BASE_IMAGE"] = BASE_SENTINEL
    data = Interpolation(env=env, lines=lines, stack=stack, path=path)(data)
    declared = frozenset(str(k) for k in (data.get("volumes") or {}))
    convert = Converter(stack=stack, base=path.parent, environ=env, declared_volumes=declared)
    chosen = selected(data["services"], services, {*profiles, *profile_names(
        env.get("COMPOSE_PROFILES", ""))}, stack)
    specs = []
    for name in chosen:
        raw = data["services"][name] or {}
        try:
            spec = ServiceSpec(name=name, **convert.fields(name, raw))
            specs.append(overridden(spec, (overrides or {}).get(name, {})))
        except SpecError as exc:
            raise _located(exc, stack, name, lines, path) from None
    return StackSpec(name=stack, services=_awaitable(specs))


def _awaitable(specs: list[ServiceSpec]) -> list[ServiceSpec]:
    """Give a ``service_healthy`` dependency without checks Docker's health as its check.

    Compose waits for the dependency's healthcheck, the image's own HEALTHCHECK included;
    with no check at all envkit's readiness would pass at once and the dependent would
    start early. ``Healthy`` waits for Docker's health, and says so when there is none.
    """
    awaited = {dep for spec in specs for dep, cond in spec.conditions.items()
               if cond == "healthy"}
    return [replace(spec, ready=[Healthy()]) if spec.name in awaited and not spec.ready
            else spec for spec in specs]


def _stack_name(data: Any, path: Path) -> str:
    """``x-envkit.name``, else ``name``, else the directory's name, as compose names projects."""
    top = data if isinstance(data, Mapping) else {}
    found = top.get("x-envkit")
    ours: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    raw = ours.get("name") or top.get("name") or path.parent.name
    return re.sub(r"[^a-z0-9_-]+", "-", str(raw).lower()).strip("-_")[:63] or "compose"


def _located(exc: SpecError, stack: str, service: str, lines: _compose_yaml.Lines,
             path: Path) -> SpecError:
    """*exc* with the stack, the service and the line of its field filled in."""
    root = exc.field.split(".")[0].split("[")[0]
    line = _compose_yaml.line_of(lines, "services", service, root)
    return SpecError(stack=exc.stack or stack, service=exc.service or service, field=exc.field,
                     value=exc.value, problem=f"{exc.problem} ({path.name} line {line})",
                     fix=exc.fix)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m envkit.compose labels FILE [--stack ID]``: print the labels override."""
    parser = argparse.ArgumentParser(prog="python -m envkit.compose")
    parser.add_argument("action", choices=["labels"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--stack", help="the stack id envkit shows (default: compose-<dir>)")
    parser.add_argument("--session", default="compose", help="the envkit.session label")
    args = parser.parse_args(argv)
    stack = args.stack or f"compose-{_stack_name({}, args.file.absolute())}"
    try:
        sys.stdout.write(labels_override(args.file, stack=stack, session=args.session))
    except SpecError as exc:
        print(f"envkit: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from envkit import _compose_yaml, _stackschema, _yamlread, labels
from envkit._compose_service import BASE_SENTINEL, Converter
from envkit._interpolate import InterpolationError, Secrets, interpolate
from envkit.errors import SpecError
from envkit.readiness import Healthy
from envkit.spec import ServiceSpec, StackSpec

__all__ = ["is_compose_file", "labels_override", "load_compose"]

COMPOSE_NAMES = frozenset({"compose.yaml", "compose.yml", "docker-compose.yaml",
                           "docker-compose.yml"})
# The compose keys an override of a ServiceSpec field replaces (and which are then not read).
_REPLACES = {"image": ("image", "build"), "command": ("command",),
             "entrypoint": ("entrypoint",), "ports": ("ports",), "devices": ("devices",),
             "volumes": ("volumes",), "tmpfs": ("tmpfs",), "user": ("user",),
             "stop_timeout": ("stop_grace_period",), "stop_signal": ("stop_signal",),
             "init": ("init",), "healthcheck": ("healthcheck",), "depends_on": ("depends_on",),
             "aliases": ("networks",), "cap_add": ("cap_add", "cap_drop"),
             "group_add": ("group_add",), "read_only": ("read_only",),
             "pids_limit": ("pids_limit",), "mem_limit": ("mem_limit",)}


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
    _check_shapes(data, lines, stack, path)
    _refuse_unsupported(data, lines, stack, path)
    data = _without_overridden(data, overrides or {}, stack)
    dotenv = path.parent / ".env"
    if dotenv.is_file():
        env = {**_compose_yaml.read_env_file(dotenv), **env}  # the shell wins, as in compose
    env["ENVKIT_BASE_IMAGE"] = BASE_SENTINEL
    data = _Interpolation(env=env, lines=lines, stack=stack, path=path)(data)
    declared = frozenset(str(k) for k in (data.get("volumes") or {}))
    convert = Converter(stack=stack, base=path.parent, environ=env, declared_volumes=declared)
    chosen = _selected(data["services"], services, {*profiles, *_split(
        env.get("COMPOSE_PROFILES", ""))}, stack)
    specs = []
    for name in chosen:
        raw = data["services"][name] or {}
        try:
            spec = ServiceSpec(name=name, **convert.fields(name, raw))
            specs.append(_override(spec, (overrides or {}).get(name, {})))
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


def _check_shapes(data: Mapping[str, Any], lines: _compose_yaml.Lines, stack: str,
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


def _stack_name(data: Any, path: Path) -> str:
    """``x-envkit.name``, else ``name``, else the directory's name, as compose names projects."""
    top = data if isinstance(data, Mapping) else {}
    found = top.get("x-envkit")
    ours: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    raw = ours.get("name") or top.get("name") or path.parent.name
    return re.sub(r"[^a-z0-9_-]+", "-", str(raw).lower()).strip("-_")[:63] or "compose"


def _refuse_unsupported(data: Mapping[str, Any], lines: _compose_yaml.Lines, stack: str,
                        path: Path) -> None:
    found = _compose_yaml.unsupported(data, lines)
    if found:
        listing = "\n".join(f"    {path.name} {item}" for item in found)
        raise SpecError(
            stack=stack, service=None, field="(keys)", value=[".".join(u.path) for u in found],
            problem=f"{len(found)} keys outside envkit's compose subset:\n{listing}",
            fix="change each as its line says (envkit.compose's docstring and README "
            "'Compose files' list what envkit runs)")


def _without_overridden(data: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]],
                        stack: str) -> dict[str, Any]:
    """*data* less what *overrides* replaces, so it is neither read nor interpolated."""
    services = dict(data["services"])
    for name, fields in overrides.items():
        if name not in services:
            raise SpecError(stack=stack, service=name, field="(overrides)", value=name,
                            problem=f"no such service (services: {', '.join(services)})",
                            fix="override a service of the file")
        raw = dict(services[name] or {})
        for replaced in fields:
            for key in _REPLACES.get(replaced, ()):
                raw.pop(key, None)
        if "image" in fields:  # a stand-in until the override replaces it
            raw["image"] = "envkit-overridden"
        env = raw.get("environment")
        if "environment" in fields and isinstance(env, Mapping):
            raw["environment"] = {k: v for k, v in env.items() if k not in fields["environment"]}
        elif "environment" in fields and isinstance(env, list):
            raw["environment"] = [e for e in env
                                  if str(e).partition("=")[0] not in fields["environment"]]
        services[name] = raw
    return {**data, "services": services}


@dataclass(frozen=True, kw_only=True)
class _Interpolation:
    """One load's ``${...}`` expansion: its variables, secrets, and where to point errors."""

    env: Mapping[str, str]
    lines: _compose_yaml.Lines
    stack: str
    path: Path
    secrets: Secrets = field(default_factory=Secrets)

    def __call__(self, data: Any, where: tuple[str, ...] = ()) -> Any:
        """*data* with every string value interpolated; *where* locates errors."""
        if isinstance(data, str):
            if "\x00" in data:
                raise self._fail(where, data, "holds a NUL character",
                                 "remove the \\0 (an escaped NUL in a double-quoted string)")
            try:
                return interpolate(_compose_yaml.braced(data), environ=self.env,
                                   generated=self.secrets)
            except InterpolationError as exc:
                raise self._fail(where, data, exc.problem, exc.fix) from None
        if isinstance(data, Mapping):
            return {k: self(v, (*where, str(k))) for k, v in data.items()}
        if isinstance(data, list):
            return [self(v, (*where, str(i))) for i, v in enumerate(data)]
        return data

    def _fail(self, where: tuple[str, ...], value: str, problem: str, fix: str) -> SpecError:
        service = where[1] if len(where) > 1 and where[0] == "services" else None
        line = _compose_yaml.line_of(self.lines, *where)
        return SpecError(stack=self.stack, service=service, field=".".join(where[2:] or where),
                         value=value, problem=f"{problem} ({self.path.name} line {line})",
                         fix=fix)


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _selected(services: Mapping[str, Any], wanted: Sequence[str] | None, active: set[str],
              stack: str) -> list[str]:
    """The services to run, in file order, with everything they depend on.

    Those asked for, whatever their profiles (as compose runs a service named on its
    command line), else every one without profiles or with an active one.
    """
    if wanted is not None:
        unknown = [w for w in wanted if w not in services]
        if unknown:
            raise SpecError(stack=stack, service=unknown[0], field="services", value=unknown,
                            problem=f"no such service (services: {', '.join(services)})",
                            fix="name services of the file")
        todo = list(wanted)
    else:
        todo = [n for n, s in services.items()
                if not (s or {}).get("profiles") or active & set((s or {})["profiles"])]
    chosen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in chosen or name not in services:
            continue
        chosen.add(name)
        deps = [str(d) for d in (services[name] or {}).get("depends_on") or []]
        if wanted is None:
            _refuse_inactive(services, name, deps, active, stack)
        todo.extend(deps)
    return [n for n in services if n in chosen]


def _refuse_inactive(services: Mapping[str, Any], name: str, deps: Sequence[str],
                     active: set[str], stack: str) -> None:
    """Compose's rule: a running service may not depend on one whose profiles are off."""
    for dep in deps:
        profiles = set((services.get(dep) or {}).get("profiles") or [])
        if profiles and not active & profiles:
            raise SpecError(
                stack=stack, service=name, field="depends_on", value=dep,
                problem=f"depends on {dep!r}, whose profiles ({', '.join(sorted(profiles))}) "
                "are not active", fix="activate one (COMPOSE_PROFILES, profiles=...), or name "
                f"the services to run (services=[{name!r}, ...]) as compose's command line does")


def _override(spec: ServiceSpec, fields: Mapping[str, Any]) -> ServiceSpec:
    if not fields:
        return spec
    merged = dict(fields)
    for key in ("environment", "labels"):
        if key in merged:
            merged[key] = {**getattr(spec, key), **merged[key]}
    try:
        return replace(spec, **merged)
    except TypeError as exc:
        raise SpecError(stack=None, service=spec.name, field="(overrides)", value=sorted(fields),
                        problem=f"not ServiceSpec fields: {exc}",
                        fix="override ServiceSpec fields (image, environment, devices, ...)"
                        ) from None


def _located(exc: SpecError, stack: str, service: str, lines: _compose_yaml.Lines,
             path: Path) -> SpecError:
    """*exc* with the stack, the service and the line of its field filled in."""
    root = exc.field.split(".")[0].split("[")[0]
    line = _compose_yaml.line_of(lines, "services", service, root)
    return SpecError(stack=exc.stack or stack, service=exc.service or service, field=exc.field,
                     value=exc.value, problem=f"{exc.problem} ({path.name} line {line})",
                     fix=exc.fix)


class _Plain(yaml.SafeDumper):
    """Writes repeated mappings out in full: no ``&id001`` anchors in a file people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def labels_override(
    path: str | Path, *, stack: str, session: str = "compose", owner: str | None = None,
    created: str | None = None,
) -> str:
    """A compose override file giving *path*'s stack envkit's labels, as YAML text.

    With ``docker compose -f FILE -f OVERRIDE up``, every container, the default network
    and the named volumes carry ``envkit.stack=<stack>`` (and the rest of the contract,
    ``envkit.detached=true``: the stack outlives the shell that started it), so
    ``envkit ps`` lists it, ``envkit down <stack>`` removes it from any shell with no
    variable set, and ``envkit gc --older-than`` collects it.
    """
    path = Path(path)
    data, _ = _compose_yaml.read(path)
    own = labels.Ownership(session=session, worker="compose", stack=stack,
                           owner=owner or f"{socket.gethostname()}:docker-compose",
                           created=created or labels.utc_now(), detached=True, owner_ns=None)
    stamped = own.stack_labels()
    out: dict[str, Any] = {}
    if isinstance(data, Mapping) and "version" in data:
        out["version"] = str(data["version"])
    names = list((data or {}).get("services") or {})
    out["services"] = {n: {"labels": own.service_labels(n)} for n in names}
    out["networks"] = {n: {"labels": stamped} for n in ["default", *_own((data or {}),
                                                                        "networks")]}
    volumes = _own(data or {}, "volumes")
    if volumes:
        out["volumes"] = {v: {"labels": stamped} for v in volumes}
    return yaml.dump(out, Dumper=_Plain, sort_keys=False)


def _own(data: Mapping[str, Any], kind: str) -> list[str]:
    """The file's own networks or volumes: those compose creates (not ``external``)."""
    declared = data.get(kind) or {}
    return [str(name) for name, conf in declared.items()
            if str(name) != "default" and not (isinstance(conf, Mapping) and conf.get("external"))]


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

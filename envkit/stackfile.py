"""Stack specs written as YAML files, for ``--envkit-stack path/to/stack.yml``.

The format mirrors :class:`~envkit.spec.ServiceSpec`'s fields, in docker compose's
spelling where compose has the same idea::

    # yaml-language-server: $schema=<site-packages>/envkit/schema/stack.schema.json
    name: shop
    services:
      api:
        build: {context: ../src, dockerfile: docker/Dockerfile, requirements: req.txt}
        ports: [8080]
        environment:
          JWT_SECRET: ${secret:jwt}          # generated, shared by every ${secret:jwt}
          LOG_LEVEL: ${LOG_LEVEL:-info}
        volumes: [recordings:/data, ./fixtures:/fixtures:ro]
        ready: [{http: {port: 8080, path: /health}}]
      media:
        use: mediamtx                        # a building block of an installed kit
        with: {flavour: standin}

The file is checked against a JSON Schema that ships with envkit
(:data:`SCHEMA_PATH`, ``envkit/schema/stack.schema.json``); the comment on the first line
above lets editors with the YAML language server (VS Code's YAML extension, and others)
complete and check it as it is typed.

Loading goes: YAML, then ``${...}`` interpolation of string values (see
:mod:`envkit._interpolate`: an unset variable without a default is an error, not an empty
string as in compose), then the schema, then the specs' own checks. Relative paths
(``build`` contexts, requirements files, bind-mount sources) resolve against the stack
file's directory, never the working directory. Numeric strings are read as numbers where
a number is expected (``ready_timeout: ${TIMEOUT:-30}``). A ``${secret:NAME}`` is new for
every load, and envkit loads the file once per stack instance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from envkit import _checkargs, _stackschema, _yamlread
from envkit._interpolate import InterpolationError, Secrets, interpolate
from envkit.errors import EnvkitError, SpecError
from envkit.readiness import Check, Exec, Healthy, Http, LogLine, Tcp
from envkit.spec import Build, Healthcheck, ServiceSpec, StackSpec

SCHEMA_PATH = _stackschema.SCHEMA_PATH
_PLAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ServiceResolver(Protocol):
    """Makes the service of a kit's building block: ``use: <block>`` with ``with: {...}``.

    :raises SpecError: (or :class:`KeyError`) for an unknown block, listing the known ones.
    """

    def __call__(self, block: str, options: Mapping[str, Any], /) -> ServiceSpec: ...


def load_stack_file(
    path: str | Path,
    *,
    environ: Mapping[str, str],
    services: ServiceResolver | None = None,
) -> StackSpec:
    """Read, interpolate and validate a YAML stack file.

    :param environ: the variables ``${VAR}`` reads (pass ``os.environ`` or a copy).
    :param services: makes the services of ``use:`` entries (envkit passes its kits').
    :raises SpecError: for unreadable YAML, an unset variable or any invalid field,
        naming the stack, the service, the field, the value and the fix.
    """
    path = Path(path).absolute()
    data, _ = _yamlread.load_file(path)
    # A file without `name:` is named after itself, folded into a valid stack name.
    default = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_")[:63] or "stack"
    return stack_from_dict(data, default_name=default, base_dir=path.parent,
                           environ=environ, services=services, source=str(path))


def stack_from_dict(
    data: Any,
    *,
    default_name: str,
    base_dir: Path,
    environ: Mapping[str, str],
    services: ServiceResolver | None = None,
    source: str = "the stack data",
) -> StackSpec:
    """Build a :class:`StackSpec` from plain data (parsed YAML or JSON).

    :param base_dir: what relative paths resolve against.
    :param source: the file named by interpolation errors.
    :raises SpecError: as :func:`load_stack_file`.
    """
    raw_name = data.get("name") if isinstance(data, Mapping) else None
    stack = raw_name if isinstance(raw_name, str) and "$" not in raw_name else default_name
    loader = _Loader(stack=stack, base=base_dir, environ=environ, resolver=services,
                     source=source)
    data = loader.interpolated(data, [])
    _stackschema.validate(data, stack=stack)
    loader.stack = str(data.get("name", default_name))
    try:
        return StackSpec(name=loader.stack, services=[
            loader.service(str(k), v or {}) for k, v in data["services"].items()
        ])
    except SpecError as exc:
        if exc.stack is None:
            raise _with_place(exc, stack=loader.stack) from None
        raise


def _with_place(exc: SpecError, *, stack: str, service: str | None = None) -> SpecError:
    """*exc* again, with the stack (and service) it happened in filled in."""
    return SpecError(stack=stack, service=exc.service or service, field=exc.field,
                     value=exc.value, problem=exc.problem, fix=exc.fix)


def _exists(path: Path, kind: Callable[[Path], bool]) -> bool:
    """``path.is_dir()`` (or *kind*), false for a name the OS refuses (too long, a NUL)."""
    try:
        return kind(path)
    except (OSError, ValueError):
        return False


@dataclass(kw_only=True)
class _Loader:
    """One load of one file: its directory, environment, secrets and block resolver."""

    stack: str
    base: Path
    environ: Mapping[str, str]
    resolver: ServiceResolver | None
    source: str
    secrets: Secrets = field(default_factory=Secrets)

    def fail(self, service: str | None, name: str, value: object, problem: str,
             fix: str) -> SpecError:
        return SpecError(stack=self.stack, service=service, field=name, value=value,
                         problem=problem, fix=fix)

    def interpolated(self, value: Any, path: list[str | int]) -> Any:
        """*value* with every string (not key) interpolated; *path* locates errors."""
        if isinstance(value, str):
            service, where = _stackschema.place(path)
            if "\x00" in value:  # no name, path, command or variable may hold one
                raise self.fail(service, where, value, "holds a NUL character",
                                "remove the \\0 (an escaped NUL in a double-quoted string)")
            try:
                return interpolate(value, environ=self.environ, generated=self.secrets)
            except InterpolationError as exc:
                raise self.fail(service, where, value, f"{exc.problem} (in {self.source})",
                                exc.fix) from None
        if isinstance(value, Mapping):
            for key in value:
                if not isinstance(key, str):  # YAML reads 1:, true: and null: as such
                    service, where = _stackschema.place([*path, str(key)])
                    raise self.fail(service, where, key, "a key must be a string",
                                    f"quote it: '{key}':")
            return {k: self.interpolated(v, [*path, k]) for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolated(v, [*path, i]) for i, v in enumerate(value)]
        return value

    def service(self, name: str, raw: Mapping[str, Any]) -> ServiceSpec:
        if "use" in raw:
            return self._from_block(name, raw)
        if "image" in raw and "build" in raw:
            raise self.fail(name, "build", raw["build"], "both 'image' and 'build' are given",
                            "keep one: 'image' runs a tag, 'build' builds one")
        if "image" not in raw and "build" not in raw:
            raise self.fail(name, "image", None, "the service has no image",
                            "give 'image: <tag>', 'build: <context>' or 'use: <block>'")
        return ServiceSpec(name=name, image=self._image(name, raw), **self._fields(name, raw))

    def _from_block(self, name: str, raw: Mapping[str, Any]) -> ServiceSpec:
        block, options = str(raw["use"]), raw.get("with") or {}
        if self.resolver is None:
            raise self.fail(name, "use", block, "no kit supplies building blocks to this load",
                            "load the file through envkit (--envkit-stack, Envkit.spec), or "
                            "pass services= to load_stack_file")
        try:
            base = self.resolver(block, options)
        except SpecError as exc:
            raise _with_place(exc, stack=self.stack, service=name) from None
        except KeyError as exc:
            known = exc.args[0] if exc.args else block
            raise self.fail(name, "use", block, f"unknown building block: {known}",
                            "use a block of an installed kit (see envkit's kits)") from None
        except EnvkitError as exc:
            raise self.fail(name, "with", options, exc.message, exc.fix) from None
        overrides = self._fields(name, raw)
        # The entry's environment and labels add to the block's; other fields replace.
        overrides["environment"] = {**base.environment, **overrides.get("environment", {})}
        overrides["labels"] = {**base.labels, **overrides.get("labels", {})}
        if "image" in raw or "build" in raw:
            overrides["image"] = self._image(name, raw)
        return replace(base, name=name, **overrides)

    def _fields(self, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """ServiceSpec keyword arguments for the fields *raw* gives (validated data)."""
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key in {"image", "build", "use", "with"}:
                continue
            if key == "command":
                out[key] = value if isinstance(value, str) else [str(v) for v in value]
            elif key == "environment":
                out[key] = self._environment(name, value)
            elif key == "labels":
                out[key] = {str(k): str(v) for k, v in value.items()}
            elif key == "volumes":
                out[key] = [self._mount(v) for v in ([value] if isinstance(value, str) else value)]
            elif key in {"ready_timeout", "stop_timeout"}:
                out[key] = float(value)
            elif key == "pids_limit":
                out[key] = int(value)
            elif key in {"user", "stop_signal"}:  # YAML reads 1000 and 9 as numbers
                out[key] = str(value) if isinstance(value, int) else value
            elif key == "ready":
                out[key] = [self._check(name, i, c) for i, c in enumerate(value)]
            elif key == "healthcheck":
                out[key] = self._healthcheck(name, value)
            else:
                out[key] = value
        return out

    def _healthcheck(self, name: str, raw: Mapping[str, Any]) -> Healthcheck:
        """Docker's healthcheck; its seconds may be numeric strings, as every duration here."""
        given: dict[str, Any] = {
            k: float(v) if k in {"interval", "timeout", "start_period"} else v
            for k, v in raw.items()}
        try:
            return Healthcheck(**given)
        except SpecError as exc:
            raise _with_place(exc, stack=self.stack, service=name) from None

    def _environment(self, name: str, raw: Mapping[str, Any] | Sequence[str]) -> dict[str, str]:
        """A mapping, or compose's list of ``NAME=value`` and bare ``NAME``.

        A bare ``NAME`` (like a mapping's null value) takes the variable from the
        environment envkit runs in.
        """
        pairs: list[tuple[str, str | None]] = []
        if isinstance(raw, Mapping):
            pairs = [(str(k), None if v is None else str(v)) for k, v in raw.items()]
        else:
            for item in raw:
                key, eq, text = item.partition("=")
                pairs.append((key, text if eq else None))
        env: dict[str, str] = {}
        for key, given in pairs:
            value = self.environ.get(key) if given is None else given
            if value is None:
                raise self.fail(name, f"environment.{key}", None,
                                f"{key} is to come from the environment, where it is not set",
                                f"set {key}, or give its value: {key}=value")
            env[key] = value
        return env

    def _mount(self, raw: str) -> str:
        parts = raw.split(":")
        source = parts[0]
        # compose's rule: a source with a '/' or starting with '.' is a host path.
        if 2 <= len(parts) <= 3 and ("/" in source or source.startswith(".")) and (
            not source.startswith(("/", "~"))
        ):
            parts[0] = str((self.base / source).resolve())
        return ":".join(parts)

    def _image(self, name: str, raw: Mapping[str, Any]) -> str | Build:
        if "image" in raw:
            return str(raw["image"])
        spec = raw["build"]
        if isinstance(spec, str):
            return self._context(name, spec)
        if "context" in spec:
            context = self.base / spec["context"]
            if not _exists(context, Path.is_dir):
                raise self.fail(name, "build.context", spec["context"],
                                f"no directory {context}",
                                f"give a directory relative to {self.base}")
            build = Build(name=spec.get("name", name), context=context.resolve())
        elif "name" in spec:
            build = self._context(name, spec["name"])
        else:
            raise self.fail(name, "build", spec, "the build names no context",
                            "add context: <directory> (relative to the stack file)")
        return replace(build, dockerfile=spec.get("dockerfile", build.dockerfile),
                       args={k: str(v) for k, v in spec.get("args", {}).items()},
                       target=spec.get("target"), packages=spec.get("packages", ()),
                       requirements=self._requirements(name, spec.get("requirements")))

    def _context(self, name: str, ref: str) -> Build:
        """``build: <ref>``: a directory next to the file, else ``images/<ref>`` there.

        A plain name found in neither place keeps its old meaning: the project's
        ``images/<ref>``, found by the image builder.
        """
        if _exists(self.base / ref, Path.is_dir):
            return Build(name=name, context=(self.base / ref).resolve())
        if _exists(self.base / "images" / ref, Path.is_dir):
            return Build(name=ref, context=(self.base / "images" / ref).resolve())
        if _PLAIN_NAME.match(ref):
            return Build(name=ref)
        raise self.fail(name, "build", ref, f"no directory {self.base / ref}",
                        f"give a build context relative to {self.base}")

    def _requirements(self, name: str, ref: str | None) -> Path | None:
        if ref is None:
            return None
        path = self.base / ref
        if not _exists(path, Path.is_file):
            raise self.fail(name, "build.requirements", ref, f"no file {path}",
                            f"give a pip requirements file relative to {self.base}")
        return path.resolve()

    def _check(self, name: str, index: int, raw: Mapping[str, Any]) -> Check:
        kind, arg = next(iter(raw.items()))
        try:
            return _make_check(kind, arg)
        except SpecError as exc:  # the check's own validation: place it on this entry
            raise self.fail(name, _checkargs.entry_field(f"ready[{index}]", kind, arg, exc),
                            exc.value, exc.problem, exc.fix) from None


def _make_check(kind: str, arg: Any) -> Check:
    """One schema-valid ``ready`` entry as its check (which validates its arguments)."""
    if kind == "tcp":
        return Tcp(arg)
    if kind == "http":
        if not isinstance(arg, Mapping):
            return Http(arg)
        return Http(arg["port"], str(arg.get("path", "/")), int(arg.get("status", 200)))
    if kind == "log":
        return LogLine(arg)
    if kind == "healthy":
        return Healthy()
    return Exec(tuple(str(a) for a in arg) if isinstance(arg, list) else ("sh", "-c", arg))

"""One compose service (interpolated data) as :class:`~envkit.spec.ServiceSpec` fields.

Each function follows the compose specification's meaning of its key; where envkit runs
differently on purpose (host ports, networks) the module :mod:`envkit.compose` says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envkit import _checkargs
from envkit._compose_yaml import read_env_file, seconds
from envkit._privileges import capabilities
from envkit.errors import SpecError
from envkit.readiness import Check, Exec, Healthy, Http, LogLine, Tcp
from envkit.spec import Build, Healthcheck, Mount

_CONDITIONS = {"service_started": "started", "service_healthy": "healthy",
               "service_completed_successfully": "completed"}
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$")
#: Set while loading: the value of ``${ENVKIT_BASE_IMAGE}``, a build arg envkit fills itself.
BASE_SENTINEL = "envkit-base-image"


@dataclass(kw_only=True)
class Converter:
    """Converts the services of one compose file; *base* is the file's directory."""

    stack: str
    base: Path
    environ: Mapping[str, str]
    declared_volumes: frozenset[str]

    def fail(self, service: str, field: str, value: object, problem: str,
             fix: str) -> SpecError:
        return SpecError(stack=self.stack, service=service, field=field, value=value,
                         problem=problem, fix=fix)

    def fields(self, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """ServiceSpec keyword arguments for the compose service *raw*."""
        ext = raw.get("x-envkit") or {}
        out: dict[str, Any] = {"image": self.image(name, raw, ext.get("build") or {})}
        simple = {"command": "command", "entrypoint": "entrypoint", "user": "user",
                  "stop_signal": "stop_signal", "init": "init"}
        for key, field in simple.items():
            if raw.get(key) is not None:
                value = raw[key]
                out[field] = _numeral(value) if key in {"user", "stop_signal"} else value
        out["environment"] = self.environment(name, raw)
        out["ports"] = [p for entry in raw.get("ports") or [] for p in self.ports(name, entry)]
        out["devices"] = [str(d) for d in raw.get("devices") or []]
        out["volumes"], tmpfs = self.volumes(name, raw.get("volumes") or [])
        out["tmpfs"] = [*_strings(raw.get("tmpfs")), *tmpfs]
        out["labels"] = _pairs(raw.get("labels"), self.environ)
        out["aliases"] = _aliases(raw.get("networks"))
        out["depends_on"] = _depends_on(raw.get("depends_on"))
        if "stop_grace_period" in raw:
            out["stop_timeout"] = self.duration(name, "stop_grace_period",
                                                raw["stop_grace_period"])
        self.security_opt(name, raw.get("security_opt") or [])
        out.update(self.privileges(name, raw))
        ready: list[Check] = []
        if raw.get("healthcheck"):
            out["healthcheck"] = self.healthcheck(name, raw["healthcheck"])
            if out["healthcheck"].test[0] != "NONE":
                ready.append(Healthy())
        if "ready" in ext:  # envkit's own checks replace the healthcheck as readiness
            ready = [self.check(name, i, c) for i, c in enumerate(ext["ready"] or [])]
        out["ready"] = ready
        if ext.get("ready_timeout") is not None:
            out["ready_timeout"] = self.duration(name, "x-envkit.ready_timeout",
                                                 ext["ready_timeout"])
        return out

    def duration(self, name: str, field: str, value: object) -> float:
        got = seconds(value)
        if got is None:
            raise self.fail(name, field, value, "not a duration",
                            "write e.g. 10s, 1m30s or 500ms")
        return got

    def image(self, name: str, raw: Mapping[str, Any], ext: Mapping[str, Any]) -> str | Build:
        """``build`` (it wins over ``image``, which compose would only tag), else ``image``."""
        spec = raw.get("build")
        if spec is None:
            if not raw.get("image"):
                raise self.fail(name, "image", None, "the service has no image or build",
                                "give 'image: <tag>' or 'build: <context>'")
            return str(raw["image"])
        spec = {"context": spec} if isinstance(spec, str) else spec
        context = self.base / str(spec.get("context", "."))
        if "://" in str(spec.get("context", "")) or not _is_dir(context):
            raise self.fail(name, "build.context", spec.get("context"),
                            f"no directory {context}",
                            f"give a directory relative to {self.base}")
        args = {k: v for k, v in _pairs(spec.get("args"), self.environ).items()
                if v != BASE_SENTINEL}  # envkit passes the build's own base
        reqs = ext.get("requirements")
        return Build(name=str(ext.get("name", name)), context=context.resolve(),
                     dockerfile=str(spec.get("dockerfile", "Dockerfile")), args=args,
                     target=spec.get("target"), packages=tuple(ext.get("packages") or ()),
                     namespace=ext.get("namespace"),
                     requirements=None if reqs is None else (self.base / reqs).resolve())

    def environment(self, name: str, raw: Mapping[str, Any]) -> dict[str, str]:
        """``env_file`` files in order, then ``environment`` over them."""
        env: dict[str, str] = {}
        files = raw.get("env_file") or []
        for entry in [files] if isinstance(files, str | Mapping) else files:
            ref, required = (entry, True) if isinstance(entry, str) else (
                entry.get("path"), entry.get("required", True))
            path = self.base / str(ref)
            if not _is_file(path) and not required:
                continue
            try:
                env.update(read_env_file(path))
            except OSError as exc:
                raise self.fail(name, "env_file", ref, f"cannot read {path}: {exc.strerror}",
                                f"give a file relative to {self.base}") from None
        env.update(_pairs(raw.get("environment"), self.environ))
        return env

    def ports(self, name: str, entry: Any) -> list[str]:
        """The container ports of one ``ports`` entry; the host part is not used."""
        if isinstance(entry, Mapping):
            entry = f"{entry.get('target')}/{entry.get('protocol', 'tcp')}"
        container = str(entry).rsplit(":", 1)[-1]
        match = _RANGE.match(container)
        if match is None:
            raise self.fail(name, "ports", entry, "not a port mapping",
                            "write e.g. 8080, '8002:8002' or '127.0.0.1::8554/udp'")
        first, last, proto = int(match[1]), int(match[2] or match[1]), match[3] or "tcp"
        return [f"{p}/{proto}" for p in range(first, last + 1)]

    def volumes(self, name: str, entries: Sequence[Any]) -> tuple[list[Mount], list[str]]:
        """Mounts (named volumes and binds) and the tmpfs mounts of long-syntax entries."""
        mounts: list[Mount] = []
        tmpfs: list[str] = []
        for index, entry in enumerate(entries):
            if isinstance(entry, Mapping):
                kind, source = entry.get("type", "volume"), entry.get("source")
                target, read_only = str(entry.get("target")), bool(entry.get("read_only"))
                if kind == "tmpfs":
                    tmpfs.append(target)
                    continue
            else:
                parts = str(entry).split(":")
                source, target = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
                modes = set(parts[2].split(",")) if len(parts) > 2 else set()
                read_only = "ro" in modes
                kind = "bind" if source and (source[0] in "./~") else "volume"
            if source is None:  # an anonymous volume: the stack's own, named after its place
                source = f"{name}-anon-{index}"
            elif kind == "bind":
                source = str((self.base / Path(str(source)).expanduser()).resolve())
            elif source not in self.declared_volumes:
                raise self.fail(name, "volumes", entry, f"the volume {source!r} is not declared",
                                f"declare it at the top level: volumes: {{{source}: {{}}}}")
            mounts.append(Mount(str(source), target, read_only))
        return mounts, tmpfs

    def healthcheck(self, name: str, raw: Mapping[str, Any]) -> Healthcheck:
        if raw.get("disable"):
            return Healthcheck(test=("NONE",))
        test = raw.get("test")
        test = ["CMD-SHELL", test] if isinstance(test, str) else [str(t) for t in test or []]
        durations = {key: self.duration(name, f"healthcheck.{key}", raw[key])
                     for key in ("interval", "timeout", "start_period") if key in raw}
        retries = raw.get("retries")
        try:
            return Healthcheck(test=test, retries=None if retries is None else int(retries),
                               **durations)
        except SpecError as exc:
            raise self.fail(name, "healthcheck.test", test, "must start with CMD, CMD-SHELL "
                            "or NONE", exc.fix) from None

    def security_opt(self, name: str, options: Sequence[Any]) -> None:
        for option in options:
            if str(option) not in {"no-new-privileges", "no-new-privileges:true"}:
                raise self.fail(name, "security_opt", option, "not envkit's security option",
                                "remove it: envkit runs every container with "
                                "no-new-privileges and nothing else")

    def privileges(self, name: str, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``cap_add``, ``group_add``, ``read_only``, ``pids_limit``, ``mem_limit``.

        ``cap_drop`` only has its names checked: envkit drops every capability anyway.
        """
        out: dict[str, Any] = {}
        if raw.get("cap_drop") is not None:
            capabilities(raw["cap_drop"], field="cap_drop", service=name, allow_all=True)
        for key in ("cap_add", "group_add", "mem_limit"):
            if raw.get(key) is not None:
                out[key] = raw[key]
        if raw.get("read_only") is not None:
            out["read_only"] = raw["read_only"]
        if raw.get("pids_limit") is not None:
            value = raw["pids_limit"]  # a string after interpolation, or YAML's number
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            out["pids_limit"] = value
        return out

    def check(self, name: str, index: int, raw: Any) -> Check:
        """One ``x-envkit.ready`` entry, spelled as in envkit's stack files."""
        kind, arg = next(iter(raw.items())) if isinstance(raw, Mapping) and raw else ("", None)
        try:
            check = _make_check(kind, arg)
        except SpecError as exc:  # the check's own validation: place it on this entry
            raise self.fail(name, _checkargs.entry_field(f"x-envkit.ready[{index}]", kind,
                                                         arg, exc),
                            exc.value, exc.problem, exc.fix) from None
        if check is None:
            raise self.fail(name, f"x-envkit.ready[{index}]", raw, "not a readiness check",
                            "use one of {tcp: PORT}, {http: {port: P, path: /p}}, "
                            "{log: REGEX}, {exec: COMMAND}, {healthy: true}")
        return check


def _make_check(kind: str, arg: Any) -> Check | None:
    """The check of one entry (each validates its arguments), ``None`` for no such kind."""
    if kind == "tcp" and isinstance(arg, int | str):
        return Tcp(arg)
    if kind == "http" and arg is not None:
        if not isinstance(arg, Mapping):
            return Http(arg if isinstance(arg, int) else str(arg))
        status = arg.get("status", 200)  # a string after interpolation, or YAML's number
        if isinstance(status, str) and re.fullmatch(r"[0-9]{3}", status):
            status = int(status)
        port: Any = arg.get("port")  # None, or anything: Http says what is wrong
        return Http(port, str(arg.get("path", "/")), status)
    if kind == "log":
        return LogLine(arg)
    if kind == "healthy" and arg is True:
        return Healthy()
    if kind == "exec":
        argv: Any = [_numeral(a, float) for a in arg] if isinstance(arg, list) else (
            "sh", "-c", arg) if isinstance(arg, str) and arg else arg
        return Exec(argv)
    return None


def _numeral(value: object, *also: type) -> object:
    """YAML's whole number (or one of the types *also*) as a string; anything else as it is.

    ``user: 1000`` means ``'1000'``, but ``str()`` of a list, a mapping or ``true`` would
    turn a mistake into a plausible name: those go to the spec as they are, which refuses
    them (as stack files do).
    """
    return str(value) if isinstance(value, (int, *also)) and not isinstance(
        value, bool) else value


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name the OS refuses (too long): no such file
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def _pairs(value: Any, environ: Mapping[str, str]) -> dict[str, str]:
    """A mapping or compose's list of ``KEY=value``; a value left out comes from *environ*.

    As in compose, a key without a value whose variable is unset is left out.
    """
    items: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        for entry in value:
            key, eq, text = str(entry).partition("=")
            items.append((key, text if eq else None))
    out: dict[str, str] = {}
    for key, given in items:
        if given is None:
            if key in environ:
                out[key] = environ[key]
        else:
            out[key] = str(given).lower() if isinstance(given, bool) else str(given)
    return out


def _aliases(networks: Any) -> list[str]:
    """``networks.*.aliases``: every one is an alias on the stack's single network."""
    found: list[str] = []
    for spec in networks.values() if isinstance(networks, Mapping) else []:
        for alias in (spec or {}).get("aliases") or []:
            if str(alias) not in found:
                found.append(str(alias))
    return found


def _depends_on(value: Any) -> dict[str, str]:
    """Compose's dependencies: a list means ``service_started``, as in compose."""
    if isinstance(value, Mapping):
        return {str(k): _CONDITIONS.get(str((v or {}).get("condition", "service_started")),
                                        str((v or {}).get("condition")))
                for k, v in value.items()}
    return {str(k): "started" for k in value or []}

"""One service's container: created and handled through envkit's own docker-py client.

The create request goes through docker-py's public low-level API on the engine
connection envkit made (so an injected environment or a docker context is honoured, and
no library's global settings change); afterwards a thin handle around the container id,
in the manner of docker-py's resource models, answers for it.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
from docker.models.containers import Container
from docker.types import Mount

from envkit import _engine
from envkit._engine import Engine
from envkit._privileges import redact, secret_values
from envkit.errors import DeviceNotFoundError, EnvkitError, NameNotFoundError, SpecError
from envkit.readiness import ContainerState
from envkit.spec import ServiceSpec


@dataclass(kw_only=True)
class ServiceHandle:
    """A started service: its container and the host ports Docker assigned.

    Implements :class:`envkit.readiness.Target`.
    """

    service: str
    image: str
    container: Container
    host: str
    ports: dict[str, int] = field(default_factory=dict)
    #: Values :meth:`logs` and :meth:`exec` cut out: the service's secret-looking
    #: environment values (a JWT secret), as failure reports and artifacts cut them out.
    secrets: frozenset[str] = frozenset()

    def host_endpoint(self, port: int | str) -> tuple[str, int]:
        """Host address and host port of container *port* (``8080`` or ``"8080/tcp"``).

        :raises NameNotFoundError: (a :class:`KeyError`) when the port is not published,
            naming those that are.
        """
        key = str(port) if "/" in str(port) else f"{port}/tcp"
        try:
            return self.host, self.ports[key]
        except KeyError:
            published = ", ".join(sorted(self.ports)) or "none"
            raise NameNotFoundError(
                f"service {self.service!r} does not publish {key} (published: {published})",
                fix="add the port to the service's ports",
            ) from None

    def port_map(self) -> dict[str, str]:
        """``{"8080/tcp": "127.0.0.1:49153"}``, the shape ``envkit up --json`` prints."""
        return {key: f"{self.host}:{port}" for key, port in sorted(self.ports.items())}

    def refresh(self) -> None:
        """Re-read the host ports: Docker may assign new ones when a container restarts."""
        _engine.call(f"inspect {self.service}", self.container.reload)
        self.ports = _published_ports(self.container)

    def state(self) -> ContainerState:
        """Reload and summarize the container's state (one engine request)."""
        _engine.call(f"inspect {self.service}", self.container.reload)
        raw = self.container.attrs.get("State", {})
        health = raw.get("Health", {}).get("Status") if raw.get("Health") else None
        return ContainerState(
            status=str(raw.get("Status", "unknown")),
            exit_code=raw.get("ExitCode"),
            oom_killed=bool(raw.get("OOMKilled", False)),
            health=health,
        )

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr, less :attr:`secrets`.

        Readiness and dependency errors quote this text, and errors end up in CI logs
        and ``failure.txt`` artifacts; a service that prints its configuration would
        otherwise publish its secret there.
        """
        raw = _engine.call(f"read logs of {self.service}", self.container.logs)
        return redact(bytes(raw).decode("utf-8", "replace"), self.secrets)

    def exec(self, command: Sequence[str]) -> tuple[int, str]:
        """Run *command* in the container; return its exit code and output, less :attr:`secrets`.

        Readiness probes run through here, and a failed ``Exec`` check quotes the output.
        """
        # One attempt: a retried exec could outlast the readiness deadline several times.
        result = _engine.call(
            f"exec in {self.service}", lambda: self.container.exec_run(list(command)),
            attempts=1,
        )
        output = bytes(result.output or b"").decode("utf-8", "replace")
        return int(result.exit_code), redact(output, self.secrets)

    def copy_to(self, src: Path, dst: str) -> None:
        """Copy the host file or directory *src* to the container path *dst*.

        *dst* is the path the copy gets; a *dst* ending in ``/`` is a directory that
        receives *src* under its own name. Like ``docker cp``, the copy is owned by root
        and keeps its modes.

        :raises EnvkitError: when *src* is absent or the container has no parent directory.
        """
        if not src.exists():
            raise EnvkitError(f"cannot copy {src} to service {self.service!r}: no such file or "
                              "directory on this host", fix="check the path")
        if not dst.startswith("/"):
            raise EnvkitError(f"cannot copy to {dst!r} in service {self.service!r}: the "
                              "container path is not absolute", fix=f"write it as '/{dst}'")
        folder, name = (dst.rstrip("/") or "/", src.name) if dst.endswith("/") else (
            posixpath.split(dst))
        try:
            data = _tar(src, name)
        except OSError as exc:
            raise EnvkitError(f"cannot read {src} to copy it to service {self.service!r}: "
                              f"{exc.strerror or exc}", fix="check its permissions") from None
        _engine.call(f"copy {src} to {self.service}:{dst}",
                     lambda: self.container.put_archive(folder or "/", data),
                     fix=f"check that the directory {folder or '/'} exists in the container "
                     "(create it in the image, or by exec: mkdir -p)")

    def copy_from(self, src: str, dst: Path) -> Path:
        """Copy the container file or directory *src* to the host; return where it went.

        *dst* is the path the copy gets, or an existing directory that receives it under
        its own name. An existing directory there is merged into; a file is replaced.

        :raises EnvkitError: when *src* is absent in the container or *dst*'s parent on
            the host.
        """
        target = dst / posixpath.basename(src.rstrip("/")) if dst.is_dir() else dst
        if not target.parent.is_dir():
            raise EnvkitError(f"cannot copy {self.service}:{src} to {target}: no directory "
                              f"{target.parent} on this host", fix="create it first")

        def fetch() -> tuple[bytes, str]:
            stream, info = self.container.get_archive(src)
            return b"".join(stream), str(info["name"])

        data, top = _engine.call(f"copy {self.service}:{src} to {target}", fetch,
                                 fix=f"check that {src} exists in the container "
                                 "(stack.container(service).exec_run(['ls', '-l', path]))")
        try:
            _unpack(data, top, target)
        except tarfile.TarError as exc:
            raise EnvkitError(f"cannot unpack {self.service}:{src}: {exc}",
                              fix="copy a path without links that leave it") from None
        except OSError as exc:
            raise EnvkitError(f"cannot write {self.service}:{src} to {target}: "
                              f"{exc.strerror or exc}",
                              fix="check the host path (a file cannot replace a directory) "
                              "and its permissions") from None
        return target


def _unpack(data: bytes, top: str, target: Path) -> None:
    """Unpack a ``get_archive`` tarball whose top entry is *top* to *target*."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            _extract(tar, Path(tmp))
        copied = Path(tmp) / top
        if copied.is_dir():
            shutil.copytree(copied, target, symlinks=True, dirs_exist_ok=True)
        else:
            os.replace(copied, target)


def _tar(src: Path, name: str) -> bytes:
    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(src, arcname=name, filter=as_root)
    return buffer.getvalue()


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    """Extract refusing paths outside *into* (what a compromised container could send)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return

    def escapes(path: str) -> bool:
        return path.startswith("/") or ".." in Path(path).parts

    # Pythons without tarfile's filters (3.10.11 and older) get the same refusal by hand.
    for member in tar.getmembers():
        if escapes(member.name) or ((member.issym() or member.islnk()) and escapes(
            member.linkname
        )):
            raise EnvkitError(f"refused a file from the container: {member.name!r} points "
                              "outside the copy", fix="copy a path without such links")
    tar.extractall(into)  # every member was checked above


def check_devices(spec: ServiceSpec) -> None:
    """Fail before creating anything when a mapped host device is absent.

    :raises DeviceNotFoundError: naming the device and the similar ones that exist.
    """
    for device in spec.device_mappings:
        if not os.path.exists(device.host):
            folder = os.path.dirname(device.host) or "/dev"
            stem = os.path.basename(device.host).rstrip("0123456789")
            try:
                similar = sorted(
                    os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(stem)
                )
            except OSError:
                similar = []
            raise DeviceNotFoundError(service=spec.name, device=device.host, available=similar)


def check_host_paths(spec: ServiceSpec) -> None:
    """Fail before creating anything when a bind mount's host path is absent.

    :raises SpecError: naming the service, the mount and the missing path.
    """
    for mount in spec.mounts:
        if mount.is_volume:
            continue
        if not os.path.exists(mount.source):
            raise SpecError(stack=None, service=spec.name, field="volumes", value=str(mount),
                            problem=f"the host path {mount.source} does not exist",
                            fix="create it, or correct the path (Docker would refuse the mount)")
        if stat.S_ISSOCK(os.stat(mount.source).st_mode):
            # A socket under another name or through a symlink: the engine's, perhaps.
            raise SpecError(stack=None, service=spec.name, field="volumes", value=str(mount),
                            problem=f"the host path {mount.source} is a socket",
                            fix="envkit binds no sockets into services (the Docker socket "
                            "would hand them the host); expose the service over TCP")


def create_service(
    *,
    engine: Engine,
    spec: ServiceSpec,
    image: str,
    network: str,
    labels: dict[str, str],
    container_name: str,
    volumes: Mapping[str, str] | None = None,
    reimage: Callable[[], str] | None = None,
) -> ServiceHandle:
    """Create and start *spec*'s container on *network* and learn its host ports.

    Three requests: create, start, and one inspect for the ports Docker picked.

    :param volumes: the engine name of each of the stack's volumes, by spec name.
    :param reimage: makes *image* present again and returns its tag; called once if the
        engine has no such image (removed since a resolver cached it), then create retried.
    :raises EngineError: when Docker refuses the container.
    """
    api = engine.client.api
    action = f"start service {spec.name!r} ({image})"
    fix = "check the service's image, command, devices and volumes"
    create = _create_args(engine, spec, image, network=network, labels=labels,
                          container_name=container_name, volumes=volumes or {})
    attempts: list[int] = []
    reimaged: list[int] = []

    def start() -> str:
        if attempts:
            _remove_partial(engine, container_name, labels)
        attempts.append(1)
        try:
            ident = str(api.create_container(**create)["Id"])
        except docker.errors.ImageNotFound:
            if reimage is None or reimaged:
                raise
            reimaged.append(1)  # once: an image that vanishes again is someone's cleanup
            create["image"] = reimage()
            ident = str(api.create_container(**create)["Id"])
        api.start(ident)
        return ident

    ident = _engine.call(action, start, attempts=3, network_race=True, fix=fix)
    container: Container = _engine.call(f"inspect {spec.name}",
                                        lambda: engine.client.containers.get(ident))
    return ServiceHandle(
        service=spec.name, image=image, container=container, host=engine.host_address,
        ports=_published_ports(container), secrets=secret_values([spec.environment]),
    )


def _remove_partial(engine: Engine, name: str, labels: dict[str, str]) -> None:
    """Remove what a failed attempt created, if it carries this stack's labels."""
    # Best effort: its failure must not replace the start failure being retried.
    with contextlib.suppress(docker.errors.DockerException):
        leftover = engine.client.containers.get(name)
        if leftover.labels.get("envkit.stack") == labels.get("envkit.stack"):
            leftover.remove(force=True, v=True)


def _create_args(
    engine: Engine, spec: ServiceSpec, image: str, *, network: str,
    labels: dict[str, str], container_name: str, volumes: Mapping[str, str],
) -> dict[str, Any]:
    """The engine's create request for *spec*, through docker-py's public low-level API."""
    api = engine.client.api
    mounts = [
        Mount(target=m.target, type="volume" if m.is_volume else "bind",
              source=volumes[m.source] if m.is_volume else m.source, read_only=m.read_only)
        for m in spec.mounts
    ]
    host_config = api.create_host_config(
        network_mode=network,
        # Host port left empty: Docker binds a free one itself, so nothing can race us.
        port_bindings={str(p): (engine.publish_ip, None) for p in spec.published},
        init=spec.init,
        devices=[str(d) for d in spec.device_mappings],
        device_cgroup_rules=list(spec.device_cgroup_rules) or None,
        tmpfs={path: options for path, _, options in (t.partition(":") for t in spec.tmpfs)},
        security_opt=["no-new-privileges"],
        # Least privilege: no capability but those the spec names (see envkit._privileges).
        cap_drop=["ALL"],
        cap_add=list(_capabilities(spec)) or None,
        group_add=list(_groups(spec)) or None,
        read_only=spec.read_only,
        pids_limit=spec.pids_limit,
        mem_limit=spec.mem_limit,
        mounts=mounts,
    )
    endpoint = api.create_endpoint_config(aliases=[spec.name, *spec.aliases])
    return {
        "image": image,
        "command": list(spec.command) if spec.command is not None else None,
        "entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "stop_signal": spec.stop_signal,
        "healthcheck": spec.healthcheck.engine_config() if spec.healthcheck else None,
        "name": container_name,
        "hostname": spec.name,
        "user": spec.user,
        "environment": dict(spec.environment),
        "labels": labels,
        "ports": [(p.number, p.protocol) for p in spec.published],
        "host_config": host_config,
        "networking_config": api.create_networking_config({network: endpoint}),
        "detach": True,
    }


def _capabilities(spec: ServiceSpec) -> tuple[str, ...]:
    """The spec's ``cap_add``, and ``MKNOD`` when a device cgroup rule allows mknod (``m``).

    Such a rule exists to let the container create device nodes while it runs (hot-plug),
    which the kernel refuses without the capability; no other rule or field brings it.
    """
    mknod = any("m" in rule.rsplit(" ", 1)[-1] for rule in spec.device_cgroup_rules)
    return tuple(sorted({*spec.cap_add, *(["MKNOD"] if mknod else [])}))


def _groups(spec: ServiceSpec) -> tuple[str, ...]:
    """The spec's ``group_add``, and the group of each mapped host device node.

    Docker makes a mapped node in the container with the host's owner, group and mode
    (``root:video 0660`` for a camera): its group is what lets a service that does not run
    as root open it, and mapping a device says the service is to use it. The root group is
    never added (it would open more than the device).
    """
    found = [str(g) for g in spec.group_add]
    for device in spec.device_mappings:
        with contextlib.suppress(OSError):  # check_devices reports a missing node
            gid = str(os.stat(device.host).st_gid)
            if gid != "0" and gid not in found:
                found.append(gid)
    return tuple(found)


def _published_ports(container: Container) -> dict[str, int]:
    bindings = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
    ports: dict[str, int] = {}
    for key, entries in bindings.items():
        for entry in entries or []:
            # An IPv6 twin of the binding may exist; any entry carries the same port.
            ports.setdefault(key, int(entry["HostPort"]))
    return ports

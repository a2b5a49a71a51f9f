"""Cameras that appear in and vanish from a running camera service (hot-plug).

A synthetic camera is a marker file in the service's synthetic directory (see the
camera service's README). A real device is a character node made inside the running
container with ``mknod``; the kernel lets the container create and open it only when the
service was created with a matching device cgroup rule (``c 81:* rmw`` for V4L2, see
:data:`V4L2_RULE`). Both go through the stack's ``exec``, so the core stays camera-free.
The service runs as an unprivileged user without capabilities; a node is made by ``exec``
as root in the ``video`` group (the service's), with the ``MKNOD`` capability that a rule
allowing ``m`` brings (see :class:`~envkit.spec.ServiceSpec`), owned ``root:video 0660``.
The camera service polls ``/dev/video*`` and its marker directory (0.5 s in the default
stack), sends ``camera_status_update``, and adds or deletes the MediaMTX path ``cameraN``.
"""

from __future__ import annotations

import os
import re
import stat
from typing import TYPE_CHECKING

from envkit.errors import EnvkitError

if TYPE_CHECKING:
    from envkit.runtime import Stack

SERVICE = "camera-service"
SYNTHETIC_DIR = "/run/camera-service/synthetic"
#: V4L2's character major: a service created with this rule can take any real camera.
V4L2_MAJOR = 81
V4L2_RULE = f"c {V4L2_MAJOR}:* rmw"
_VIDEO = re.compile(r"^video(\d+)$")


def _taken(stack: Stack, service: str) -> set[int]:
    """Indexes of the container's ``/dev/videoN`` nodes and synthetic markers."""
    result = stack.exec(service, f"ls /dev {SYNTHETIC_DIR} 2>/dev/null; true")
    return {int(m.group(1)) for m in (_VIDEO.match(w) for w in result.output.split()) if m}


def _index(stack: Stack, service: str, preferred: int | None) -> int:
    taken = _taken(stack, service)
    if preferred is not None and preferred not in taken:
        return preferred
    return next(i for i in range(len(taken) + 1) if i not in taken)


#: Who makes and removes device nodes in the container: root (the owner of its /dev), in
#: the group through which the service opens cameras.
NODE_MAKER = "0:video"


def _run(stack: Stack, service: str, command: str, what: str, fix: str, *,
         user: str | None = None) -> None:
    result = stack.exec(service, command, user=user)
    if result.exit_code != 0:
        raise EnvkitError(f"could not {what} in {service} of stack {stack.id}: "
                          f"{result.output.strip() or f'exit code {result.exit_code}'}", fix=fix)


def plug_camera(stack: Stack, service: str = SERVICE, device: str | None = None, *,
                mode: str = "") -> str:
    """Plug a camera into *service* while it runs; return its path in the container.

    :param device: a host character device (a leased ``/dev/videoN``) made inside the
        container under the same name when free; ``None`` plugs a synthetic camera.
    :param mode: a synthetic camera's ``WIDTHxHEIGHT[@FPS]``, or empty for the defaults.
    :raises EnvkitError: *device* is no character device, or the service lacks the device
        cgroup rule that lets it make and open the node.
    """
    if device is None:
        index = _index(stack, service, None)
        content = f"echo {mode} >" if mode else ":>"
        _run(stack, service, f"mkdir -p {SYNTHETIC_DIR} && {content} {SYNTHETIC_DIR}/video{index}",
             "add a synthetic camera", "check that the service is the camera service")
        return f"/dev/video{index}"
    info = os.stat(device)
    if not stat.S_ISCHR(info.st_mode):
        raise EnvkitError(f"{device} is not a character device",
                          fix="plug a V4L2 node (/dev/videoN), or device=None for a synthetic one")
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    found = _VIDEO.match(os.path.basename(device))
    index = _index(stack, service, int(found.group(1)) if found else None)
    node = f"/dev/video{index}"
    # Docker's default cgroup lets any node be made (m) but not opened (rw): open it once,
    # so a missing rule fails here (EPERM) rather than as the service's ERROR later.
    # A failed mknod must fail the call (it once passed silently as a case that matched
    # nothing); an open that fails for want of a driver (ENXIO) is fine, EPERM is not.
    _run(stack, service, f"mknod -m 660 {node} c {major} {minor} || exit 1; "
         f"out=$( (: <> {node}) 2>&1 ) || case $out in *ermitted*) rm -f {node}; "
         f"echo \"$out\"; exit 1;; esac", f"open {node} ({major}:{minor})",
         f"create the service with device_cgroup_rules=['c {major}:* rmw'] "
         f"(camera.default_stack(..., hotplug=True) has {V4L2_RULE!r}); the rule also "
         "gives it the MKNOD capability", user=NODE_MAKER)
    return node


def unplug_camera(stack: Stack, service: str, device: str) -> None:
    """Take the camera *device* (the path :func:`plug_camera` returned) out of *service*.

    :raises EnvkitError: *device* is not a ``/dev/videoN`` path.
    """
    found = _VIDEO.match(os.path.basename(device))
    if not found or not device.startswith("/dev/"):
        raise EnvkitError(f"{device!r} is not a camera of the container",
                          fix="pass the /dev/videoN path that plug_camera returned")
    name = f"video{found.group(1)}"
    # The marker is the service's own file, the node root's: each goes by its owner.
    _run(stack, service, f"rm -f {SYNTHETIC_DIR}/{name}", f"remove {device}",
         "check that the service still runs")
    _run(stack, service, f"[ ! -e /dev/{name} ] || rm -f /dev/{name}", f"remove {device}",
         "check that the service still runs", user=NODE_MAKER)

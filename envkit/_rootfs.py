"""Bootstrap a Debian root filesystem and import it as an image, for registry-less machines.

A fresh engine without a registry has no image at all, so nothing can be built ``FROM``.
mmdebstrap writes a root filesystem tarball to stdout, which is streamed straight into the
engine's import endpoint; debootstrap, the fallback, needs a directory, which is then tarred.
The import is left untagged until the bootstrap tool has exited successfully, so a truncated
tarball can never be mistaken for a good base.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from typing import IO, Any

import requests
from docker.errors import DockerException

from envkit.errors import ImageBuildError, ImageError

#: Matches what an interactive ``docker run`` of the base should do, and makes UTF-8 the default.
BASE_CHANGES = ('CMD ["python3"]', "ENV LANG=C.UTF-8")
_CHUNK = 1 << 20


def parse_packages(text: str, *, source: str) -> tuple[str, ...]:
    """Read a package list: names separated by whitespace, ``#`` comments; sorted, unique.

    :param text: the list's contents.
    :param source: where it came from, for the error message.
    :raises ImageError: it names no package.
    """
    names = {word for line in text.splitlines() for word in line.split("#", 1)[0].split()}
    if not names:
        raise ImageError(image="envkit/base", problem=f"{source} lists no package",
                         fix="name at least python3")
    return tuple(sorted(names))


def core_packages() -> tuple[str, ...]:
    """Envkit's minimal base list, shipped as package data (``envkit/base/packages.txt``).

    :raises ImageError: the installed envkit lacks the file (a broken install).
    """
    resource = files("envkit").joinpath("base/packages.txt")
    try:
        text = resource.read_text()
    except OSError as exc:
        raise ImageError(image="envkit/base", problem=f"no package list in the envkit "
                         f"package ({resource}): {exc}", fix="reinstall envkit") from exc
    return parse_packages(text, source="envkit/base/packages.txt")


def bootstrap_and_import(
    api: Any,
    *,
    suite: str,
    mirror: str,
    packages: Sequence[str],
    changes: Sequence[str],
    progress: Callable[[str], None],
    tag: str = "",
) -> str:
    """Bootstrap ``suite`` with ``packages`` and import it; return the new image's ID.

    :param api: the low-level ``docker.APIClient``.
    :param tag: the tag the caller will give the image, for error messages.
    :param suite: Debian suite, e.g. ``bookworm``.
    :param mirror: Debian mirror URL.
    :param packages: packages to include.
    :param changes: Dockerfile instructions applied on import, after :data:`BASE_CHANGES`.
    :param progress: receives each line the bootstrap tool logs.
    :raises ImageError: neither mmdebstrap nor debootstrap is installed.
    :raises ImageBuildError: the bootstrap or the import failed; carries the tool's log.
    """
    log: list[str] = []

    def note(line: str) -> None:
        log.append(line)
        progress(line)

    def fail(reason: str) -> ImageBuildError:
        return ImageBuildError(
            image=tag or f"envkit/base:{suite}", context=f"debian {suite} from {mirror}",
            reason=reason, build_log=log,
        )  # fmt: skip

    try:
        tool, result, rc = _import(api, suite=suite, mirror=mirror, packages=packages,
                                   changes=changes, note=note)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        raise fail(f"debootstrap exited with status {exc.returncode}") from exc
    except _ImportFailed as exc:
        why = f"{exc.tool} exited with status {exc.rc}" if exc.rc else f"import failed: {exc}"
        raise fail(why) from exc.__cause__
    image_id = _decode_import(result)
    if rc != 0 or not image_id:
        if image_id:
            # An untagged leftover would be harmless, but do not leave one when we can help it.
            with contextlib.suppress(DockerException):
                api.remove_image(image_id)
        raise fail(f"{tool} exited with status {rc}" if rc else f"import answered {result!r}")
    return image_id


class _ImportFailed(Exception):
    def __init__(self, tool: str, rc: int | None, cause: Exception) -> None:
        self.tool = tool
        self.rc = rc
        super().__init__(str(cause))


def _import(
    api: Any, *, suite: str, mirror: str, packages: Sequence[str], changes: Sequence[str],
    note: Callable[[str], None],
) -> tuple[str, object, int | None]:  # fmt: skip
    """Stream the tarball into the engine; return the tool, the engine's reply and exit code."""
    with _rootfs_tar(suite=suite, mirror=mirror, packages=packages, note=note) as (tool, proc):
        assert proc.stdout is not None
        try:
            result = api.import_image_from_stream(
                _chunks(proc.stdout), changes=[*BASE_CHANGES, *changes]
            )
        except (DockerException, requests.RequestException) as exc:
            raise _ImportFailed(tool, _wait(proc), exc) from exc
        return tool, result, _wait(proc)


def _which_tool() -> tuple[str, str]:
    for tool in ("mmdebstrap", "debootstrap"):
        path = shutil.which(tool)
        if path:
            return tool, path
    raise ImageError(
        image="envkit/base",
        problem="neither mmdebstrap nor debootstrap is installed, and without a registry the "
        "base image can only be bootstrapped from Debian packages",
        fix="`sudo apt-get install -y mmdebstrap` (`make install` does it), or set the "
        "BASE_IMAGE build arg to an image this engine already has",
    )


@contextmanager
def _rootfs_tar(
    *, suite: str, mirror: str, packages: Sequence[str], note: Callable[[str], None]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yield the tool name and a process whose stdout is the root filesystem tarball."""
    tool, path = _which_tool()
    include = "--include=" + ",".join(packages)
    note(f"{tool}: {suite} from {mirror} with {len(packages)} packages")
    if tool == "mmdebstrap":
        # mmdebstrap picks root mode as root and unshare mode otherwise.
        with _streaming([path, "--variant=apt", include, suite, "-", mirror], note) as proc:
            yield tool, proc
        return
    with tempfile.TemporaryDirectory(prefix="envkit-rootfs-") as tmp:
        cmd = [path, "--variant=minbase", include, suite, tmp, mirror]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as boot:
            _pump(boot.stdout, note)
        if boot.returncode != 0:
            raise subprocess.CalledProcessError(boot.returncode, cmd)
        with _streaming(["tar", "--numeric-owner", "-C", tmp, "-cf", "-", "."], note) as proc:
            yield tool, proc


@contextmanager
def _streaming(cmd: list[str], note: Callable[[str], None]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` with stdout piped to the caller and stderr forwarded line by line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = threading.Thread(target=_pump, args=(proc.stderr, note), daemon=True)
    reader.start()
    try:
        yield proc
    finally:
        # If the import died early nobody drains stdout, and the tool would block forever.
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _pump(stream: IO[bytes] | None, note: Callable[[str], None]) -> None:
    for raw in stream or ():
        line = raw.decode(errors="replace").rstrip()
        if line:
            note(line)


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    # A generator has no length, so requests sends it chunked instead of buffering it.
    while data := stream.read(_CHUNK):
        yield data


def _wait(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        return None


def _decode_import(result: object) -> str:
    """Pull the new image ID out of the import endpoint's JSON-lines reply."""
    text = result if isinstance(result, str) else json.dumps(result)
    for line in reversed(text.splitlines()):
        try:
            status = json.loads(line).get("status", "")
        except (ValueError, AttributeError):
            continue
        if isinstance(status, str) and status.startswith("sha256:"):
            return status
    return ""

"""The build context of one image: which entries it holds, their hash, and their tarball.

Kept apart from the engine code because it is pure. The entry list comes from docker-py's
own ``.dockerignore`` matcher (:func:`docker.utils.build.exclude_paths`, a port of the
engine's), and the tarball from its :func:`~docker.utils.build.create_archive`, so the
context is what ``docker build`` would send: a symlink is sent as a symlink entry (one to a
directory is not followed), and it is hashed as its target path. The same list is hashed
into the tag and packed for the engine, so a tag always describes exactly what was built.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from docker.utils.build import create_archive, exclude_paths

#: Tool caches that change on every local run; prepended to the user's ``.dockerignore``
#: (where a ``!`` line can still bring them back) so running tests does not churn tags.
IMPLICIT_IGNORES = (
    "**/__pycache__", "**/*.pyc", "**/*.pyo", ".git",
    "**/.pytest_cache", "**/.mypy_cache", "**/.ruff_cache",
)  # fmt: skip
#: Where a Dockerfile from outside the context goes in the tarball.
OUTSIDE_DOCKERFILE = ".envkit.Dockerfile"
#: Bump when the serialization below changes, so old tags are not mistaken for new ones.
_HASH_VERSION = b"envkit-context-v2\0"


@dataclass(frozen=True, kw_only=True)
class Context:
    """One build context, listed: what is hashed is what is sent.

    :param root: the context directory.
    :param entries: paths relative to *root* (files, directories, symlinks), sorted.
    :param dockerfile: the Dockerfile's name inside the tarball, as the API wants it.
    :param extra: files added to the tarball that are not under *root* (name -> text).
    """

    root: Path
    entries: tuple[str, ...]
    dockerfile: str
    extra: Mapping[str, str]


def ignore_patterns(context: Path) -> list[str]:
    """The implicit cache patterns followed by the context's ``.dockerignore`` lines.

    Lines are read as docker-py's ``APIClient.build`` reads them (blank and ``#`` lines
    dropped); matching them is left to docker-py.
    """
    patterns = list(IMPLICIT_IGNORES)
    path = context / ".dockerignore"
    if path.is_file():
        lines = (line.strip() for line in path.read_text().splitlines())
        patterns += [line for line in lines if line and not line.startswith("#")]
    return patterns


def list_context(context: Path, dockerfile: Path) -> Context:
    """List ``context`` as ``docker build`` would send it, with ``dockerfile`` in it.

    :param context: the build context directory (absolute).
    :param dockerfile: the Dockerfile (absolute); when outside *context* it is carried
        under :data:`OUTSIDE_DOCKERFILE`, as the docker CLI does for ``-f ../x``.
    """
    inside = _relative_inside(dockerfile, context)
    name = inside if inside is not None else OUTSIDE_DOCKERFILE
    entries = sorted(exclude_paths(str(context), ignore_patterns(context), dockerfile=name))
    extra = {} if inside is not None else {OUTSIDE_DOCKERFILE: dockerfile.read_text()}
    return Context(root=context, entries=tuple(entries), dockerfile=name, extra=extra)


def _relative_inside(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None


def hash_context(
    ctx: Context, *, args: Mapping[str, str], base: str, extra: Sequence[str] = ()
) -> str:
    """Return the sha256 hex digest naming one build's inputs.

    Each field is length-prefixed so no two different inputs can serialize alike.

    :param ctx: the listed context.
    :param args: the build args as sent to the engine.
    :param base: identity of the resolved base ("" when there is none to resolve), so
        rebuilding the base rebuilds everything on top of it.
    :param extra: further inputs (target stage, requirements digest, ...).
    """
    digest = hashlib.sha256(_HASH_VERSION)

    def put(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "big") + data)

    for rel in ctx.entries:
        if rel in ctx.extra:
            continue  # overridden in the tarball, as create_archive does
        path = ctx.root / rel
        st = path.lstat()
        put(rel.encode())
        put(f"{st.st_mode:o}".encode())  # type bits too: a file and a link never agree
        if stat.S_ISLNK(st.st_mode):
            put(os.readlink(path).encode())
        elif stat.S_ISREG(st.st_mode):
            put(path.read_bytes())
    for name in sorted(ctx.extra):
        put(f"extra:{name}".encode())
        put(ctx.extra[name].encode())
    put(f"dockerfile:{ctx.dockerfile}".encode())
    for key in sorted(args):
        put(f"arg:{key}={args[key]}".encode())
    put(f"base:{base}".encode())
    for item in extra:
        put(f"extra-input:{item}".encode())
    return digest.hexdigest()


def context_tar(ctx: Context) -> IO[bytes]:
    """Pack exactly the listed entries (and extra files), so the engine sees what was hashed."""
    # The caller closes it once the engine has read it (a context can be large: not in RAM).
    fileobj: Any = tempfile.TemporaryFile()  # noqa: SIM115
    return create_archive(  # type: ignore[no-any-return]
        root=str(ctx.root), files=list(ctx.entries), fileobj=fileobj,
        extra_files=sorted(ctx.extra.items()),
    )  # fmt: skip

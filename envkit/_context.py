"""The build context of one image: which files it holds, their hash, and their tarball.

Kept apart from the engine code because it is pure: the same file list is hashed into the tag
and sent to the engine, so a tag always describes exactly what was built.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path

_SKIP_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
#: Bump when the serialization below changes, so old tags are not mistaken for new ones.
_HASH_VERSION = b"envkit-context-v1\0"


def _ignore_patterns(context: Path) -> list[str]:
    """Read ``.dockerignore`` minimally: plain glob lines; ``!`` exceptions are not honoured."""
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [ln.strip("/") for ln in lines if ln and not ln.startswith(("#", "!"))]


def _ignored(rel: str, patterns: Sequence[str]) -> bool:
    parts = rel.split("/")
    if rel.endswith(_SKIP_SUFFIXES) or _SKIP_DIRS.intersection(parts[:-1]):
        return True
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch(p, pat) or fnmatch(parts[-1], pat) for pat in patterns for p in prefixes)


def context_files(context: Path) -> tuple[str, ...]:
    """List the build context as sorted POSIX paths relative to ``context``.

    The same list is hashed and sent to the engine, so the tag describes exactly what was
    built. Caches (``__pycache__``, ``*.pyc``) are dropped: they change on every run.

    :param context: the directory holding the Dockerfile.
    """
    patterns = _ignore_patterns(context)
    found: list[str] = []
    for root, dirs, files in os.walk(context):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for fname in files:
            rel = (Path(root) / fname).relative_to(context).as_posix()
            if rel in ("Dockerfile", ".dockerignore") or not _ignored(rel, patterns):
                found.append(rel)
    return tuple(sorted(found))


def hash_context(
    context: Path, files: Sequence[str], *, args: Mapping[str, str], base_id: str
) -> str:
    """Return the sha256 hex digest naming one build's inputs.

    Each field is length-prefixed so no two different inputs can serialize alike.

    :param context: the build context directory.
    :param files: paths from :func:`context_files`.
    :param args: the build args as sent to the engine.
    :param base_id: image ID of the resolved base ("" when the Dockerfile has none to resolve),
        so rebuilding the base rebuilds everything on top of it.
    """
    digest = hashlib.sha256(_HASH_VERSION)

    def put(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "big") + data)

    for rel in sorted(files):
        path = context / rel
        st = path.lstat()
        put(rel.encode())
        put(f"{st.st_mode & 0o777:o}".encode())
        put(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
    for key in sorted(args):
        put(f"arg:{key}={args[key]}".encode())
    put(f"base:{base_id}".encode())
    return digest.hexdigest()


def context_tar(context: Path, files: Sequence[str]) -> io.BytesIO:
    """Pack exactly ``files`` as the build context, so the engine sees what was hashed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in files:
            tar.add(context / rel, arcname=rel, recursive=False)
    buf.seek(0)
    return buf

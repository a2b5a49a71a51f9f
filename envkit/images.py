"""Content-addressed images, built once per machine even when many workers ask at once.

A :class:`~envkit.spec.Build` becomes ``envkit/<project>/<name>:<hash12>``, where the hash
covers the build context (as ``docker build`` would send it, ``.dockerignore`` applied by
docker-py), the Dockerfile, the build args, the target and the identity of the base. Equal
inputs give the same tag on every run, so the expensive step (the build) is skipped whenever
one inspect call finds the tag; any change gives a new tag, so a stale image is never reused.
The project in the tag keeps two projects' ``camera-service`` apart. Parallel pytest
workers are separate processes, so they serialize on a per-tag file lock and re-check the
tag after acquiring it: the first builds, the rest find its result.

Machines without a registry cannot pull a ``FROM`` image, so a Debian base is bootstrapped
(:mod:`envkit._rootfs`) for each package set: envkit's core list, plus the build's
packages, plus the project's. Its tag carries the set's digest, so projects with different
lists each get their own base and never rebuild another's. A build naming a requirements
file gets a ``<name>-deps`` layer on that base holding wheels the host downloaded
(:mod:`envkit._wheels`), and the Dockerfile's ``BASE_IMAGE`` is that layer.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import requests
from docker.errors import DockerException

from envkit import _engine, _rootfs, _wheels
from envkit._context import Context, hash_context, list_context
from envkit._images_build import Plan, Sources, build_once, find_image, obtain
from envkit._images_naming import (
    BASE_REPO,
    LABEL_BASE,
    LABEL_HASH,
    LABEL_IMAGE,
    LABEL_PACKAGE_LIST,
    LABEL_PACKAGES,
    LABEL_PROJECT,
    ImageStatus,
    base_tag,
    check_component,
    fold_project,
    label,
    packages_digest,
)
from envkit.errors import EngineError, ImageError
from envkit.spec import Build

__all__ = [
    "BASE_ARG", "LABEL_BASE", "LABEL_HASH", "LABEL_IMAGE", "LABEL_PACKAGES", "LABEL_PROJECT",
    "DockerLike", "ImageBuilder", "ImageStatus", "find_image",
]  # fmt: skip

BASE_ARG = "BASE_IMAGE"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class DockerLike(Protocol):
    """The part of ``docker.DockerClient`` used here: its low-level ``api`` client."""

    @property
    def api(self) -> Any: ...


class _Unknown(Exception):
    """A tag cannot be told without building or downloading something first."""


class ImageBuilder:
    """Build a :class:`~envkit.spec.Build` once per machine and hand back its tag.

    :param client: a ``docker.DockerClient`` (only its ``api`` is used).
    :param root: the project root: relative contexts resolve against it, and
        ``images/<name>`` is the context of a build that names none.
    :param project: the project's name, the middle of its tags (folded to fit).
    :param lock_dir: where per-tag lock files live; share it between workers.
    :param cache_dir: envkit's cache; downloaded wheels go under ``wheels/``.
    :param base_suite: Debian suite of the bootstrapped bases, e.g. ``bookworm``.
    :param base_packages: Debian packages the project adds to the base of its own builds.
    :param mirror: Debian mirror the bases are bootstrapped from.
    :param progress: receives one line per build step; None keeps builds quiet.
    :param engine: with several engines, the key of the client's engine (lock names).
    :param peers: the other engines, from which a missing image is copied rather than
        built or bootstrapped again (``ENVKIT_DOCKER_HOSTS``); None for one engine.
    """

    def __init__(
        self,
        *,
        client: DockerLike,
        root: Path,
        project: str,
        lock_dir: Path,
        cache_dir: Path,
        base_suite: str = "bookworm",
        base_packages: Sequence[str] = (),
        mirror: str = DEFAULT_MIRROR,
        progress: Callable[[str], None] | None = None,
        engine: str = "",
        peers: Sources | None = None,
    ) -> None:
        self._client = client
        self._engine = engine
        self._peers = peers
        self._api = client.api
        self.root = Path(root)
        self.project = fold_project(project)
        self._lock_dir = Path(lock_dir)
        self._cache_dir = Path(cache_dir)
        self._suite = base_suite
        self._base_packages = tuple(sorted(set(base_packages)))
        self._mirror = mirror
        self._progress = progress
        # A base cannot change under a running session except through us, so its ID is
        # resolved once per builder; that keeps a cached ensure() at one inspect call.
        self._base_ids: dict[str, str] = {}
        # Tags resolve() saw present: later stacks skip the inspect. Safe because an image
        # removed since then fails container create with "No such image", on which the
        # runtime asks again with recheck=True (see _containers.create_service).
        self._seen: set[str] = set()
        self._core: tuple[str, ...] | None = None
        self._target: _wheels.Target | None = None
        self._mutex = threading.Lock()

    # --- public queries -------------------------------------------------------------------

    @property
    def core_packages(self) -> tuple[str, ...]:
        """Envkit's minimal base package list (package data ``envkit/base/packages.txt``)."""
        if self._core is None:
            self._core = _rootfs.core_packages()
        return self._core

    def packages_for(self, build: Build) -> tuple[str, ...]:
        """The base package set of *build*: core, its own, and the project's if it is ours."""
        extra = set(build.packages)
        if build.namespace is None:
            extra.update(self._base_packages)
        return tuple(sorted(set(self.core_packages) | extra))

    @property
    def base_tag(self) -> str:
        """The base of this project's own builds: core plus the project's packages."""
        return base_tag(self._suite, (*self.core_packages, *self._base_packages))

    def status(self, build: Build) -> ImageStatus:
        """What tag *build* has today and whether it is present; builds, pulls nothing.

        :raises ImageError: the build is malformed (no context, no Dockerfile, bad name).
        """
        try:
            plan = self._plan(build, make=False)
        except _Unknown as why:
            return ImageStatus(name=build.name, tag=None, present=False, problem=str(why))
        return ImageStatus(name=build.name, tag=plan.tag, present=self._present(plan.tag))

    def tag_for(self, build: Build) -> str | None:
        """The tag *build* has today, or None when its base (or wheels) are not there yet.

        Never builds, bootstraps, pulls or downloads: safe for ``ls`` and ``doctor``.

        :raises ImageError: the build is malformed (no context, no Dockerfile, bad name).
        """
        return self.status(build).tag

    # --- building -------------------------------------------------------------------------

    def ensure(self, build: Build) -> str:
        """Return the tag for *build*, building it (once, under a lock) if absent.

        :raises ImageError: no such context or Dockerfile, its base or wheels cannot be had.
        :raises ImageBuildError: the build failed; the error carries the build log.
        :raises EngineError: the engine kept refusing a request.
        """
        plan = self._plan(build, make=True)
        build_once(self._api, plan, lock_dir=self._lock_dir, say=self._say,
                   engine=self._engine, peers=self._peers)
        return plan.tag

    def ensure_base(self, packages: Sequence[str] | None = None) -> str:
        """Return the tag of the base with core plus *packages*, bootstrapping it if missing.

        :param packages: Debian packages beyond the core list; None means the project's.
        :raises ImageError: neither mmdebstrap nor debootstrap is installed.
        :raises ImageBuildError: the bootstrap or the import failed.
        """
        extra = self._base_packages if packages is None else tuple(packages)
        tag, _ = self._own_base(tuple(sorted({*self.core_packages, *extra})), make=True)
        return tag

    def resolve(self, image: str | Build, *, recheck: bool = False) -> str:
        """Return a tag present on the engine for *image* (runtime's ``ImageResolver``).

        A tag this builder saw present is trusted without asking the engine again, so
        repeated stacks cost no image inspect; the caller's container create then meets
        an image removed since, and calls back with *recheck*.

        :param image: a build request, or a plain image reference to find or pull.
        :param recheck: ask the engine (and build or pull) even for a tag seen present.
        :raises ImageError: the image can be neither built nor found nor pulled.
        """
        plan = None if isinstance(image, str) else self._plan(image, make=True)
        tag = plan.tag if plan is not None else str(image)
        if tag in self._seen and not recheck:
            return tag
        self._seen.discard(tag)
        if plan is None:
            self._external(tag)
        else:
            build_once(self._api, plan, lock_dir=self._lock_dir, say=self._say,
                       engine=self._engine, peers=self._peers)
        self._seen.add(tag)
        return tag

    # --- planning -------------------------------------------------------------------------

    def _plan(self, build: Build, *, make: bool) -> Plan:
        """Resolve *build* to its inputs and tag; *make* allows bootstraps and downloads.

        :raises ImageError: also for a file of the context that cannot be read (a
            root-owned directory a container wrote through a bind mount, say).
        """
        try:
            return self._resolve_plan(build, make=make)
        except OSError as exc:
            where = exc.filename or build.context or f"images/{build.name}"
            raise ImageError(
                image=f"envkit/{self._namespace(build)}/{build.name}",
                problem=f"cannot read {where}: {exc.strerror or exc}",
                fix="add it to the context's .dockerignore, or fix its permissions",
            ) from None

    def _resolve_plan(self, build: Build, *, make: bool) -> Plan:
        b = build.resolved(self.root)
        namespace = self._namespace(b)
        shown = f"envkit/{namespace}/{b.name}"
        check_component(b.name, what="image name", image=shown)
        context, dockerfile = self._locate(b, shown)
        ctx = list_context(context, dockerfile)
        args = dict(b.args)
        wants_base = BASE_ARG in dockerfile.read_text()
        base_ref, base_id = "", ""
        if BASE_ARG in args:
            base_ref = args[BASE_ARG]
            base_id = self._external_id(base_ref, make=make)
        elif wants_base:
            base_ref, base_id = self._own_base(self.packages_for(b), make=make)
        if b.requirements is not None:
            if not wants_base:
                raise ImageError(
                    image=shown, problem=f"requirements are set, but {dockerfile} does not "
                    f"use {BASE_ARG}, so it cannot start from the layer holding them",
                    fix=f"start the Dockerfile with `ARG {BASE_ARG}` and `FROM ${{{BASE_ARG}}}`")
            deps = self._deps_plan(b, namespace, base_ref, base_id, make=make)
            if make:
                build_once(self._api, deps, lock_dir=self._lock_dir, say=self._say,
                           engine=self._engine, peers=self._peers)
            base_ref, base_id = deps.tag, deps.digest
        if base_ref:
            args[BASE_ARG] = base_ref
        digest = hash_context(ctx, args=args, base=base_id, extra=[f"target:{b.target or ''}"])
        return Plan(name=b.name, namespace=namespace, source=str(context), context=ctx,
                     args=args, target=b.target, digest=digest, base=base_ref)  # fmt: skip

    def _namespace(self, build: Build) -> str:
        if build.namespace is None:
            return self.project
        return check_component(build.namespace, what="namespace",
                               image=f"envkit/{build.namespace}/{build.name}")  # fmt: skip

    def _locate(self, build: Build, shown: str) -> tuple[Path, Path]:
        """The context directory and the Dockerfile, both checked to exist."""
        context = Path(str(build.context))
        # Normalized without resolving symlinks: a Dockerfile that is a link stays inside.
        dockerfile = Path(os.path.normpath(context / build.dockerfile))
        if not context.is_dir():
            known = sorted(p.parent.name for p in (self.root / "images").glob("*/Dockerfile"))
            raise ImageError(
                image=shown, problem=f"no build context directory {context} (images under "
                f"{self.root / 'images'}: {', '.join(known) or 'none'})",
                fix="set the Build's `context` (relative paths resolve against the stack "
                f"file's directory or the project root {self.root}), or create {context}")
        if not dockerfile.is_file():
            raise ImageError(
                image=shown, problem=f"no Dockerfile at {dockerfile}",
                fix=f"set the Build's `dockerfile` (relative to {context}), or create it "
                f"starting with `ARG {BASE_ARG}` and `FROM ${{{BASE_ARG}}}` to build on "
                "envkit's Debian base")
        return context, dockerfile

    def _deps_plan(
        self, build: Build, namespace: str, base_ref: str, base_id: str, *, make: bool
    ) -> Plan:
        requirements = Path(str(build.requirements))
        target = self._wheel_target()
        if make:
            house = _wheels.download(requirements, cache_dir=self._cache_dir, target=target,
                                     progress=self._say)  # fmt: skip
        else:
            if not requirements.is_file():
                raise ImageError(image=f"envkit/{namespace}/{build.name}",
                                 problem=f"requirements file {requirements} not found",
                                 fix="fix the Build's `requirements` path")
            found = _wheels.cached(requirements, cache_dir=self._cache_dir, target=target)
            if found is None:
                raise _Unknown(f"the wheels of {requirements} are not downloaded yet "
                               "(the first build downloads them: `envkit images build`)")
            house = found
        ctx = Context(root=house.path, entries=house.wheels, dockerfile="Dockerfile",
                      extra={"Dockerfile": _wheels.DEPS_DOCKERFILE,
                             "requirements.txt": house.pinned()})  # fmt: skip
        args = {BASE_ARG: base_ref}
        reqs_sha = hashlib.sha256(requirements.read_bytes()).hexdigest()
        digest = hash_context(ctx, args=args, base=base_id, extra=[f"requirements:{reqs_sha}"])
        return Plan(name=f"{build.name}-deps", namespace=namespace, source=str(requirements),
                     context=ctx, args=args, target=None, digest=digest, base=base_ref)

    def _wheel_target(self) -> _wheels.Target:
        if self._target is None:
            try:
                arch = str(self._api.info().get("Architecture") or "")
            except (AttributeError, DockerException, requests.RequestException):
                arch = ""  # an engine that will not say is most likely x86_64
            self._target = _wheels.Target.of(suite=self._suite, architecture=arch)
        return self._target

    # --- bases ----------------------------------------------------------------------------

    def _own_base(self, packages: tuple[str, ...], *, make: bool) -> tuple[str, str]:
        """The tag and image ID of the base with exactly *packages*."""
        tag = base_tag(self._suite, packages)
        if tag not in self._base_ids:
            info = self._ensure_own_base(tag, packages) if make else self._inspect(tag)
            if info is None:
                raise _Unknown(f"its base {tag} is not on this engine yet (the first build "
                               "bootstraps it, about a minute: `envkit images build`)")
            with self._mutex:
                self._base_ids[tag] = str(info["Id"])
        return tag, self._base_ids[tag]

    def _external_id(self, ref: str, *, make: bool) -> str:
        info = self._external(ref) if make else self._inspect(ref)
        if info is None:
            raise _Unknown(f"its base {ref} is not on this engine (not pulled when only looking)")
        return str(info["Id"])

    def _external(self, ref: str) -> dict[str, Any]:
        """Find a user-chosen image, pulling it if absent (works on connected machines only)."""
        try:
            info = find_image(self._api, ref, pull=True, progress=self._progress)
        except EngineError as exc:
            raise ImageError(
                image=ref,
                problem=f"not on this engine, and pulling it failed: {exc.cause}",
                fix=f"`docker load` it, or (as a build arg) drop {BASE_ARG} to build on "
                "envkit's registry-free Debian base",
            ) from exc
        if info is None:
            raise ImageError(image=ref, problem="pulled, but not found after", fix="retry")
        return info

    def _ensure_own_base(self, tag: str, packages: tuple[str, ...]) -> dict[str, Any]:
        want = packages_digest(packages)

        def usable(api: Any) -> bool:
            found = find_image(api, tag)
            return found is not None and label(found, LABEL_PACKAGES) == want

        def bootstrap() -> None:
            self._say(f"bootstrapping {tag} from {self._mirror} (about a minute)")
            image_id = _rootfs.bootstrap_and_import(
                self._api, suite=self._suite, mirror=self._mirror, packages=packages,
                changes=[f"LABEL {LABEL_PACKAGES}={want}",
                         f'LABEL {LABEL_PACKAGE_LIST}="{" ".join(packages)}"'],
                progress=self._say, tag=tag,
            )  # fmt: skip
            version = tag.split(":", 1)[1]
            _engine.call(f"tag {tag}", lambda: self._api.tag(image_id, BASE_REPO, version))

        obtain(self._api, tag, lock_dir=self._lock_dir, say=self._say, make=bootstrap,
               engine=self._engine, peers=self._peers, have=usable)
        info = self._inspect(tag)
        if info is None:
            raise ImageError(image=tag, problem="vanished after import", fix="retry")
        return info

    # --- engine ---------------------------------------------------------------------------

    def _say(self, line: str) -> None:
        if self._progress is not None:
            self._progress(line)

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        """Return the engine's record of ``ref``, or None: the one call a cached ensure costs."""
        return find_image(self._api, ref)

    def _present(self, ref: str) -> bool:
        return self._inspect(ref) is not None

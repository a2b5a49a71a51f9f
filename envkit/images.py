"""Content-addressed images, built once per machine even when many workers ask at once.

``images/<name>/Dockerfile`` becomes ``envkit/<name>:<hash12>``, where the hash covers the
build context, the build args and the image ID of the resolved base. Equal inputs give the
same tag on every run, so the expensive step (the build) is skipped whenever one inspect call
finds the tag; any change gives a new tag, so a stale image is never reused. Parallel pytest
workers are separate processes, so they serialize on a per-tag file lock and re-check the tag
after acquiring it: the first builds, the rest find its result.

Machines without a registry cannot pull a ``FROM`` image, so ``envkit/base:<suite>`` is
bootstrapped from Debian packages (mmdebstrap, else debootstrap) and imported. The bootstrap
itself lives in :mod:`envkit._rootfs`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
from docker.errors import DockerException, ImageNotFound
from filelock import FileLock, Timeout

from envkit import _engine, _rootfs
from envkit._context import context_files, context_tar, hash_context
from envkit.errors import EngineError, ImageBuildError, ImageError

LABEL_IMAGE = "envkit.image"
LABEL_HASH = "envkit.context-hash"
LABEL_PACKAGES = "envkit.base.packages"
BASE_ARG = "BASE_IMAGE"
#: Docker repository components are lowercase; refusing other names early beats a 400.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
#: A base bootstrap takes about a minute; waiting far longer means the holder is stuck.
_LOCK_TIMEOUT = 1800.0


class BuildLike(Protocol):
    """What :meth:`ImageBuilder.ensure` needs from a build request (``spec.Build`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def args(self) -> Mapping[str, str]: ...


class DockerLike(Protocol):
    """The part of ``docker.DockerClient`` used here: its low-level ``api`` client."""

    @property
    def api(self) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class BuildRef:
    """A build request: the directory name under ``images/`` and its build args."""

    name: str
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """Everything a build needs, resolved before the cheap existence check."""

    name: str
    context: Path
    files: tuple[str, ...]
    args: Mapping[str, str]
    digest: str

    @property
    def tag(self) -> str:
        return f"envkit/{self.name}:{self.digest[:12]}"


class ImageBuilder:
    """Build ``images/<name>`` once per machine and hand back its content-hash tag.

    :param client: a ``docker.DockerClient`` (only its ``api`` is used).
    :param images_dir: the directory holding one sub-directory per image, and ``base/``.
    :param lock_dir: where per-tag lock files live; share it between workers.
    :param base_suite: Debian suite of the bootstrapped base, e.g. ``bookworm``.
    :param mirror: Debian mirror the base is bootstrapped from.
    :param progress: receives one line per build step; None keeps builds quiet.
    """

    def __init__(
        self,
        *,
        client: DockerLike,
        images_dir: Path,
        lock_dir: Path,
        base_suite: str = "bookworm",
        mirror: str = "http://deb.debian.org/debian",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self._api = client.api
        self._images_dir = Path(images_dir)
        self._lock_dir = Path(lock_dir)
        self._suite = base_suite
        self._mirror = mirror
        self._progress = progress
        # The base cannot change under a running session except through us, so its ID is
        # resolved once per builder; that keeps a cached ensure() at one inspect call.
        self._base_ids: dict[str, str] = {}

    @property
    def base_tag(self) -> str:
        """The tag of the bootstrapped base, ``envkit/base:<suite>``."""
        return f"envkit/base:{self._suite}"

    def tag_for(self, build: BuildLike) -> str:
        """Return the tag ``build`` has, without building it.

        The tag depends on the base's image ID, so the base is bootstrapped if it is absent.

        :raises ImageError: no ``images/<name>/Dockerfile``, or the base is unavailable.
        """
        return self._plan(build).tag

    def ensure(self, build: BuildLike) -> str:
        """Return the tag for ``build``, building it (once, under a lock) if absent.

        :raises ImageError: no such image directory, or its base cannot be had.
        :raises ImageBuildError: the build failed; the error carries the build log.
        :raises EngineError: the engine kept refusing a request.
        """
        plan = self._plan(build)
        if self._inspect(plan.tag) is not None:
            return plan.tag
        with self._locked(plan.tag):
            # Another worker may have built it while we waited for the lock.
            if self._inspect(plan.tag) is None:
                self._build(plan)
        return plan.tag

    def ensure_base(self) -> str:
        """Return ``envkit/base:<suite>``, bootstrapping it when missing or outdated.

        :raises ImageError: neither mmdebstrap nor debootstrap is installed, or
            ``images/base/packages.txt`` is missing.
        :raises ImageBuildError: the bootstrap or the import failed.
        """
        self._base_id(self.base_tag)
        return self.base_tag

    def resolve(self, image: str | BuildLike) -> str:
        """Return a tag present on the engine for ``image`` (runtime's ``ImageResolver``).

        :param image: a build request, or a plain image reference to find or pull.
        :raises ImageError: the image can be neither built nor found nor pulled.
        """
        if isinstance(image, str):
            self._external(image)
            return image
        return self.ensure(image)

    def _say(self, line: str) -> None:
        if self._progress is not None:
            self._progress(line)

    def _inspect(self, ref: str) -> dict[str, Any] | None:
        """Return the engine's record of ``ref``, or None: the one call a cached ensure costs."""
        return find_image(self._api, ref)

    def _context(self, name: str) -> Path:
        context = self._images_dir / name
        if _NAME_RE.match(name) and (context / "Dockerfile").is_file():
            return context
        known = sorted(
            p.parent.name for p in self._images_dir.glob("*/Dockerfile") if p.parent.name != "base"
        )
        raise ImageError(
            image=f"envkit/{name}",
            problem=f"no Dockerfile at {context / 'Dockerfile'} (images present in "
            f"{self._images_dir}: {', '.join(known) or 'none'})",
            fix=f"use one of the names above, or create {context}/Dockerfile starting with "
            f"`ARG {BASE_ARG}=envkit/base:{self._suite}` and `FROM ${{{BASE_ARG}}}` "
            "(names are lowercase letters, digits, '.', '_', '-')",
        )

    def _plan(self, build: BuildLike) -> _Plan:
        context = self._context(build.name)
        args = dict(build.args)
        base_id = ""
        if BASE_ARG not in args and BASE_ARG in (context / "Dockerfile").read_text():
            args[BASE_ARG] = self.base_tag
        if BASE_ARG in args:
            base_id = self._base_id(args[BASE_ARG])
        files = context_files(context)
        digest = hash_context(context, files, args=args, base_id=base_id)
        return _Plan(name=build.name, context=context, files=files, args=args, digest=digest)

    def _base_id(self, ref: str) -> str:
        if ref not in self._base_ids:
            info = self._ensure_own_base() if ref == self.base_tag else self._external(ref)
            self._base_ids[ref] = str(info["Id"])
        return self._base_ids[ref]

    def _external(self, ref: str) -> dict[str, Any]:
        """Find a user-chosen image, pulling it if absent (works on connected machines only)."""
        try:
            info = find_image(self._api, ref, pull=True, progress=self._progress)
        except EngineError as exc:
            raise ImageError(
                image=ref,
                problem=f"not on this engine, and pulling it failed: {exc.cause}",
                fix=f"`docker load` it, or (as a build arg) drop {BASE_ARG} to build on "
                f"the registry-free {self.base_tag}",
            ) from exc
        if info is None:
            raise ImageError(image=ref, problem="pulled, but not found after", fix="retry")
        return info

    def _ensure_own_base(self) -> dict[str, Any]:
        packages = _rootfs.read_packages(self._images_dir / "base" / "packages.txt")
        want = _rootfs.packages_digest(packages)
        info = self._inspect(self.base_tag)
        if info is not None and _label(info, LABEL_PACKAGES) == want:
            return info
        with self._locked(self.base_tag):
            info = self._inspect(self.base_tag)
            if info is None or _label(info, LABEL_PACKAGES) != want:
                self._say(f"bootstrapping {self.base_tag} from {self._mirror} (about a minute)")
                image_id = _rootfs.bootstrap_and_import(
                    self._api,
                    suite=self._suite,
                    mirror=self._mirror,
                    packages=packages,
                    changes=[f"LABEL {LABEL_PACKAGES}={want}"],
                    progress=self._say,
                )
                _engine.call(
                    f"tag {self.base_tag}",
                    lambda: self._api.tag(image_id, "envkit/base", self._suite),
                )
                info = self._inspect(self.base_tag)
        if info is None:
            raise ImageError(image=self.base_tag, problem="vanished after import", fix="retry")
        return info

    @contextmanager
    def _locked(self, tag: str) -> Iterator[None]:
        """Hold the machine-wide lock for ``tag``; say so when another process has it."""
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        path = self._lock_dir / (re.sub(r"[^A-Za-z0-9._-]", "_", tag) + ".lock")
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self._say(f"waiting for another process building {tag} (lock {path})")
            try:
                lock.acquire(timeout=_LOCK_TIMEOUT)
            except Timeout as exc:
                raise ImageError(
                    image=tag,
                    problem=f"another process held {path} for over {_LOCK_TIMEOUT:.0f}s",
                    fix=f"find it with `fuser {path}`; stop it if stuck, then rerun",
                ) from exc
        try:
            yield
        finally:
            lock.release()

    def _build(self, plan: _Plan) -> None:
        self._say(f"building {plan.tag} from {plan.context}")
        log: list[str] = []
        stream = _engine.call(
            f"build {plan.tag}",
            lambda: self._api.build(
                fileobj=context_tar(plan.context, plan.files),
                custom_context=True,
                tag=plan.tag,
                buildargs=dict(plan.args),
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
                labels={LABEL_IMAGE: plan.name, LABEL_HASH: plan.digest},
            ),
            attempts=2,  # a 5xx from a build is usually the Dockerfile, not a hiccup
        )
        self._follow(plan, stream, log)
        if self._inspect(plan.tag) is None:
            reason = "the build ended without producing the tag"
            raise ImageBuildError(
                image=plan.tag, context=str(plan.context), reason=reason, build_log=log
            )

    def _follow(self, plan: _Plan, stream: Iterator[dict[str, Any]], log: list[str]) -> None:
        """Relay the build's output lines to ``progress`` and stop at its first error."""

        def fail(reason: str) -> ImageBuildError:
            return ImageBuildError(
                image=plan.tag, context=str(plan.context), reason=reason, build_log=log
            )

        try:
            for chunk in stream:
                for line in str(chunk.get("stream", "")).splitlines():
                    if line.strip():
                        log.append(line.strip())
                        self._say(line.strip())
                if "error" in chunk:
                    raise fail(str(chunk["error"]).strip())
        except (DockerException, requests.RequestException) as exc:
            raise fail(f"the engine broke off the build: {exc}") from exc


def find_image(
    api: Any, ref: str, *, pull: bool = False, pull_timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """The engine's record of image *ref*; with *pull*, pulled first when absent.

    The one "present, or pull it" of envkit: project builds use it for a user's base
    image, the MediaMTX choice for the upstream image, ``doctor`` and ``images`` to look.

    :param api: a docker-py low-level ``APIClient`` (``DockerClient.api``).
    :param pull: pull *ref* when the engine lacks it; else only look.
    :param pull_timeout: stop waiting for the pull after this many seconds and answer
        None (the pull goes on in the background); None waits for it.
    :param progress: told when a pull starts.
    :raises EngineError: when the engine keeps refusing the inspect, or the pull fails
        (its ``cause`` says why, e.g. no registry).
    """

    def get() -> dict[str, Any] | None:
        try:
            return dict(api.inspect_image(ref))
        except ImageNotFound:
            return None

    info = _engine.call(f"inspect image {ref}", get)
    if info is not None or not pull:
        return info
    if progress is not None:
        progress(f"pulling {ref}")
    failure: list[EngineError] = []

    def fetch() -> None:
        try:
            _engine.call(f"pull {ref}", lambda: api.pull(ref))
        except EngineError as exc:
            failure.append(exc)

    if pull_timeout is None:
        fetch()
    else:
        # A pull that hangs on a slow registry must not hold up a caller with a deadline.
        puller = threading.Thread(target=fetch, daemon=True, name=f"envkit-pull-{ref}")
        puller.start()
        puller.join(pull_timeout)
        if puller.is_alive():
            return None
    if failure:
        raise failure[0]
    return _engine.call(f"inspect image {ref}", get)


def _label(info: Mapping[str, Any], key: str) -> str | None:
    labels = (info.get("Config") or {}).get("Labels") or {}
    value = labels.get(key)
    return None if value is None else str(value)

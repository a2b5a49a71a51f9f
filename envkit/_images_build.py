"""The engine side of image building: find or pull, a machine-wide lock, one build.

:class:`envkit.images.ImageBuilder` decides *what* to build; this module talks to the
engine about it. Parallel pytest workers are separate processes, so a build holds a file
lock named after its tag, and re-checks the tag once it has it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import requests
from docker.errors import DockerException, ImageNotFound
from filelock import FileLock, Timeout

from envkit import _engine
from envkit._context import Context, context_tar
from envkit._engines import transfer
from envkit._images_naming import LABEL_BASE, LABEL_HASH, LABEL_IMAGE, LABEL_PROJECT, image_tag
from envkit.errors import EngineError, ImageBuildError, ImageError

#: A base bootstrap takes about a minute; waiting far longer means the holder is stuck.
LOCK_TIMEOUT = 1800.0
Say = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything one build needs, resolved before the cheap existence check.

    :param name: the image's name within its project (``<name>-deps`` for a PyPI layer).
    :param namespace: the project part of the tag.
    :param source: what the user knows it by (context directory, requirements file).
    :param context: the listed build context.
    :param args: build args as sent to the engine.
    :param target: the multi-stage target, if any.
    :param digest: the hash of every input.
    :param base: the ``BASE_IMAGE`` it builds on ("" for none).
    """

    name: str
    namespace: str
    source: str
    context: Context
    args: Mapping[str, str]
    target: str | None
    digest: str
    base: str

    @property
    def tag(self) -> str:
        """``envkit/<namespace>/<name>:<digest12>``."""
        return image_tag(self.namespace, self.name, self.digest)

    @property
    def labels(self) -> dict[str, str]:
        """The ``envkit.*`` labels the image carries (``ls`` and ``prune`` select by them)."""
        labels = {LABEL_IMAGE: self.name, LABEL_PROJECT: self.namespace, LABEL_HASH: self.digest}
        if self.base:
            labels[LABEL_BASE] = self.base
        return labels


@contextmanager
def locked(lock_dir: Path, tag: str, say: Say) -> Iterator[None]:
    """Hold the machine-wide lock for ``tag``; say so when another process has it.

    :raises ImageError: the lock stayed taken for :data:`LOCK_TIMEOUT` seconds.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / (re.sub(r"[^A-Za-z0-9._-]", "_", tag) + ".lock")
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"waiting for another process building {tag} (lock {path})")
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except Timeout as exc:
            raise ImageError(
                image=tag,
                problem=f"another process held {path} for over {LOCK_TIMEOUT:.0f}s",
                fix=f"find it with `fuser {path}`; stop it if stuck, then rerun",
            ) from exc
    try:
        yield
    finally:
        lock.release()


class Sources(Protocol):
    """Other engines an image can be copied from instead of made (``_engines.Peers``)."""

    def apis(self) -> list[tuple[str, Any]]: ...


def build_once(
    api: Any, plan: Plan, *, lock_dir: Path, say: Say, engine: str = "",
    peers: Sources | None = None,
) -> None:  # fmt: skip
    """Build *plan* unless its tag is present; one process builds, the others wait.

    :param engine: with *peers*, the key of this engine (see :func:`obtain`).
    :raises ImageBuildError: the build failed; carries the build log.
    :raises EngineError: the engine kept refusing a request.
    """
    obtain(api, plan.tag, lock_dir=lock_dir, say=say, engine=engine, peers=peers,
           make=lambda: build(api, plan, say=say))


def obtain(
    api: Any, tag: str, *, lock_dir: Path, say: Say, make: Callable[[], None],
    engine: str = "", peers: Sources | None = None,
    have: Callable[[Any], bool] | None = None,
) -> None:  # fmt: skip
    """Make *tag* present on the engine of *api*: copied from a peer that has it, else made.

    Once per engine: the lock is named after *engine* and the tag, so workers bound to
    different engines fill each their own at once. Made once in all: an image no engine
    has is made under a second lock named after the tag alone, and whoever waited on it
    copies the result. With one engine (no *peers*) this is one lock per tag, as ever.

    :param make: builds or bootstraps *tag* on this engine.
    :param have: whether an engine's API client has a usable *tag* (default: it exists).
    :raises ImageBuildError: making it failed; :raises EngineError: the engine refused.
    """
    def exists(client: Any) -> bool:
        return find_image(client, tag) is not None

    present = have or exists
    if present(api):
        return
    failed: set[str] = set()
    with locked(lock_dir, f"{engine}-{tag}" if engine else tag, say):
        # Another worker may have made it while we waited for the lock.
        if present(api) or (peers is not None and _copy(peers, api, tag, present, say=say,
                                                         failed=failed)):
            return
        if peers is None:
            make()
            return
        with locked(lock_dir, tag, say):
            # Someone may have made it here or elsewhere while we waited (a run with one
            # engine shares this lock); a peer whose copy failed is not asked again.
            if not (present(api) or _copy(peers, api, tag, present, say=say, failed=failed)):
                make()


def _copy(
    peers: Sources, api: Any, tag: str, present: Callable[[Any], bool], *, say: Say,
    failed: set[str],
) -> bool:  # fmt: skip
    """Copy *tag* from the first peer that has it (none in *failed*); whether it is here."""
    for url, peer in peers.apis():
        if url in failed:
            continue
        try:
            if not present(peer):
                continue
            transfer(peer, api, tag, say=say)
        except EngineError as exc:
            failed.add(url)
            say(f"copying {tag} from {url} failed ({exc.cause}); making it here instead")
            continue
        if present(api):
            return True
    return False


def build(api: Any, plan: Plan, *, say: Say) -> None:
    """Send *plan*'s context to the engine and follow the build to its end.

    :raises ImageBuildError: the build failed; carries the build log.
    :raises EngineError: the engine kept refusing the request.
    """
    say(f"building {plan.tag} from {plan.source}")
    opened: list[IO[bytes]] = []

    def start() -> Iterator[dict[str, Any]]:
        # A fresh tarball per attempt: a retry must not send an already-read file.
        opened.append(context_tar(plan.context))
        stream: Iterator[dict[str, Any]] = api.build(
            fileobj=opened[-1], custom_context=True, dockerfile=plan.context.dockerfile,
            tag=plan.tag, buildargs=dict(plan.args), target=plan.target, labels=plan.labels,
            rm=True, forcerm=True, decode=True, pull=False,
        )  # fmt: skip
        return stream

    try:
        # attempts=2: a 5xx from a build is usually the Dockerfile, not a hiccup.
        log = _follow(plan, _engine.call(f"build {plan.tag}", start, attempts=2), say)
    finally:
        for fileobj in opened:
            fileobj.close()
    if find_image(api, plan.tag) is None:
        raise ImageBuildError(image=plan.tag, context=plan.source, build_log=log,
                              reason="the build ended without producing the tag")  # fmt: skip


def _follow(plan: Plan, stream: Iterator[dict[str, Any]], say: Say) -> list[str]:
    """Relay the build's output lines to *say* and stop at its first error."""
    log: list[str] = []

    def fail(reason: str) -> ImageBuildError:
        return ImageBuildError(image=plan.tag, context=plan.source, reason=reason, build_log=log)

    try:
        for chunk in stream:
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    log.append(line.strip())
                    say(line.strip())
            if "error" in chunk:
                raise fail(str(chunk["error"]).strip())
    except (DockerException, requests.RequestException) as exc:
        raise fail(f"the engine broke off the build: {exc}") from exc
    return log


def find_image(
    api: Any, ref: str, *, pull: bool = False, pull_timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """The engine's record of image *ref*; with *pull*, pulled first when absent.

    The one "present, or pull it" of envkit: builds use it for a user's base image, the
    MediaMTX choice for the upstream image, ``doctor`` and ``images`` to look.

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


"""The images a project defines (``images/<name>/Dockerfile``) and which tags are current.

``envkit images`` and ``envkit doctor`` ask the same questions: which images exist, what
tag each would have today, and whether that tag is on the engine. Answering them never
builds anything: without the base image no content-hash tag can be computed, and that is
reported rather than repaired behind the user's back. ``envkit images ls`` and
``prune`` also list and untag the ``envkit/*`` tags already on the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from envkit import _engine
from envkit.errors import EngineError, EnvkitError
from envkit.images import LABEL_IMAGE, BuildRef, DockerLike, ImageBuilder, find_image

#: Only tags of exactly this shape are ours to prune; ``envkit/base:<suite>`` never matches.
_PRUNABLE_RE = re.compile(r"^envkit/[a-z0-9][a-z0-9._-]*:[0-9a-f]{12}$")


def image_names(images_dir: Path) -> list[str]:
    """Names of the buildable images under *images_dir* (``base`` is bootstrapped, not built)."""
    return sorted(p.parent.name for p in Path(images_dir).glob("*/Dockerfile")
                  if p.parent.name != "base")


def present(client: Any, ref: str) -> bool:
    """Whether *ref* is an image on the engine (looks only; never pulls).

    :raises EngineError: when the engine keeps refusing the inspect.
    """
    return find_image(client.api, ref) is not None


@dataclass(frozen=True, kw_only=True)
class ImageStatus:
    """One project image today.

    :param name: the directory name under ``images/``.
    :param tag: its current content-hash tag, or None when it cannot be computed.
    :param present: whether that tag is on the engine.
    :param problem: why the tag is unknown, if it is.
    """

    name: str
    tag: str | None
    present: bool
    problem: str = ""


def statuses(client: Any, builder: ImageBuilder, images_dir: Path) -> list[ImageStatus]:
    """Current tag and presence of every project image, building nothing.

    :raises EngineError: when the engine keeps refusing requests.
    """
    if not present(client, builder.base_tag):
        why = f"{builder.base_tag} is missing, so content-hash tags cannot be computed"
        return [ImageStatus(name=n, tag=None, present=False, problem=why)
                for n in image_names(images_dir)]
    result = []
    for name in image_names(images_dir):
        try:
            tag = builder.tag_for(BuildRef(name=name))
        except EnvkitError as exc:
            result.append(ImageStatus(name=name, tag=None, present=False, problem=exc.message))
            continue
        result.append(ImageStatus(name=name, tag=tag, present=present(client, tag)))
    return result


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """One envkit image tag as the engine reports it (for ``envkit images``)."""

    tag: str
    id: str
    size: int
    created: datetime


def _envkit_images(client: DockerLike) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = _engine.call(
        "list images", lambda: client.api.images(filters={"reference": "envkit/*"})
    )
    return found


def list_images(client: DockerLike) -> list[ImageInfo]:
    """List every ``envkit/*`` tag on the engine, one entry per tag, sorted by tag.

    :raises EngineError: the engine kept refusing the listing.
    """
    result = [
        ImageInfo(
            tag=tag,
            id=str(img["Id"]),
            size=int(img.get("Size") or 0),
            created=datetime.fromtimestamp(int(img.get("Created") or 0), tz=timezone.utc),
        )
        for img in _envkit_images(client)
        for tag in img.get("RepoTags") or []
        if tag.startswith("envkit/")
    ]
    return sorted(result, key=lambda i: i.tag)


def prune_images(client: DockerLike, *, keep: set[str]) -> list[str]:
    """Untag content-hash images not in ``keep``; return the tags removed.

    Only ``envkit/<name>:<hash12>`` tags whose image carries the ``envkit.image`` label
    qualify, so the base and anything not built by envkit are never touched. A tag whose
    image a container still uses is left for the next prune rather than forced.

    :param keep: tags still wanted (e.g. from :meth:`ImageBuilder.tag_for` per build).
    :raises EngineError: the engine kept refusing a request.
    """
    removed: list[str] = []
    for img in _envkit_images(client):
        if LABEL_IMAGE not in (img.get("Labels") or {}):
            continue
        for tag in img.get("RepoTags") or []:
            if not _PRUNABLE_RE.match(tag) or tag in keep:
                continue
            try:
                _engine.call(f"remove {tag}", partial(client.api.remove_image, tag))
            except EngineError as exc:
                # Gone already (404), or a container still uses it (409): not ours to force.
                if getattr(exc.__cause__, "status_code", None) in (404, 409):
                    continue
                raise
            removed.append(tag)
    return removed

"""A project's images on the engine: which exist, which are current, which are stale.

``envkit images`` and ``envkit doctor`` ask the same questions, and answering them never
builds, bootstraps, pulls or downloads anything: a tag that cannot be computed without
doing so is reported as unknown, with the reason. Listing and pruning act on one project's
images (selected by the ``envkit.project`` label), or on every envkit image with
``project=None``; a prune keeps each image's current (else newest) tag, never removes
another project's tags, and removes a base only when pruning everything and no envkit
image is built on it (the engine itself refuses to delete a base with child images).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from envkit import _engine
from envkit._images_naming import (
    BASE_REPO,
    LABEL_BASE,
    LABEL_IMAGE,
    LABEL_PACKAGES,
    LABEL_PROJECT,
    ImageStatus,
)
from envkit.errors import EngineError, EnvkitError
from envkit.images import DockerLike, ImageBuilder, find_image
from envkit.spec import Build

__all__ = ["ImageInfo", "ImageStatus", "image_names", "list_images", "present",
           "prune_images", "statuses"]  # fmt: skip

#: Only content-hash tags are pruned: ``envkit/<project>/<name>:<hash12>``.
_HASH_TAG = re.compile(r"^envkit/[a-z0-9._-]+/[a-z0-9._-]+:[0-9a-f]{12}$")


def image_names(images_dir: Path) -> list[str]:
    """Names of the buildable images under *images_dir*: its ``<name>/Dockerfile`` dirs."""
    return sorted(p.parent.name for p in Path(images_dir).glob("*/Dockerfile"))


def present(client: Any, ref: str) -> bool:
    """Whether *ref* is an image on the engine (looks only; never pulls).

    :raises EngineError: when the engine keeps refusing the inspect.
    """
    return find_image(client.api, ref) is not None


def statuses(
    client: Any, builder: ImageBuilder, images_dir: Path | None = None
) -> list[ImageStatus]:
    """Current tag and presence of every ``images/<name>`` of the project, building nothing.

    :param images_dir: where the images are; ``<builder.root>/images`` by default.
    :raises EngineError: when the engine keeps refusing requests.
    """
    del client  # the builder looks through its own client; kept for callers' symmetry
    result = []
    for name in image_names(images_dir or builder.root / "images"):
        try:
            result.append(builder.status(Build(name=name)))
        except EnvkitError as exc:
            result.append(ImageStatus(name=name, tag=None, present=False, problem=exc.message))
    return result


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """One envkit image tag as the engine reports it (for ``envkit images``).

    :param project: the project it belongs to ("" for a base, which projects share).
    :param name: its name within the project (``base`` for a base).
    :param base: the ``BASE_IMAGE`` it was built on, if any.
    """

    tag: str
    id: str
    size: int
    created: datetime
    project: str
    name: str
    base: str


def _listing(client: DockerLike) -> list[dict[str, Any]]:
    """Every image built by envkit (``envkit.image``) and every base, one entry per image."""
    found: dict[str, dict[str, Any]] = {}
    for key in (LABEL_IMAGE, LABEL_PACKAGES):
        images: list[dict[str, Any]] = _engine.call(
            "list images", partial(client.api.images, filters={"label": key}))
        found.update({str(img["Id"]): img for img in images})
    return list(found.values())


def _info(img: dict[str, Any], tag: str) -> ImageInfo:
    labels = img.get("Labels") or {}
    is_base = tag.startswith(f"{BASE_REPO}:")
    return ImageInfo(
        tag=tag, id=str(img["Id"]), size=int(img.get("Size") or 0),
        created=datetime.fromtimestamp(int(img.get("Created") or 0), tz=timezone.utc),
        project="" if is_base else str(labels.get(LABEL_PROJECT, "")),
        name="base" if is_base else str(labels.get(LABEL_IMAGE, "")),
        base=str(labels.get(LABEL_BASE, "")),
    )  # fmt: skip


def _all_infos(client: DockerLike) -> list[ImageInfo]:
    return [_info(img, tag) for img in _listing(client)
            for tag in img.get("RepoTags") or [] if tag.startswith("envkit/")]


def list_images(client: DockerLike, *, project: str | None = None) -> list[ImageInfo]:
    """List envkit image tags, one entry per tag, sorted by tag.

    :param project: only this project's images and the bases they are built on; None
        lists every envkit image on the engine.
    :raises EngineError: the engine kept refusing the listing.
    """
    infos = _all_infos(client)
    if project is not None:
        mine = [i for i in infos if i.project == project]
        used = {i.base for i in mine}
        infos = mine + [i for i in infos if i.name == "base" and i.tag in used]
    return sorted(infos, key=lambda i: i.tag)


def _newest(infos: Iterable[ImageInfo], keep: set[str]) -> set[str]:
    """The newest tag of each (project, name) with no tag in *keep*.

    Builds named only in stack files (not ``images/<name>``) have no known current tag;
    their newest is the one a run most likely still uses.
    """
    groups: dict[tuple[str, str], list[ImageInfo]] = {}
    for info in infos:
        groups.setdefault((info.project, info.name), []).append(info)
    return {max(group, key=lambda i: i.created).tag for group in groups.values()
            if not keep.intersection(i.tag for i in group)}


def prune_images(
    client: DockerLike, *, keep: set[str], project: str | None
) -> list[str]:
    """Untag stale envkit images; return the tags removed.

    Kept: the tags in *keep*; the newest tag of each image none of whose tags is in *keep*
    (a build known only to a stack file); every image a kept image is built on (its
    ``<name>-deps`` layer, its base); and everything of other projects when *project* is
    given. Bases go only when *project* is None and nothing is built on them.
    A tag whose image a container (or a child image) still uses is left, not forced.

    :param keep: tags still wanted (the current tags from :func:`statuses`).
    :param project: the project to prune; None prunes every envkit image.
    :raises EngineError: the engine kept refusing a request.
    """
    infos = _all_infos(client)
    built = [i for i in infos if i.name != "base" and _HASH_TAG.match(i.tag)
             and (project is None or i.project == project)]
    doomed = {i.tag for i in built} - keep - _newest(built, keep)
    while True:  # a kept final image keeps its deps layer, which keeps its base
        used = {i.base for i in infos if i.tag not in doomed}
        if not doomed & used:
            break
        doomed -= used
    if project is None:
        doomed |= {i.tag for i in infos if i.name == "base" and i.tag not in used}
    removed = []
    # Bases last: the engine refuses to delete one while an image built on it remains.
    for tag in sorted(doomed, key=lambda t: (t.startswith(f"{BASE_REPO}:"), t)):
        try:
            _engine.call(f"remove {tag}", partial(client.api.remove_image, tag))
        except EngineError as exc:
            # Gone already (404), or a container or child image still uses it (409).
            if getattr(exc.__cause__, "status_code", None) in (404, 409):
                continue
            raise
        removed.append(tag)
    return removed

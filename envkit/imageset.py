"""The images a project defines (``images/<name>/Dockerfile``) and which tags are current.

``envkit images`` and ``envkit doctor`` ask the same questions: which images exist, what
tag each would have today, and whether that tag is on the engine. Answering them never
builds anything: without the base image no content-hash tag can be computed, and that is
reported rather than repaired behind the user's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker.errors import ImageNotFound

from envkit import _engine
from envkit.errors import EnvkitError
from envkit.images import BuildRef, ImageBuilder


def image_names(images_dir: Path) -> list[str]:
    """Names of the buildable images under *images_dir* (``base`` is bootstrapped, not built)."""
    return sorted(p.parent.name for p in Path(images_dir).glob("*/Dockerfile")
                  if p.parent.name != "base")


def present(client: Any, ref: str) -> bool:
    """Whether *ref* is an image on the engine."""

    def get() -> bool:
        try:
            client.api.inspect_image(ref)
        except ImageNotFound:
            return False
        return True

    return _engine.call(f"inspect image {ref}", get)


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

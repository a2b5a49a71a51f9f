"""Names, labels and tags of envkit images: pure functions, no engine.

``envkit/<project>/<name>:<hash12>`` for project images, ``.../<name>-deps:<hash12>`` for
their PyPI layer, ``envkit/base:<suite>-<digest12>`` for a Debian base, one per package
set. Docker repository components are lowercase words joined by ``.``, ``_``, ``__`` or
dashes; a name outside that is refused early rather than answered by a 400 mid-run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envkit.errors import ImageError

LABEL_IMAGE = "envkit.image"
LABEL_PROJECT = "envkit.project"
LABEL_HASH = "envkit.context-hash"
#: The base a project image was built on, so a prune can tell which bases are in use.
LABEL_BASE = "envkit.base"
LABEL_PACKAGES = "envkit.base.packages"
LABEL_PACKAGE_LIST = "envkit.base.list"
BASE_REPO = "envkit/base"
#: Docker's own grammar for one path component of a repository name.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")


@dataclass(frozen=True, kw_only=True)
class ImageStatus:
    """One image today, as far as can be told without building anything.

    :param name: the image's name within its project.
    :param tag: its current content-hash tag, or None when it cannot be computed yet.
    :param present: whether that tag is on the engine.
    :param problem: why the tag is unknown, and what would make it known.
    """

    name: str
    tag: str | None
    present: bool
    problem: str = ""


def fold_project(raw: str) -> str:
    """A project name as one repository component: kept if Docker accepts it, else folded."""
    if _COMPONENT.match(raw) and len(raw) <= 128:
        return raw
    folded = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    return folded or "project"


def check_component(value: str, *, what: str, image: str) -> str:
    """Return *value* if Docker accepts it as a repository component.

    :raises ImageError: naming the field and the allowed characters.
    """
    if _COMPONENT.match(value) and len(value) <= 128:
        return value
    raise ImageError(
        image=image,
        problem=f"{what} {value!r} cannot be part of a Docker image name",
        fix=f"rename it: lowercase letters and digits, words joined by '.', '_' or '-' "
        f"(e.g. {fold_project(value)!r})",
    )


def image_tag(namespace: str, name: str, digest: str) -> str:
    """``envkit/<namespace>/<name>:<digest12>``."""
    return f"envkit/{namespace}/{name}:{digest[:12]}"


def packages_digest(packages: Iterable[str]) -> str:
    """The sha256 of a package *set*, so order and duplicates do not count."""
    return hashlib.sha256("\n".join(sorted(set(packages))).encode()).hexdigest()


def base_tag(suite: str, packages: Iterable[str]) -> str:
    """``envkit/base:<suite>-<digest12>``: one base per suite and package set."""
    return f"{BASE_REPO}:{suite}-{packages_digest(packages)[:12]}"


def label(info: Mapping[str, Any], key: str) -> str | None:
    """A label of an inspected image, or None."""
    labels = (info.get("Config") or {}).get("Labels") or {}
    value = labels.get(key)
    return None if value is None else str(value)

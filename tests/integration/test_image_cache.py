"""Tags a process saw present are trusted, and an image removed since is made again.

One up resolves each image without asking the engine once the builder has seen its tag
(no image inspect per up); a create that then meets "No such image" re-ensures the image
(here: rebuilds it) and retries once. The image is private to this test (a nonce in its
context), so removing it touches nobody else's.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from envkit import Http, ServiceSpec, StackSpec
from envkit.demo import LOCKED_DOWN, TESTSVC
from envkit.session import Envkit
from envkit.spec import Build

pytestmark = pytest.mark.integration


def _spec(kit: Envkit, context: Path) -> StackSpec:
    (context / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
                                        "COPY nonce.txt /nonce.txt\n")
    (context / "nonce.txt").write_text(uuid.uuid4().hex)
    image = Build(name="cached", context=context,
                  args={"BASE_IMAGE": kit.images.resolve(TESTSVC)})
    return StackSpec(name="cached", services=[ServiceSpec(
        name="web", image=image, ports=[8080], ready=[Http(8080, "/health")], **LOCKED_DOWN)])


def test_an_image_removed_after_it_was_seen_is_rebuilt_at_create(
        envkit_session: Envkit, tmp_path: Path) -> None:
    spec = _spec(envkit_session, tmp_path)
    api = envkit_session.engine.client.api
    first = envkit_session.stack(spec).up()
    tag = first._handles["web"].image
    first.down()
    calls: list[str] = []
    original = api.request

    def recorded(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = url.split("?", maxsplit=1)[0]
        calls.append(f"{method} {'/'.join(path.split('/')[-2:])}")  # POST containers/create
        return original(method, url, *args, **kwargs)

    try:
        api.remove_image(tag)
        api.request = recorded
        second = envkit_session.stack(spec).up()
        api.request = original
        second.down()
        # Trusted without an inspect: the first create met the removed image, the second
        # came after the rebuild.
        creates = [c for c in calls if c == "POST containers/create"]
        assert len(creates) == 2, calls
        assert calls.index(creates[0]) < min(i for i, c in enumerate(calls) if c.endswith("/build"))
        assert api.inspect_image(tag)["Id"]
    finally:
        api.request = original
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image(tag)

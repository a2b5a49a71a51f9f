"""A container create that meets "No such image" re-ensures the image once, then retries.

The image builder trusts tags it saw present earlier in the process (no inspect per up);
this is what makes that safe when someone removed the image since. Scripted engine: no
Docker.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker
import pytest

from envkit._containers import create_service
from envkit.errors import EngineError
from envkit.spec import ServiceSpec


class _Api:
    """docker-py's request builders; create fails with "No such image" *missing* times."""

    def __init__(self, missing: int) -> None:
        self._real = docker.APIClient(base_url="unix:///nonexistent", version="1.41")
        self.missing = missing
        self.created: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        if self.missing:
            self.missing -= 1
            raise docker.errors.ImageNotFound(f"No such image: {kwargs['image']}")
        self.created.append(kwargs["image"])
        return {"Id": "c0ffee"}

    def start(self, ident: str) -> None:
        """Nothing to start: the container is scripted."""


def _create(api: _Api, reimage: Any) -> Any:
    container = SimpleNamespace(attrs={"NetworkSettings": {"Ports": {}}}, id="c0ffee")
    engine = SimpleNamespace(
        client=SimpleNamespace(api=api, containers=SimpleNamespace(get=lambda _: container)),
        host_address="127.0.0.1", publish_ip="127.0.0.1")
    return create_service(engine=engine, spec=ServiceSpec(name="web", image="img:1"),  # type: ignore[arg-type]
                          image="img:1", network="net", labels={}, container_name="s-web",
                          reimage=reimage)


def test_a_removed_image_is_made_again_and_the_create_retried() -> None:
    api, asked = _Api(missing=1), []
    handle = _create(api, lambda: asked.append(1) or "img:1")
    assert asked == [1] and api.created == ["img:1"] and handle.service == "web"


def test_an_image_missing_again_after_reimage_is_an_error_not_a_loop() -> None:
    api, asked = _Api(missing=5), []
    with pytest.raises(EngineError, match="No such image"):
        _create(api, lambda: asked.append(1) or "img:1")
    assert asked == [1] and api.created == []


def test_without_reimage_the_error_is_the_engine_s() -> None:
    with pytest.raises(EngineError, match="No such image"):
        _create(_Api(missing=1), None)

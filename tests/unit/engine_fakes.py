"""The one fake engine of the runtime's unit tests: enough for ``Stack.up`` to make a network.

Shared, so that every test of the runtime's orchestration fakes the engine the same way
(in the manner of xdist's ``MockNode``): a remote engine (no host device checks) whose
network create succeeds, and an image resolver that answers one tag.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FakeEngine:
    remote = True  # skips the host device check
    docker_host = "unix:///var/run/docker.sock"
    environ: ClassVar[dict[str, str]] = {}

    class client:
        class networks:
            @staticmethod
            def create(*args: Any, **kwargs: Any) -> None:
                return None


class Images:
    def resolve(self, image: object) -> str:
        return "img:1"

"""The core's own small kit: a two-service ``demo`` stack on a tiny HTTP service.

It is what ``envkit up --stack demo`` starts to show that an engine works, and what
envkit's own tests run; its build context ships in the wheel. Registered under the
``envkit.kits`` entry point like any other kit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envkit.kits import Kit, KitContext
from envkit.readiness import Http
from envkit.spec import Build, ServiceSpec, StackSpec

#: The tiny HTTP service: ``GET /`` says who it is, ``/health`` answers 200.
TESTSVC = Build(name="testsvc", context=Path(__file__).resolve().parent / "contexts" / "testsvc",
                namespace="envkit")


#: How envkit's own small services run: as nobody (the image's USER), with no
#: capability (envkit's default), a read-only root and a small process limit.
LOCKED_DOWN: dict[str, Any] = {"read_only": True, "tmpfs": ["/tmp:size=16m"], "pids_limit": 64}


def demo() -> StackSpec:
    """An HTTP service and a dependent that reaches it by its network alias."""
    return StackSpec(
        name="demo",
        services=[
            ServiceSpec(
                name="web", image=TESTSVC, ports=[8080],
                environment={"SERVICE_NAME": "web"}, ready=[Http(8080, "/health")],
                **LOCKED_DOWN,
            ),
            ServiceSpec(
                name="client", image=TESTSVC, ports=[8080],
                command=["python3", "/app/svc.py", "serve", "--port", "8080",
                         "--upstream", "http://web:8080/"],
                environment={"SERVICE_NAME": "client"}, ready=[Http(8080, "/health")],
                depends_on=["web"], **LOCKED_DOWN,
            ),
        ],
    )


def _demo(ctx: KitContext) -> StackSpec:
    return demo()


KIT = Kit(name="demo", stacks={"demo": _demo})

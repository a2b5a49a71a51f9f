"""The named stacks envkit ships, and the lookup of a stack by name or file path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from envkit import mediamtx
from envkit.camera import default_stack
from envkit.errors import EnvkitError
from envkit.readiness import Http
from envkit.spec import Build, ServiceSpec, StackSpec
from envkit.stackfile import load_stack_file


def demo() -> StackSpec:
    """An HTTP service and a dependent that reaches it by its network alias."""
    return StackSpec(
        name="demo",
        services=[
            ServiceSpec(
                name="web", image=Build(name="testsvc"), ports=[8080],
                environment={"SERVICE_NAME": "web"}, ready=[Http(8080, "/health")],
            ),
            ServiceSpec(
                name="client", image=Build(name="testsvc"), ports=[8080],
                command=["python3", "/app/svc.py", "serve", "--port", "8080",
                         "--upstream", "http://web:8080/"],
                environment={"SERVICE_NAME": "client"}, ready=[Http(8080, "/health")],
                depends_on=["web"],
            ),
        ],
    )


CATALOG: dict[str, Callable[[Build], StackSpec]] = {
    "demo": lambda _mediamtx: demo(),
    "default": default_stack,
}


def load_stack(ref: str, *, mediamtx_image: Build = mediamtx.STANDIN) -> StackSpec:
    """Return the stack named *ref* in the catalog, or read it from the file *ref*.

    :param mediamtx_image: the MediaMTX flavour for stacks that run one.
    :raises EnvkitError: when *ref* is neither, listing the names that exist.
    """
    if ref in CATALOG:
        return CATALOG[ref](mediamtx_image)
    path = Path(ref)
    if path.suffix in {".yml", ".yaml"} and path.is_file():
        return load_stack_file(path)
    raise EnvkitError(
        f"no stack {ref!r}: not a built-in stack ({', '.join(sorted(CATALOG))}) "
        "and not a .yml/.yaml file",
        fix="pass a built-in name or the path of a stack file (--envkit-stack / ENVKIT_STACK)",
    )

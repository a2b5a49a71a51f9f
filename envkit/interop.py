"""testcontainers-python containers inside envkit stacks, through testcontainers' public API.

A team that already has testcontainers containers (a module's ``PostgresContainer`` with its
own readiness, or a hand-made ``DockerContainer``) can put one on a running stack's
network, where the stack's services reach it by alias, and have envkit own its cleanup:
it carries the stack's labels, so ``Stack.down()``, the watchdog of a killed worker, the
sweep and the leak check treat it like the stack's own services.

Only documented builder methods are used (``with_kwargs``, ``with_name``); testcontainers'
global configuration (Ryuk included) is the caller's, untouched here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from envkit.errors import SpecError, StackStateError

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

    from envkit.runtime import Stack

C = TypeVar("C", bound="DockerContainer")


def join_stack(container: C, stack: Stack, *, alias: str) -> C:
    """Configure *container* (not yet started) to join *stack* as service *alias*.

    Call it last among the builder calls that set ``with_kwargs`` (testcontainers keeps
    one set of keyword arguments), then ``start()`` the container as usual.

    :param alias: the name the stack's services reach it by; also its ``envkit.service``.
    :raises StackStateError: when the stack is not up (its network does not exist).
    :raises SpecError: when *alias* is already a service of the stack.
    """
    from docker.types import EndpointConfig

    from envkit.runtime import StackState

    if stack.state is not StackState.UP:
        raise StackStateError(f"stack {stack.id} is {stack.state.value}, not up",
                              fix="join containers to a stack after up()")
    if alias in {svc.name for svc in stack.spec.services}:
        raise SpecError(stack=stack.spec.name, service=alias, field="alias", value=alias,
                        problem="already a service of the stack",
                        fix="give the testcontainers container another alias")
    api_version = stack.engine.api_version
    container.with_name(f"{stack.network}-{alias}")
    container.with_kwargs(
        labels=stack.ownership.service_labels(alias),
        network=stack.network,
        networking_config={stack.network: EndpointConfig(api_version, aliases=[alias])},
        hostname=alias,
        security_opt=["no-new-privileges"],
    )
    return container

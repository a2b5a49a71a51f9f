"""envkit: a private, ephemeral container stack per pytest-xdist worker.

Public names live here and nowhere else; nothing in this package touches Docker or
reads the environment at import.
"""

from __future__ import annotations

from envkit.errors import (
    DeviceNotFoundError,
    EngineError,
    EngineUnavailableError,
    EnvkitError,
    ImageBuildError,
    ImageError,
    ReadinessTimeoutError,
    SpecError,
    StackNotFoundError,
    StackStateError,
)
from envkit.readiness import Check, Exec, Healthy, Http, LogLine, NotReady, Target, Tcp
from envkit.rpc import RpcClient, RpcError, connect_rpc
from envkit.runtime import Stack, StackState
from envkit.session import Envkit
from envkit.spec import Build, Device, Port, ServiceSpec, StackSpec

__all__ = [
    "Build",
    "Check",
    "Device",
    "DeviceNotFoundError",
    "EngineError",
    "EngineUnavailableError",
    "Envkit",
    "EnvkitError",
    "Exec",
    "Healthy",
    "Http",
    "ImageBuildError",
    "ImageError",
    "LogLine",
    "NotReady",
    "Port",
    "ReadinessTimeoutError",
    "RpcClient",
    "RpcError",
    "ServiceSpec",
    "SpecError",
    "Stack",
    "StackNotFoundError",
    "StackSpec",
    "StackState",
    "StackStateError",
    "Target",
    "Tcp",
    "connect_rpc",
]

"""envkit: a private, ephemeral container stack per pytest-xdist worker.

Public names live here and nowhere else. They are re-exported lazily (as httpx keeps its
modules private behind one ``__all__``), so ``import envkit`` imports neither docker nor
testcontainers, and nothing in this package touches Docker or reads the environment at
import. The camera kit is a separate package on top: :mod:`envkit.camera`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envkit.errors import (
        DeviceNotFoundError,
        EngineError,
        EngineUnavailableError,
        EnvkitError,
        ImageBuildError,
        ImageError,
        NameNotFoundError,
        ReadinessTimeoutError,
        SpecError,
        StackNotFoundError,
        StackStateError,
    )
    from envkit.kits import Finding, Kit, KitContext
    from envkit.readiness import Check, Exec, Healthy, Http, LogLine, NotReady, Target, Tcp
    from envkit.runtime import Stack, StackState
    from envkit.session import Envkit
    from envkit.spec import Build, Device, Mount, Port, ServiceSpec, StackSpec

_EXPORTS = {
    "Build": "envkit.spec",
    "Check": "envkit.readiness",
    "Device": "envkit.spec",
    "DeviceNotFoundError": "envkit.errors",
    "EngineError": "envkit.errors",
    "EngineUnavailableError": "envkit.errors",
    "Envkit": "envkit.session",
    "EnvkitError": "envkit.errors",
    "Exec": "envkit.readiness",
    "Finding": "envkit.kits",
    "Healthy": "envkit.readiness",
    "Http": "envkit.readiness",
    "ImageBuildError": "envkit.errors",
    "ImageError": "envkit.errors",
    "Kit": "envkit.kits",
    "KitContext": "envkit.kits",
    "LogLine": "envkit.readiness",
    "Mount": "envkit.spec",
    "NameNotFoundError": "envkit.errors",
    "NotReady": "envkit.readiness",
    "Port": "envkit.spec",
    "ReadinessTimeoutError": "envkit.errors",
    "ServiceSpec": "envkit.spec",
    "SpecError": "envkit.errors",
    "Stack": "envkit.runtime",
    "StackNotFoundError": "envkit.errors",
    "StackSpec": "envkit.spec",
    "StackState": "envkit.runtime",
    "StackStateError": "envkit.errors",
    "Target": "envkit.readiness",
    "Tcp": "envkit.readiness",
}

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
    "Finding",
    "Healthy",
    "Http",
    "ImageBuildError",
    "ImageError",
    "Kit",
    "KitContext",
    "LogLine",
    "Mount",
    "NameNotFoundError",
    "NotReady",
    "Port",
    "ReadinessTimeoutError",
    "ServiceSpec",
    "SpecError",
    "Stack",
    "StackNotFoundError",
    "StackSpec",
    "StackState",
    "StackStateError",
    "Target",
    "Tcp",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'envkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__

"""Overrides of a compose file's services: :class:`ServiceSpec` fields put over the file's.

The compose keys an override replaces are taken out before anything reads them
(:func:`without_overridden`), so a key the override makes moot can neither fail
interpolation (an unset variable) nor validation; then the fields are put on the
converted spec (:func:`overridden`), ``environment`` and ``labels`` merged key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from envkit.errors import SpecError
from envkit.spec import ServiceSpec

__all__ = ["overridden", "without_overridden"]

# The compose keys an override of a ServiceSpec field replaces (and which are then not read).
_REPLACES = {"image": ("image", "build"), "command": ("command",),
             "entrypoint": ("entrypoint",), "ports": ("ports",), "devices": ("devices",),
             "volumes": ("volumes",), "tmpfs": ("tmpfs",), "user": ("user",),
             "stop_timeout": ("stop_grace_period",), "stop_signal": ("stop_signal",),
             "init": ("init",), "healthcheck": ("healthcheck",), "depends_on": ("depends_on",),
             "aliases": ("networks",), "cap_add": ("cap_add", "cap_drop"),
             "group_add": ("group_add",), "read_only": ("read_only",),
             "pids_limit": ("pids_limit",), "mem_limit": ("mem_limit",)}


def without_overridden(data: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]],
                       stack: str) -> dict[str, Any]:
    """*data* less what *overrides* replaces, so it is neither read nor interpolated."""
    services = dict(data["services"])
    for name, fields in overrides.items():
        if name not in services:
            raise SpecError(stack=stack, service=name, field="(overrides)", value=name,
                            problem=f"no such service (services: {', '.join(services)})",
                            fix="override a service of the file")
        raw = dict(services[name] or {})
        for replaced in fields:
            for key in _REPLACES.get(replaced, ()):
                raw.pop(key, None)
        if "image" in fields:  # a stand-in until the override replaces it
            raw["image"] = "envkit-overridden"
        env = raw.get("environment")
        if "environment" in fields and isinstance(env, Mapping):
            raw["environment"] = {k: v for k, v in env.items() if k not in fields["environment"]}
        elif "environment" in fields and isinstance(env, list):
            raw["environment"] = [e for e in env
                                  if str(e).partition("=")[0] not in fields["environment"]]
        services[name] = raw
    return {**data, "services": services}


def overridden(spec: ServiceSpec, fields: Mapping[str, Any]) -> ServiceSpec:
    """*spec* with *fields* put over it; ``environment`` and ``labels`` merge key by key.

    :raises SpecError: for a name that is not a :class:`ServiceSpec` field.
    """
    if not fields:
        return spec
    merged = dict(fields)
    for key in ("environment", "labels"):
        if key in merged:
            merged[key] = {**getattr(spec, key), **merged[key]}
    try:
        return replace(spec, **merged)
    except TypeError as exc:
        raise SpecError(stack=None, service=spec.name, field="(overrides)", value=sorted(fields),
                        problem=f"not ServiceSpec fields: {exc}",
                        fix="override ServiceSpec fields (image, environment, devices, ...)"
                        ) from None

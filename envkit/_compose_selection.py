"""Which services of a compose file run: those asked for or whose profiles are active.

Compose's rules: a service named on the command line runs whatever its profiles, else
every service without profiles or with an active one; each brings what it depends on,
and a service may not depend on one whose profiles are all off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envkit.errors import SpecError

__all__ = ["profile_names", "selected"]


def profile_names(text: str) -> list[str]:
    """``COMPOSE_PROFILES``' comma-separated names, blanks dropped."""
    return [p.strip() for p in text.split(",") if p.strip()]


def selected(services: Mapping[str, Any], wanted: Sequence[str] | None, active: set[str],
             stack: str) -> list[str]:
    """The services to run, in file order, with everything they depend on.

    Those asked for, whatever their profiles (as compose runs a service named on its
    command line), else every one without profiles or with an active one.
    """
    if wanted is not None:
        unknown = [w for w in wanted if w not in services]
        if unknown:
            raise SpecError(stack=stack, service=unknown[0], field="services", value=unknown,
                            problem=f"no such service (services: {', '.join(services)})",
                            fix="name services of the file")
        todo = list(wanted)
    else:
        todo = [n for n, s in services.items()
                if not (s or {}).get("profiles") or active & set((s or {})["profiles"])]
    chosen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in chosen or name not in services:
            continue
        chosen.add(name)
        deps = [str(d) for d in (services[name] or {}).get("depends_on") or []]
        if wanted is None:
            _refuse_inactive(services, name, deps, active, stack)
        todo.extend(deps)
    return [n for n in services if n in chosen]


def _refuse_inactive(services: Mapping[str, Any], name: str, deps: Sequence[str],
                     active: set[str], stack: str) -> None:
    """Compose's rule: a running service may not depend on one whose profiles are off."""
    for dep in deps:
        profiles = set((services.get(dep) or {}).get("profiles") or [])
        if profiles and not active & profiles:
            raise SpecError(
                stack=stack, service=name, field="depends_on", value=dep,
                problem=f"depends on {dep!r}, whose profiles ({', '.join(sorted(profiles))}) "
                "are not active", fix="activate one (COMPOSE_PROFILES, profiles=...), or name "
                f"the services to run (services=[{name!r}, ...]) as compose's command line does")

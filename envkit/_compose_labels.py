"""``python -m envkit.compose labels``: envkit's labels for a stack ``docker compose`` runs.

People who start a compose file themselves still want ``envkit ps``, ``envkit down`` and
``envkit gc`` to see it; an override file that stamps envkit's label contract on the
containers, the network and the volumes is all it takes, with no change to their file.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from envkit import _compose_yaml, labels

__all__ = ["labels_override"]


class _Plain(yaml.SafeDumper):
    """Writes repeated mappings out in full: no ``&id001`` anchors in a file people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def labels_override(
    path: str | Path, *, stack: str, session: str = "compose", owner: str | None = None,
    created: str | None = None,
) -> str:
    """A compose override file giving *path*'s stack envkit's labels, as YAML text.

    With ``docker compose -f FILE -f OVERRIDE up``, every container, the default network
    and the named volumes carry ``envkit.stack=<stack>`` (and the rest of the contract,
    ``envkit.detached=true``: the stack outlives the shell that started it), so
    ``envkit ps`` lists it, ``envkit down <stack>`` removes it from any shell with no
    variable set, and ``envkit gc --older-than`` collects it.
    """
    path = Path(path)
    data, _ = _compose_yaml.read(path)
    own = labels.Ownership(session=session, worker="compose", stack=stack,
                           owner=owner or f"{socket.gethostname()}:docker-compose",
                           created=created or labels.utc_now(), detached=True, owner_ns=None)
    stamped = own.stack_labels()
    out: dict[str, Any] = {}
    if isinstance(data, Mapping) and "version" in data:
        out["version"] = str(data["version"])
    names = list((data or {}).get("services") or {})
    out["services"] = {n: {"labels": own.service_labels(n)} for n in names}
    out["networks"] = {n: {"labels": stamped} for n in ["default", *_own((data or {}),
                                                                        "networks")]}
    volumes = _own(data or {}, "volumes")
    if volumes:
        out["volumes"] = {v: {"labels": stamped} for v in volumes}
    return yaml.dump(out, Dumper=_Plain, sort_keys=False)


def _own(data: Mapping[str, Any], kind: str) -> list[str]:
    """The file's own networks or volumes: those compose creates (not ``external``)."""
    declared = data.get(kind) or {}
    return [str(name) for name, conf in declared.items()
            if str(name) != "default" and not (isinstance(conf, Mapping) and conf.get("external"))]

"""``${...}`` expansion of a loaded compose file, with errors that point at its lines.

Every string value is expanded as compose expands it (``$VAR`` and ``$$`` included, see
:func:`envkit._compose_yaml.braced`), except that an unset variable without a default is
an error (:mod:`envkit._interpolate`): a stack started with an empty password or port is
a test of something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envkit import _compose_yaml
from envkit._interpolate import InterpolationError, Secrets, interpolate
from envkit.errors import SpecError

__all__ = ["Interpolation"]


@dataclass(frozen=True, kw_only=True)
class Interpolation:
    """One load's ``${...}`` expansion: its variables, secrets, and where to point errors."""

    env: Mapping[str, str]
    lines: _compose_yaml.Lines
    stack: str
    path: Path
    secrets: Secrets = field(default_factory=Secrets)

    def __call__(self, data: Any, where: tuple[str, ...] = ()) -> Any:
        """*data* with every string value interpolated; *where* locates errors."""
        if isinstance(data, str):
            if "\x00" in data:
                raise self._fail(where, data, "holds a NUL character",
                                 "remove the \\0 (an escaped NUL in a double-quoted string)")
            try:
                return interpolate(_compose_yaml.braced(data), environ=self.env,
                                   generated=self.secrets)
            except InterpolationError as exc:
                raise self._fail(where, data, exc.problem, exc.fix) from None
        if isinstance(data, Mapping):
            return {k: self(v, (*where, str(k))) for k, v in data.items()}
        if isinstance(data, list):
            return [self(v, (*where, str(i))) for i, v in enumerate(data)]
        return data

    def _fail(self, where: tuple[str, ...], value: str, problem: str, fix: str) -> SpecError:
        service = where[1] if len(where) > 1 and where[0] == "services" else None
        line = _compose_yaml.line_of(self.lines, *where)
        return SpecError(stack=self.stack, service=service, field=".".join(where[2:] or where),
                         value=value, problem=f"{problem} ({self.path.name} line {line})",
                         fix=fix)

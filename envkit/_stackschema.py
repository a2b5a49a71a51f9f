"""The stack file's JSON Schema, and its errors told as envkit's :class:`SpecError`.

jsonschema does the checking; this module only translates its answer: the error's path
(``services.web.ready.0.tcp``) becomes the service and the field (``ready[0].tcp``), and
the words come from the schema itself, whose ``x-expect`` ("a number of seconds") and
``x-fix`` keys sit next to the rules they explain. Editors ignore those keys.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

# jsonschema ships no type information (and types-jsonschema is not a dependency).
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

from envkit.errors import SpecError

SCHEMA_PATH = Path(__file__).parent / "schema" / "stack.schema.json"
_GENERIC_FIX = f"see the stack file schema, {SCHEMA_PATH}"


@cache
def schema() -> dict[str, Any]:
    """The stack file schema (draft 2020-12), read once."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def validate(data: Any, *, stack: str) -> None:
    """Check *data* (an interpolated stack file) against the schema.

    :raises SpecError: for the first problem in file order, named as the user wrote it.
    """
    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    # The first problem as the file reads, so fixing from the top always makes progress.
    first = min(errors, key=lambda e: [_order(data, list(e.absolute_path)[:i + 1])
                                       for i in range(len(e.absolute_path))])
    raise _translate(_narrowest(first), stack)


def _order(data: Any, path: Sequence[str | int]) -> int:
    """Position of the last key of *path* within its container in *data*."""
    node = data
    for part in path[:-1]:
        node = node[part]
    if isinstance(node, dict):
        return list(node).index(path[-1])
    return int(path[-1])


def place(path: Sequence[str | int]) -> tuple[str | None, str]:
    """``services.web.ready.0.tcp`` -> ``("web", "ready[0].tcp")``."""
    parts = list(path)
    service = None
    if len(parts) >= 2 and parts[0] == "services":
        service, parts = str(parts[1]), parts[2:]
    where = ""
    for part in parts:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    if not where:
        where = "(service)" if service else "(file)"
    return service, where


def _narrowest(error: ValidationError) -> ValidationError:
    """Inside an ``anyOf``, the alternative that fits the value's type, when one does.

    For ``environment: {DEBUG: true}`` that is "DEBUG must be a string", not "environment
    must be a mapping or a list".
    """
    while error.validator in {"anyOf", "oneOf"} and error.context:
        fitting = [e for e in error.context if e.path or e.validator != "type"]
        if not fitting:
            break
        error = max(fitting, key=lambda e: len(e.path))
    return error


def _expect(error: ValidationError) -> tuple[str, str]:
    """The words for *error*: what the value must be, and the fix.

    The schema path is walked from the top (through each ``$ref``), and the deepest
    ``x-expect`` and ``x-fix`` on it win: a ``{tcp: ...}`` check keeps its own fix though
    its rule is the shared port definition (which has no fix of its own).
    """
    root = schema()
    node: Any = root
    expect, fix = None, None
    # jsonschema's paths leave out "$ref" steps: a key missing here is in the referenced schema.
    for key in [*error.absolute_schema_path, None]:
        while isinstance(node, dict):
            expect = node.get("x-expect", expect)
            fix = node.get("x-fix", fix)
            if key in node or "$ref" not in node:
                break
            node = root["$defs"][str(node["$ref"]).rsplit("/", 1)[-1]]
        fits = key in node if isinstance(node, dict) else (
            isinstance(node, list) and isinstance(key, int) and key < len(node))
        if not fits:
            break
        node = node[key]
    return (f"must be {expect}" if expect else str(error.message)), fix or _GENERIC_FIX


def _translate(error: ValidationError, stack: str) -> SpecError:
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(k for k in instance if k not in allowed and not k.startswith("x-"))
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        service, name = place([*path, unknown[0]])
        return SpecError(stack=stack, service=service, field=name, value=instance[unknown[0]],
                         problem="unknown field", fix=f"{hint}use one of: {', '.join(allowed)}")
    if error.validator in {"required", "dependentRequired"}:
        return _missing(error, stack)
    if "propertyNames" in error.absolute_schema_path:
        return SpecError(stack=stack, service=str(instance), field="name", value=instance,
                         problem="not a valid service name",
                         fix="use lowercase letters, digits, '-' and '_' (at most 63)")
    service, name = place(path)
    if not path:
        return SpecError(stack=stack, service=None, field="(file)", value=type(instance).__name__,
                         problem="the top level must be a mapping",
                         fix=schema()["x-fix"])
    problem, fix = _expect(error)
    return SpecError(stack=stack, service=service, field=name, value=instance, problem=problem,
                     fix=fix)


def _missing(error: ValidationError, stack: str) -> SpecError:
    path = list(error.absolute_path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "dependentRequired":
        service, _ = place(path)
        return SpecError(stack=stack, service=service, field="with", value=instance.get("with"),
                         problem="options for a building block, but no 'use'",
                         fix="add 'use: <block>', or remove 'with'")
    wanted = [k for k in error.validator_value if k not in instance]
    service, name = place([*path, wanted[0]])
    fix = schema()["properties"].get(wanted[0], {}).get("x-fix", _GENERIC_FIX)
    return SpecError(stack=stack, service=service, field=name, value=None,
                     problem="missing", fix=fix)

"""``${VAR}`` interpolation of stack-file strings, pure: the environment is passed in.

The syntax is docker compose's braced form::

    ${VAR}            the value of VAR; unset is an error (compose warns and uses "")
    ${VAR:-default}   default when VAR is unset or empty   (${VAR-default}: unset only)
    ${VAR:?message}   an error with *message* when VAR is unset or empty (${VAR?message})
    ${VAR:+other}     *other* when VAR is set and not empty (${VAR+other}: when set)
    ${secret:NAME}    a random secret, the same for every use of NAME in one load
    $$                a literal ``$``

Defaults and messages may themselves hold ``${...}``. Unlike compose, a bare ``$VAR``
is left as it is, so that shell commands (``sh -c 'echo $HOME'``) keep their own
variables. An unset ``${VAR}`` without a default is an error rather than an empty string:
a stack that silently runs with an empty password or URL fails much later and further
from the cause.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from envkit.errors import shown

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET = re.compile(r"secret:([A-Za-z0-9_.-]+)")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
#: How deep ``${A:-${B:-...}}`` may nest: each level is a recursive expansion.
MAX_NESTING = 32


class InterpolationError(Exception):
    """A ``${...}`` that cannot be expanded; the stack-file loader adds the location.

    :param variable: the variable concerned (or the whole expression when malformed).
    :param problem: what is wrong; :param fix: what to do about it.
    """

    def __init__(self, *, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; fix: {fix}")


@dataclass(kw_only=True)
class Secrets:
    """The generated secrets of one load: each NAME gets one value, made on first use.

    :param token: makes a new secret (``secrets.token_urlsafe(32)``; tests inject theirs).
    """

    token: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(32))
    values: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        """The secret called *name*, the same on every call of this instance."""
        if name not in self.values:
            self.values[name] = self.token()
        return self.values[name]


def interpolate(text: str, *, environ: Mapping[str, str], generated: Secrets) -> str:
    """Expand every ``${...}`` and ``$$`` of *text*.

    :param environ: the variables ``${VAR}`` reads.
    :param generated: the load's generated secrets, for ``${secret:NAME}``.
    :raises InterpolationError: for an unset variable without default, a ``:?`` that
        fires, or a malformed expression.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        if text.startswith("$$", dollar):
            out.append("$")
            i = dollar + 2
        elif text.startswith("${", dollar):
            end = _closing_brace(text, dollar + 2)
            out.append(_expand(text[dollar + 2:end], environ, generated))
            i = end + 1
        else:  # a bare $ or $VAR: left for the shell (see the module docstring)
            out.append("$")
            i = dollar + 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``${`` whose body begins at *start*.

    :raises InterpolationError: when unclosed, or nested deeper than :data:`MAX_NESTING`
        (expansion recurses once per level).
    """
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("$$", i):
            i += 2
            continue
        if text.startswith("${", i):
            depth += 1
            if depth > MAX_NESTING:
                raise InterpolationError(
                    variable=shown(text[start - 2:]),
                    problem=f"'${{' nested more than {MAX_NESTING} levels deep in "
                    f"{shown(text)}", fix="use fewer nested defaults, e.g. ${A:-${B:-c}}")
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(
        variable=shown(text[start - 2:]), problem=f"unclosed '${{' in {shown(text)}",
        fix="close it with '}', or write '$$' for a literal '$'",
    )


def _expand(body: str, environ: Mapping[str, str], generated: Secrets) -> str:
    secret = _SECRET.fullmatch(body)
    if secret:
        return generated.get(secret.group(1))
    name = _NAME.match(body)
    rest = body[name.end():] if name else body
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if name is None or (rest and operator is None):
        raise InterpolationError(
            variable=shown("${" + body + "}"),
            problem=f"{shown('${' + body + '}')} is not a valid expression",
            fix="write ${NAME}, ${NAME:-default}, ${NAME:?message} or ${secret:NAME}; "
            "'$$' gives a literal '$'",
        )
    var = name.group(0)
    value = environ.get(var)
    if operator is None:
        if value is None:
            raise InterpolationError(
                variable=var, problem=f"variable {var} is not set",
                fix=f"set {var} in the environment, or give a default: ${{{var}:-value}}",
            )
        return value
    arg = rest[len(operator):]
    empty = value is None or (operator.startswith(":") and value == "")
    if operator.endswith("-"):
        return interpolate(arg, environ=environ, generated=generated) if empty else str(value)
    if operator.endswith("+"):
        return "" if empty else interpolate(arg, environ=environ, generated=generated)
    if empty:
        message = interpolate(arg, environ=environ, generated=generated)[:200] or "required"
        state = "not set" if value is None else "empty"
        raise InterpolationError(
            variable=var, problem=f"variable {var} is {state}: {message}",
            fix=f"set {var} in the environment",
        )
    return str(value)

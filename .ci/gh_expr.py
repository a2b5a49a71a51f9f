"""GitHub Actions ``${{ }}`` expressions, evaluated for the local runner-like check.

Only what ci.yml uses is supported (context paths, literals, ``==``/``!=``, ``&&``/``||``/``!``,
and the status and ``hashFiles`` functions); anything else raises ``ExprError`` so that a new
construct in the workflow stops ``make ci-local`` instead of being read wrongly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!().,\[\]])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
_EMBEDDED = re.compile(r"\$\{\{(.*?)\}\}", re.S)


class ExprError(Exception):
    """An expression ci-local cannot evaluate (the workflow uses something new)."""


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split *text* into (kind, value) tokens.

    :raises ExprError: on a character no token starts with.
    """
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExprError(f"cannot read expression {text!r} at {text[pos:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def truthy(value: Any) -> bool:
    """GitHub's truthiness: '' , 0, null and false are false."""
    return value not in ("", 0, None, False)


def loose_equal(left: Any, right: Any) -> bool:
    """GitHub's ``==``: strings compare case-insensitively, a number against a string as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if isinstance(left, (int, float)) or isinstance(right, (int, float)):
        try:
            return float(left) == float(right)
        except (TypeError, ValueError):
            return False
    return bool(left == right)


class Evaluator:
    """Recursive descent over the token list, against *contexts* and *functions*."""

    def __init__(self, contexts: Mapping[str, Any],
                 functions: Mapping[str, Callable[..., Any]]) -> None:
        self._contexts = contexts
        self._functions = functions
        self._tokens: list[tuple[str, str]] = []
        self._pos = 0

    def evaluate(self, text: str) -> Any:
        """Value of the expression *text* (without the ``${{ }}``)."""
        self._tokens, self._pos = tokenize(text), 0
        value = self._or()
        if self._pos != len(self._tokens):
            raise ExprError(f"unexpected {self._tokens[self._pos][1]!r} in {text!r}")
        return value

    def _peek(self) -> str:
        return self._tokens[self._pos][1] if self._pos < len(self._tokens) else ""

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        if self._pos >= len(self._tokens):
            raise ExprError("expression ends too early")
        token = self._tokens[self._pos]
        if expected is not None and token[1] != expected:
            raise ExprError(f"expected {expected!r}, found {token[1]!r}")
        self._pos += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._unary()
        while self._peek() == "&&":
            self._take()
            right = self._unary()
            value = right if truthy(value) else value
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        left = self._primary()
        if self._peek() in ("==", "!="):
            op = self._take()[1]
            equal = loose_equal(left, self._primary())
            return equal if op == "==" else not equal
        return left

    def _primary(self) -> Any:
        kind, value = self._take()
        if value == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value) if "." in value else int(value)
        if kind != "name":
            raise ExprError(f"unexpected {value!r}")
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if self._peek() == "(":
            return self._call(value)
        return self._path(self._contexts.get(value))

    def _call(self, name: str) -> Any:
        if name not in self._functions:
            raise ExprError(f"function {name}() is not supported by ci-local")
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        return self._functions[name](*args)

    def _path(self, value: Any) -> Any:
        while self._peek() in (".", "["):
            if self._take()[1] == ".":
                key: Any = self._take()[1]
            else:
                key = self._or()
                self._take("]")
            value = value.get(key) if isinstance(value, Mapping) else None
        return value


def substitute(text: str, evaluator: Evaluator) -> str:
    """*text* with every ``${{ expr }}`` replaced by its value (GitHub's string form)."""

    def one(match: re.Match[str]) -> str:
        value = evaluator.evaluate(match.group(1))
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return _EMBEDDED.sub(one, text)


def hash_files(root: Path, *patterns: str) -> str:
    """Like GitHub's ``hashFiles``: sha256 over the sha256 of each matched file.

    The file order is sorted paths, so the value is stable but not GitHub's own.
    """
    # A trailing ** matches every file below (pathlib's own ** would match directories only).
    globs = [f"{pattern}/*" if pattern.endswith("**") else pattern for pattern in patterns]
    files = sorted({p for pattern in globs for p in root.glob(pattern) if p.is_file()})
    if not files:
        return ""
    outer = hashlib.sha256()
    for path in files:
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()

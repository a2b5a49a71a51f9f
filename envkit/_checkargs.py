"""The arguments of readiness checks, validated when a check is built.

A check is often made far from the spec that uses it (a module constant, a kit's block,
a stack file's ``ready`` entry), and a wrong argument used to surface only when the probe
first ran against a container: an invalid regex, a path ``http.client`` refuses, a
command that is not one. Each check calls these from ``__post_init__`` so that the
mistake is a :class:`~envkit.errors.SpecError` where it is written, naming the check's
field (``Http.status``), the value and the fix. Stack and compose loaders re-place the
error on the entry it came from (``ready[0].http.status``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from envkit._spec_parts import parse_port
from envkit.errors import SpecError

#: What ``http.client`` sends as a request target without refusing it: printable ASCII.
_URL_PATH = re.compile(r"^/[\x21-\x7e]*$")
#: The longest settle a TCP probe may hold a connection for; more would stall the loop.
MAX_SETTLE = 60.0


def fail(check: str, name: str, value: object, problem: str, fix: str) -> SpecError:
    """A SpecError on the argument *name* of the check class *check*."""
    return SpecError(stack=None, service=None, field=f"{check}.{name}", value=value,
                     problem=problem, fix=fix)


def entry_field(prefix: str, kind: str, arg: object, exc: SpecError) -> str:
    """Where a file's ``ready`` entry ``{kind: arg}`` has the argument *exc* is about.

    ``ready[0].http.status`` for a mapping's key, ``ready[0].tcp`` for a scalar entry.
    """
    return f"{prefix}.{kind}.{exc.field.rpartition('.')[2]}" if isinstance(
        arg, Mapping) else f"{prefix}.{kind}"


def tcp_port(check: str, value: object) -> None:
    """*value* is a container port reached over TCP (``8080`` or ``'8080/tcp'``).

    :raises SpecError: for anything else, a UDP or SCTP port included: the probe connects.
    """
    fix = f"write e.g. {check}(8080); the port must be one of the service's ports"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise fail(check, "port", value, "must be a container port", fix)
    try:
        port = parse_port(value)
    except (SpecError, ValueError):  # ValueError: an int too long to write in decimal
        raise fail(check, "port", value, "not a container port", fix) from None
    if port.protocol != "tcp":
        raise fail(check, "port", value, f"{check} connects over TCP, not {port.protocol}",
                   "probe a TCP port of the service, or use LogLine or Exec for this one")


def seconds(check: str, name: str, value: object, most: float) -> None:
    """*value* is a finite number of seconds from 0 to *most*."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and 0 <= value <= most):
        raise fail(check, name, value, f"must be a number of seconds from 0 to {most:g}",
                   f"write e.g. {name}=0.05, or leave it out for the default")


def http_status(value: object) -> None:
    """*value* is an HTTP status code (100 to 599)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise fail("Http", "status", value, "must be an HTTP status code (100 to 599)",
                   "write e.g. Http(8080, '/health', status=204)")


def http_path(value: object) -> None:
    """*value* is a path ``http.client`` sends as it is: ``/``, then printable ASCII."""
    if not isinstance(value, str) or not _URL_PATH.match(value):
        raise fail("Http", "path", value, "must be a URL path: '/' then printable ASCII "
                   "without spaces", "write e.g. Http(8080, '/health'); percent-encode "
                   "spaces and other characters (urllib.parse.quote)")


def http_body(value: object) -> None:
    """*value* is ``None`` or a predicate on the body."""
    if value is not None and not callable(value):
        raise fail("Http", "body", value, "must be a function of the body text",
                   "write e.g. body=lambda text: '\"ok\"' in text, or leave it out")


def pattern(value: object) -> None:
    """*value* is a non-empty regular expression that compiles (as the probe uses it)."""
    fix = "write a regular expression, e.g. LogLine(r'listening on :8080')"
    if not isinstance(value, str) or not value:
        raise fail("LogLine", "pattern", value, "must be a non-empty regular expression",
                   fix + " (an empty one matches before the service says anything)")
    try:
        re.compile(value, re.MULTILINE)
    except (re.error, OverflowError, RecursionError) as exc:
        raise fail("LogLine", "pattern", value, f"not a regular expression: {exc}",
                   "escape special characters, e.g. 'ready\\\\.'") from None


def command(value: object) -> tuple[str, ...]:
    """*value* as the argv of an exec: a non-empty list of strings without NUL."""
    fix = "write e.g. Exec(('pg_isready', '-U', 'postgres')), or Exec(('sh', '-c', '...'))"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise fail("Exec", "command", value, "must be a list of arguments", fix)
    argv = tuple(value)
    if not argv or not all(isinstance(a, str) and "\x00" not in a for a in argv) or (
            not argv[0].strip()):
        raise fail("Exec", "command", value, "must be a program and its arguments, as "
                   "strings without NUL", fix)
    return argv

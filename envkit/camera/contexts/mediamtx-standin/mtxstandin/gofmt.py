"""Values rendered the way Go renders them, so answers are byte-for-byte upstream's.

Why: MediaMTX is a Go program. Its JSON is ``encoding/json`` output (compact, HTML
characters escaped, UTF-8 kept), its durations are ``time.Duration.String()`` (``1m0s``,
``1h0m0s``, ``200ms``) and its timestamps are ``time.Time`` in RFC 3339 with up to
nanosecond precision and trailing zeros trimmed. A suite that compares strings would see
any other rendering as a difference.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from typing import Any

_HEX = set("0123456789abcdefABCDEF")
_NS = {"h": 3_600_000_000_000, "m": 60_000_000_000, "s": 1_000_000_000}


def duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of ``seconds``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        # Below one second Go picks the largest unit that keeps an integer part.
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _decimal(ns, size) + unit
    hours, rest = divmod(ns, _NS["h"])
    minutes, rest = divmod(rest, _NS["m"])
    text = _decimal(rest, _NS["s"]) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed (Go's ``time.RFC3339Nano``)."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def _go_numbers(node: Any) -> Any:
    """Integral floats as Go prints float64 values (``0``, not ``0.0``)."""
    if isinstance(node, float) and node.is_integer() and abs(node) < 1e21:
        return int(node)
    if isinstance(node, dict):
        return {k: _go_numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_go_numbers(v) for v in node]
    return node


def dumps(data: Any) -> str:
    """``encoding/json`` output: compact, UTF-8 kept, ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(_go_numbers(data), separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def parse_uuid(text: str) -> str:
    """Canonical form of ``text`` parsed as google/uuid's ``Parse`` does, or ValueError."""
    n = len(text)
    if n == 45:
        if text[:9].lower() != "urn:uuid:":
            raise ValueError(f'invalid urn prefix: "{text[:9]}"')
        text = text[9:]
    elif n == 38:
        text = text[1:-1]
    elif n == 32:
        if not set(text) <= _HEX:
            raise ValueError("invalid UUID format")
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    elif n != 36:
        raise ValueError(f"invalid UUID length: {n}")
    if any(text[i] != "-" for i in (8, 13, 18, 23)) or \
            not set(text.replace("-", "")) <= _HEX:
        raise ValueError("invalid UUID format")
    return str(uuidlib.UUID(text))

"""Go's ``time.Parse(time.RFC3339, value)``: the time, or the error text Go would give.

Why: ``DELETE /v3/recordings/deletesegment?start=...`` answers a bad ``start`` with
``invalid 'start' parameter: `` followed by Go's own parse error, e.g. ``parsing time
"x" as "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"``. A suite comparing
error texts sees any other wording as a difference, so the layout is walked element by
element as Go's ``time.parse`` walks it.
"""

from __future__ import annotations

from typing import NamedTuple

RFC3339 = "2006-01-02T15:04:05Z07:00"
# (literal before the element, the element) in layout order, as Go's nextStdChunk cuts it
_CHUNKS = (("", "2006"), ("-", "01"), ("-", "02"), ("T", "15"), (":", "04"), (":", "05"),
           ("", "Z07:00"))


class GoTimeError(ValueError):
    """A value Go's parser refuses; ``str()`` is Go's message."""


class WallClock(NamedTuple):
    """A parsed time as written (its own offset): what Go's ``Year()``, ``Month()``... give."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    nanosecond: int
    offset: int


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def quote(text: str) -> str:
    """Go's ``time.quote``: ASCII as is (``"`` and ``\\`` escaped), other bytes as ``\\x``."""
    out = ['"']
    for ch in text:
        if ch < " " or ord(ch) >= 0x80:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    return "".join(out) + '"'


def _fail(value: str, elem: str, rest: str) -> GoTimeError:
    return GoTimeError(f"parsing time {quote(value)} as {quote(RFC3339)}: cannot parse "
                       f"{quote(rest)} as {quote(elem)}")


def _range(value: str, what: str) -> GoTimeError:
    return GoTimeError(f"parsing time {quote(value)}: {what} out of range")


def _num(text: str, fixed: bool) -> tuple[int, str] | None:
    """Go's ``getnum``: one or two digits (exactly two when ``fixed``)."""
    if not text[:1].isdigit() or not text[:1].isascii():
        return None
    if len(text) < 2 or not (text[1].isdigit() and text[1].isascii()):
        return None if fixed else (int(text[0]), text[1:])
    return int(text[:2]), text[2:]


def _zone(value: str, text: str) -> tuple[int, str] | None:
    """``Z`` or ``±hh:mm``: the offset in seconds and what follows.

    :raises GoTimeError: for an hour above 24 or minutes above 60 (Go's bounds).
    """
    if text[:1] == "Z":
        return 0, text[1:]
    if len(text) < 6 or text[3] != ":":
        return None
    hours = _num(text[1:3], True)
    minutes = _num(text[4:6], True) if hours is not None else None
    hour, minute = (hours or (0, ""))[0], (minutes or (0, ""))[0]
    # Go checks the hour, then the minutes (the later message wins), before any
    # digit or sign error.
    if minute > 60:
        raise _range(value, "time zone offset minute")
    if hour > 24:
        raise _range(value, "time zone offset hour")
    if minutes is None or text[0] not in "+-":
        return None
    offset = (hour * 60 + minute) * 60
    return (-offset if text[0] == "-" else offset), text[6:]


def _fraction(rest: str) -> tuple[int, str]:
    """Fractional seconds Go accepts after ``05`` although the layout has none."""
    if len(rest) >= 2 and rest[0] in ".," and rest[1].isdigit() and rest[1].isascii():
        n = 2
        while n < len(rest) and rest[n].isdigit() and rest[n].isascii():
            n += 1
        digits = rest[1:min(n, 10)]
        return int(digits.ljust(9, "0")), rest[n:]
    return 0, rest


# Numeric elements: Go's name for them in range errors, and their bounds.
_BOUNDS = {"01": ("month", 1, 12), "02": ("day", 0, 99), "15": ("hour", 0, 23),
           "04": ("minute", 0, 59), "05": ("second", 0, 59)}


def _number(value: str, elem: str, rest: str) -> tuple[int, str]:
    """One numeric element (``2006``, ``01``...) at the start of ``rest``."""
    if elem == "2006":
        if len(rest) < 4 or not (rest[:4].isdigit() and rest[:4].isascii()):
            raise _fail(value, elem, rest)
        return int(rest[:4]), rest[4:]
    got = _num(rest, fixed=elem != "15")
    if got is None:
        raise _fail(value, elem, rest)
    name, low, high = _BOUNDS[elem]
    if not low <= got[0] <= high:  # the day is checked against its month at the end
        raise _range(value, name)
    return got


def parse_rfc3339(value: str) -> WallClock:
    """The time ``value`` names, as written.

    :raises GoTimeError: with the text Go's ``time.Parse`` gives.
    """
    fields: list[int] = []
    rest, nanos, offset = value, 0, 0
    for literal, elem in _CHUNKS:
        if not rest.startswith(literal):
            raise _fail(value, literal, rest)
        rest = rest[len(literal):]
        if elem == "Z07:00":
            zone = _zone(value, rest)
            if zone is None:
                raise _fail(value, elem, rest)
            offset, rest = zone
            continue
        number, rest = _number(value, elem, rest)
        fields.append(number)
        if elem == "05":
            nanos, rest = _fraction(rest)
    if rest:
        raise GoTimeError(f"parsing time {quote(value)}: extra text: {quote(rest)}")
    year, month, day, hour, minute, second = fields
    if not 1 <= day <= _days_in(month, year):
        raise _range(value, "day")
    return WallClock(year, month, day, hour, minute, second, nanos, offset)

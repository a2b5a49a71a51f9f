"""Recording lookups of the API (``/v3/recordings/get``, ``/v3/recordings/deletesegment``).

Why: the stand-in records nothing, yet these routes exist upstream and answer with
texts a suite can compare: a path name is matched to its configuration with Go's
``conf.FindPathConf`` wording, a segment's file name is built from ``recordPath`` and
``start`` as ``recordstore.Path.Encode`` builds it, and deleting a segment that is not
there answers Go's ``os.Remove`` error (``remove ./recordings/cam/...mp4: no such file or
directory``).
"""

from __future__ import annotations

import errno
import os
import posixpath
from typing import Any

from .config import Conf, ConfError, path_name_problem
from .gotime import GoTimeError, WallClock, parse_rfc3339
from .moq import go_errno_text

_EXTENSIONS = {"fmp4": ".mp4", "mpegts": ".ts"}


def find_path_conf(conf: Conf, name: str) -> dict[str, Any]:
    """The merged configuration of the path ``name`` (upstream's ``FindPathConf``).

    :raises ConfError: with upstream's text (the API answers it as a 400).
    """
    problem = path_name_problem(name)
    if problem is not None:
        raise ConfError(f"invalid path name: {problem} ({name})")
    found = conf.find_path_conf(name)
    if found is None:
        raise ConfError(f"path '{name}' is not configured")
    return conf.path_conf(found[0])


def common_path(record_path: str) -> str:
    """The directories of ``record_path`` before the first one holding a ``%`` field."""
    common, remaining = "", record_path
    while True:
        cut = min((i for i in (remaining.find("/"), remaining.find("\\")) if i >= 0),
                  default=-1)
        if cut < 0:
            break
        part, remaining = remaining[:cut + 1], remaining[cut + 1:]
        if "%" in part:
            break
        common += part
    return common[:-1]


def _unix(t: WallClock) -> int:
    """Seconds since the epoch (proleptic Gregorian, any year, as Go counts them)."""
    year = t.year - (t.month <= 2)
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (t.month + (-3 if t.month > 2 else 9)) + 2) // 5 + t.day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + t.hour * 3600 + t.minute * 60 + t.second - t.offset


def encode(path_format: str, t: WallClock) -> str:
    """``recordstore.Path{Start: t}.Encode(path_format)``."""
    for field, text in (("%Y", str(t.year)), ("%m", f"{t.month:02d}"), ("%d", f"{t.day:02d}"),
                        ("%H", f"{t.hour:02d}"), ("%M", f"{t.minute:02d}"),
                        ("%S", f"{t.second:02d}"), ("%f", f"{t.nanosecond // 1000:06d}"),
                        ("%s", str(_unix(t)))):
        path_format = path_format.replace(field, text)
    return path_format


def _go_abs(path: str) -> str:
    joined = path if path.startswith("/") else f"{os.getcwd().rstrip('/')}/{path}"
    clean = posixpath.normpath(joined)
    return "/" + clean.lstrip("/")


def _check_inside(base: str, path: str) -> None:
    """Upstream's guard against directory traversal (``path escapes base directory``)."""
    base_abs = _go_abs(posixpath.normpath(base) if base else ".")
    if not _go_abs(f"{base_abs}/{path}").startswith(base_abs):
        raise ConfError("path escapes base directory")


def _remove(path: str) -> None:
    """Go's ``os.Remove``: unlink, else rmdir; the error Go would pick."""
    try:
        os.unlink(path)
        return
    except OSError as exc:
        first = exc.errno or errno.EIO
    try:
        os.rmdir(path)
        return
    except OSError as exc:
        second = exc.errno or errno.EIO
    reason = first if second == errno.ENOTDIR else second
    raise ConfError(f"remove {path}: {go_errno_text(reason)}")


def delete_segment(conf: Conf, path_name: str, start: str) -> None:
    """``DELETE /v3/recordings/deletesegment?path=...&start=...``.

    :raises ConfError: with upstream's text (answered as a 400).
    """
    try:
        when = parse_rfc3339(start)
    except GoTimeError as exc:
        raise ConfError(f"invalid 'start' parameter: {exc}") from exc
    path_conf = find_path_conf(conf, path_name)
    record_path = str(path_conf["recordPath"])
    path_format = record_path.replace("%path", path_name) + _EXTENSIONS.get(
        str(path_conf["recordFormat"]), ".mp4")
    _check_inside(common_path(record_path), path_format)
    segment = encode(path_format, when)
    _check_inside(path_format, segment)
    _remove(segment)

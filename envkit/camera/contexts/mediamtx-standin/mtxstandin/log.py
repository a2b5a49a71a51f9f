"""Log lines in upstream MediaMTX's format.

Why: readiness checks and humans grep the container log for upstream's wording, e.g.
``2025/01/01 12:00:00 INF [RTSP] listener opened on :8554 (TCP)``; matching the format
keeps a stack's log checks valid whichever MediaMTX flavour runs.
"""

from __future__ import annotations

import sys
import time

_LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}
_TAGS = {0: "DEB", 1: "INF", 2: "WAR", 3: "ERR"}
_threshold = 1


def set_level(level: str) -> None:
    """Set the minimum level printed (``logLevel`` of the configuration)."""
    global _threshold  # noqa: PLW0603 - one process-wide logger, like upstream
    _threshold = _LEVELS.get(level, 1)


def _emit(level: int, msg: str) -> None:
    if level < _threshold:
        return
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    sys.stdout.write(f"{stamp} {_TAGS[level]} {msg}\n")
    sys.stdout.flush()


def debug(msg: str) -> None:
    """Log at DEB level."""
    _emit(0, msg)


def info(msg: str) -> None:
    """Log at INF level."""
    _emit(1, msg)


def warn(msg: str) -> None:
    """Log at WAR level."""
    _emit(2, msg)


def error(msg: str) -> None:
    """Log at ERR level."""
    _emit(3, msg)

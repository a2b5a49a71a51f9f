"""envkit's MediaMTX stand-in.

Why it exists: the test machines have no registry, so the upstream ``bluenviron/mediamtx``
image cannot be pulled. This package behaves like MediaMTX v1.20 for the surface that
camera services and envkit's tests use: RTSP publish/read over TCP, the Control API v3,
path hooks (runOnInit/runOnDemand) and upstream-shaped log lines.
"""

from __future__ import annotations

UPSTREAM_VERSION = "v1.20.1"
VERSION = f"{UPSTREAM_VERSION}-envkit-standin"

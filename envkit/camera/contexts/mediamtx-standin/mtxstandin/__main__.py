"""Entry point: ``python3 -m mtxstandin [config.yml]``.

Why: the container runs this as PID 1, so it installs its own SIGTERM/SIGINT handlers
(``docker stop`` must end it promptly and stop hook commands), prints upstream's start-up
lines, then serves RTSP and the API until told to stop.
"""

from __future__ import annotations

import sys

# No TLS is served (encryption settings are not implemented) and asyncio runs without the
# ssl module, whose import is a tenth of the start-up CPU that issue 9 bounds.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

import asyncio  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402

from . import VERSION, log  # noqa: E402
from .config import Conf, ConfError, load  # noqa: E402
from .core import Core  # noqa: E402


async def serve(conf_path: str | None) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    log.info(f"MediaMTX {VERSION}")
    try:
        conf, loaded = load(conf_path)
    except (ConfError, OSError, ValueError) as exc:
        log.error(f"{exc}")
        return 1
    _log_configuration(conf, loaded)
    return await _run(conf)


def _log_configuration(conf: Conf, loaded: str) -> None:
    """Apply ``logLevel`` and say, as upstream would, what is not served."""
    log.set_level(str(conf.global_values.get("logLevel", "info")))
    if loaded:
        log.info(f"configuration loaded from {loaded}")
    for key in conf.ignored_keys:
        log.warn(f"parameter '{key}' is not supported by the envkit stand-in; ignored")
    g = conf.global_values
    for proto, flag in (("RTMP", "rtmp"), ("SRT", "srt"), ("MoQ", "moq")):
        if g.get(flag):
            log.warn(f"[{proto}] not implemented by the envkit stand-in; not listening")


async def _run(conf: Conf) -> int:
    """Open the listeners, serve until a stop signal, then close them in reverse order."""
    core = Core(conf)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await core.start()
        await stop.wait()
        log.info("shutting down gracefully")
    except OSError as exc:
        log.error(f"{exc}")
        return 1
    finally:
        await core.close()
        log.info("waiting for running hooks")
        # Let the loop run what closing just scheduled (sockets closing, hook commands
        # sent SIGINT being reaped) before asyncio.run() cancels every task still pending.
        await asyncio.sleep(0.05)
    return 0


def main() -> None:
    """Console entry."""
    conf_path = sys.argv[1] if len(sys.argv) > 1 else None
    code = asyncio.run(serve(conf_path))
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is closed by now. The interpreter's own finalization (module teardown,
    # garbage collection) took 0.3-0.5 s at load 20-30, more than upstream's whole stop.
    os._exit(code)


if __name__ == "__main__":
    main()

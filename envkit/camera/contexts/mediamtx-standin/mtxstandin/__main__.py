"""Entry point: ``python3 -m mtxstandin [config.yml]``.

Why: the container runs this as PID 1, so it installs its own SIGTERM/SIGINT handlers
(``docker stop`` must end it promptly and stop hook commands), prints upstream's start-up
lines, then serves RTSP and the API until told to stop.
"""

from __future__ import annotations

import os
import signal
import sys

# Until the loop takes the stop signals over, a stop must still end the process at once:
# as PID 1 a signal without a handler is ignored, so a ``docker stop`` during start-up
# would wait its whole timeout. Upstream (Go) exits then too; 2 is the status Go's
# runtime exits with when PID 1 ignores the re-raised signal.
for _stop_signal in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_stop_signal, lambda *_: os._exit(2))

# No TLS is served (encryption settings are not implemented) and asyncio runs without the
# ssl module, whose import is a tenth of the start-up CPU that issue 9 bounds.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

import asyncio  # noqa: E402

from . import VERSION, hooks, log  # noqa: E402
from .config import Conf, ConfError, load  # noqa: E402
from .core import Core  # noqa: E402


async def serve(conf_path: str | None) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    try:
        conf, loaded = load(conf_path)
    except (ConfError, OSError, ValueError) as exc:
        # Upstream has no logger yet at this point: a bare line, no timestamp.
        sys.stdout.write(f"ERR: {exc}\n")
        return 1
    _log_configuration(conf, loaded)
    return await _run(conf)


def _go_arch() -> str:
    """Go's ``GOARCH`` name of this machine (``armv7`` for 32-bit ARM, as upstream)."""
    machine = os.uname().machine
    names = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}
    return names.get(machine, "armv7" if machine.startswith("armv7") else machine)


def _log_configuration(conf: Conf, loaded: str) -> None:
    """Upstream's first lines, once ``logLevel`` applies; then what is not served."""
    log.set_level(str(conf.global_values.get("logLevel", "info")))
    log.info(f"MediaMTX {VERSION}, linux, {_go_arch()}")
    if loaded:
        log.info(f"configuration loaded from {os.path.abspath(loaded)}")
    else:
        looked = ", ".join(os.path.abspath(p) for p in ("rtsp-simple-server.yml", "mediamtx.yml"))
        log.warn(f"configuration file not found (looked in {looked}), "
                 "using an empty configuration")
    for key in conf.ignored_keys:
        log.warn(f"parameter '{key}' is not supported by the envkit stand-in; ignored")
    g = conf.global_values
    for proto, flag in (("RTMP", "rtmp"), ("SRT", "srt")):
        if g.get(flag):
            log.warn(f"[{proto}] not implemented by the envkit stand-in; not listening")


async def _run(conf: Conf) -> int:
    """Open the listeners, serve until a stop signal, then close them in upstream's order.

    Stopping costs only what upstream's stop does: each server closes its sockets (no
    waiting on peers), FFmpeg muxers are killed, and only hook commands still running
    are waited for. Nothing else is waited for: the process ends right after.
    """
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
        await hooks.wait_stopped()
    return 0


def main() -> None:
    """Console entry.

    The loop is run without ``asyncio.run()``: its teardown (cancelling what is left,
    joining the resolver's thread) and the interpreter's own finalization (module
    teardown, garbage collection: 0.3-0.5 s at load 20-30) would only delay the exit of
    a process whose sockets are closed and whose logs are flushed. The kernel closes
    the rest, and as PID 1 the process takes any leftover child with it.
    """
    conf_path = sys.argv[1] if len(sys.argv) > 1 else None
    loop = asyncio.new_event_loop()
    code = loop.run_until_complete(serve(conf_path))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

"""Entry point: ``python3 -m camservice``.

Configuration errors (above all a missing CAMERA_SERVICE_JWT_SECRET) exit with
status 2 and one clear line on stderr, so ``docker logs`` shows the cause.  SIGTERM
and SIGINT stop the service cleanly because as PID 1 in a container Python gets
no default signal handling and FFmpeg children would otherwise be orphaned.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from .config import Config, ConfigError, load
from .service import Service


async def _main(cfg: Config) -> None:
    service = Service(cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop.set)
    await service.run()


def main() -> int:
    """Run the service; returns the process exit status."""
    try:
        cfg = load()
    except ConfigError as exc:
        print(f"camera-service: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, cfg.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(_main(cfg))
    except OSError as exc:
        print(f"camera-service: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

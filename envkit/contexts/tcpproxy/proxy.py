"""envkit's degrading TCP proxy: latency, bandwidth limits and connection resets.

``proxy.py --route 9997=mediamtx-real:9997 --route 8554=mediamtx-real:8554 --impair 9997
--latency 0.2 --bandwidth 100000 --reset-after 5`` listens on every route's port and
forwards each connection to its target; connections on impaired ports are delayed by
``latency`` seconds (plus up to ``jitter``) in each direction, throttled to ``bandwidth``
bytes per second per direction, and reset (RST, not FIN) ``reset-after`` seconds after
they were accepted. Data is delayed, never reordered or dropped: TCP does not lose bytes,
so a proxy cannot either (that is what netem's loss would do to packets).

Standard library only, for Debian's python3 on envkit's base image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass

CHUNK = 16 * 1024


@dataclass(frozen=True)
class Impairment:
    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float = 0.0  # bytes per second, 0 = unlimited
    reset_after: float = 0.0  # seconds, 0 = never


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               impair: Impairment | None) -> None:
    """Copy one direction; delay and throttle it when impaired."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while data := await reader.read(CHUNK):
            await queue.put((time.monotonic(), data))
        await queue.put((time.monotonic(), b""))

    reading = asyncio.ensure_future(read())
    try:
        while True:
            stamp, data = await queue.get()
            if impair is not None and impair.latency + impair.jitter > 0:
                due = stamp + impair.latency + random.uniform(0.0, impair.jitter)
                await asyncio.sleep(max(due - time.monotonic(), 0.0))
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            if impair is not None and impair.bandwidth > 0:
                await asyncio.sleep(len(data) / impair.bandwidth)
    finally:
        reading.cancel()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: SO_LINGER 0 makes close() abort the connection."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                 target: tuple[str, int], impair: Impairment | None) -> None:
    try:
        up_r, up_w = await asyncio.open_connection(*target)
    except OSError as exc:
        print(f"connect {target[0]}:{target[1]} failed: {exc}", flush=True)
        reset(client_w)
        return
    both = asyncio.gather(pump(client_r, up_w, impair), pump(up_r, client_w, impair))
    limit = impair.reset_after if impair is not None and impair.reset_after > 0 else None
    try:
        await asyncio.wait_for(both, timeout=limit)
        client_w.close()
        up_w.close()
    except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 - distinct before Python 3.11
        print(f"reset a connection to {target[0]}:{target[1]} after {limit}s", flush=True)
        reset(client_w)
        reset(up_w)
    except (OSError, asyncio.IncompleteReadError):
        reset(client_w)
        reset(up_w)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="proxy.py")
    parser.add_argument("--route", action="append", default=[], metavar="PORT=HOST:PORT")
    parser.add_argument("--impair", action="append", type=int, default=[], metavar="PORT")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--bandwidth", type=float, default=0.0)
    parser.add_argument("--reset-after", type=float, default=0.0)
    return parser.parse_args(argv)


async def main(argv: list[str]) -> None:
    args = parse(argv)
    impair = Impairment(latency=args.latency, jitter=args.jitter, bandwidth=args.bandwidth,
                        reset_after=args.reset_after)
    servers = []
    for route in args.route:
        listen, _, target = route.partition("=")
        host, _, port = target.rpartition(":")
        chosen = impair if int(listen) in args.impair else None

        async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                            t: tuple[str, int] = (host, int(port)),
                            i: Impairment | None = chosen) -> None:
            await handle(r, w, t, i)

        servers.append(await asyncio.start_server(on_client, "0.0.0.0", int(listen)))
    print(f"envkit proxy listening: {' '.join(args.route)} impaired {args.impair} {impair}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

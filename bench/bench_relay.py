#!/usr/bin/env python3
"""Benchmark of the MediaMTX stand-in's RTSP relay.

Measures, against a stand-in container started here (label ``envkit.dev=1``, removed in
``finally``):

* publisher start -> first RTP packet at a reader (a minimal RTSP client polling DESCRIBE);
* publisher start -> first decoded frame at a real ``ffmpeg`` reader;
* packets/s received per reader with 1 and with 8 concurrent readers (plus, optionally,
  one reader that never reads, to show it does not stall the others), compared with
  the publisher's own packet rate reported by the Control API.

Why a raw client: ffmpeg hides packet timing; counting ``$`` frames directly shows
relay throughput and drops without decoding cost on the 2-core CI machine.

Usage: ``.venv/bin/python bench/bench_relay.py [--image IMG] [--size 640x480 --fps 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import docker

from envkit.camera.mediamtx import STANDIN
from envkit.session import Envkit

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"envkit.dev": "1", "envkit.bench": "relay"}


# ---------------------------------------------------------------------------- RTSP client
class Reader:
    """Minimal RTSP/TCP reader: DESCRIBE, SETUP track 0, PLAY, count ``$`` frames."""

    def __init__(self, url: str, stalled: bool = False) -> None:
        self.url = url
        self.stalled = stalled
        self.packets = 0
        self.first_packet: float | None = None
        self._cseq = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _request(
        self, method: str, url: str, extra: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._reader is not None and self._writer is not None
        self._cseq += 1
        head = f"{method} {url} RTSP/1.0\r\nCSeq: {self._cseq}\r\n{extra}\r\n"
        self._writer.write(head.encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (ln.partition(":") for ln in lines[1:] if ln)}
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def connect(self, deadline: float) -> None:
        """Poll DESCRIBE until the stream exists, then SETUP and PLAY."""
        host, port = self.url.split("/")[2].split(":")
        while True:
            self._reader, self._writer = await asyncio.open_connection(host, int(port))
            status, headers, _ = await self._request(
                "DESCRIBE", self.url, "Accept: application/sdp\r\n")
            if status == 200:
                break
            self._writer.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"DESCRIBE {self.url}: {status}")
            await asyncio.sleep(0.02)
        base = headers.get("content-base", self.url + "/")
        status, headers, _ = await self._request(
            "SETUP", base + "trackID=0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
        session = headers["session"].split(";")[0]
        status, _, _ = await self._request("PLAY", self.url, f"Session: {session}\r\n")
        assert status == 200, status

    async def run(self, stop: asyncio.Event) -> None:
        """Count RTP packets until ``stop``; a stalled reader never reads its socket."""
        assert self._reader is not None
        if self.stalled:
            await stop.wait()
            return
        while not stop.is_set():
            try:
                head = await asyncio.wait_for(self._reader.readexactly(4), 0.5)
            except asyncio.TimeoutError:
                continue
            if head[:1] != b"$":  # an RTSP response (keepalive) - skip its headers
                await self._reader.readuntil(b"\r\n\r\n")
                continue
            channel, length = struct.unpack("!BH", head[1:])
            await self._reader.readexactly(length)
            if channel == 0:
                self.packets += 1
                if self.first_packet is None:
                    self.first_packet = time.monotonic()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


# ---------------------------------------------------------------------------- helpers
def api(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=5) as res:
        return json.loads(res.read())


NOISE = False  # set by --noise: incompressible frames, i.e. a high packet rate


def publisher(url: str, size: str, fps: int) -> subprocess.Popen[bytes]:
    src = f"testsrc=size={size}:rate={fps}" + (",noise=alls=40:allf=t" if NOISE else "")
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
         "-i", src, "-c:v", "libx264", "-preset", "ultrafast",
         "-tune", "zerolatency", "-g", str(fps), "-f", "rtsp", url],
        stdin=subprocess.DEVNULL)


def stop_proc(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ensure_image(image: str | None) -> str:
    """The image to run: *image* if given, else the camera kit's stand-in, built if need be.

    The stand-in's context ships with the camera kit, so envkit's own builder makes it
    (on the kit's Debian base) exactly as a test run would.
    """
    if image is not None:
        return image
    kit = Envkit.from_env(os.environ, worker="bench", root=ROOT)
    return kit.images.resolve(STANDIN)


async def first_packet_latency(url: str, size: str, fps: int) -> float:
    reader = Reader(url)
    t0 = time.monotonic()
    pub = publisher(url, size, fps)
    try:
        await reader.connect(t0 + 20)
        stop = asyncio.Event()
        task = asyncio.create_task(reader.run(stop))
        while reader.first_packet is None and time.monotonic() < t0 + 20:
            await asyncio.sleep(0.005)
        stop.set()
        await task
        assert reader.first_packet is not None, "no packet"
        return reader.first_packet - t0
    finally:
        reader.close()
        stop_proc(pub)


def first_frame_latency(url: str, size: str, fps: int) -> float:
    t0 = time.monotonic()
    pub = publisher(url, size, fps)
    try:
        while time.monotonic() < t0 + 30:
            res = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-i", url,
                                  "-frames:v", "1", "-f", "null", "-"], timeout=30, check=False)
            if res.returncode == 0:
                return time.monotonic() - t0
            time.sleep(0.02)
        raise TimeoutError("no frame decoded")
    finally:
        stop_proc(pub)


async def rates(url: str, api_base: str, *, readers: int, stalled: int, size: str, fps: int,
                window: float) -> dict:
    pub = publisher(url, size, fps)
    clients = [Reader(url) for _ in range(readers)] + [Reader(url, True) for _ in range(stalled)]
    try:
        deadline = time.monotonic() + 20
        for c in clients:
            await c.connect(deadline)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(c.run(stop)) for c in clients]
        await asyncio.sleep(2)  # warm-up
        before = {c: c.packets for c in clients}
        pub_before = next(s for s in api(api_base, "/v3/rtspsessions/list")["items"]
                          if s["state"] == "publish")["inboundRTPPackets"]
        await asyncio.sleep(window)
        after = {c: c.packets for c in clients}
        sessions = api(api_base, "/v3/rtspsessions/list")["items"]
        pub_after = next(s for s in sessions if s["state"] == "publish")["inboundRTPPackets"]
        stop.set()
        await asyncio.gather(*tasks)
        per_reader = [(after[c] - before[c]) / window for c in clients if not c.stalled]
        return {
            "readers": readers,
            "stalled_readers": stalled,
            "publisher_pps": round((pub_after - pub_before) / window, 1),
            "reader_pps_min": round(min(per_reader), 1),
            "reader_pps_max": round(max(per_reader), 1),
            "discarded_total": sum(s["outboundRTPPacketsDiscarded"] for s in sessions),
        }
    finally:
        for c in clients:
            c.close()
        stop_proc(pub)


async def main_async(args: argparse.Namespace, rtsp: str, api_base: str) -> dict:
    results: dict = {"size": args.size, "fps": args.fps, "noise": NOISE}
    results["first_rtp_packet_s"] = [round(await first_packet_latency(
        f"{rtsp}/lat{i}", args.size, args.fps), 3) for i in range(args.repeat)]
    results["first_decoded_frame_s"] = [round(first_frame_latency(
        f"{rtsp}/dec{i}", args.size, args.fps), 3) for i in range(args.repeat)]
    common = {"size": args.size, "fps": args.fps, "window": args.window}
    results["rate_1"] = await rates(f"{rtsp}/r1", api_base, readers=1, stalled=0, **common)
    results["rate_8"] = await rates(f"{rtsp}/r8", api_base, readers=8, stalled=0, **common)
    results["rate_8_plus_stalled"] = await rates(
        f"{rtsp}/r8s", api_base, readers=8, stalled=1, **common)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None,
                        help="image to run (default: the camera kit's stand-in, built here)")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--noise", action="store_true", help="high-bitrate publisher")
    args = parser.parse_args()
    global NOISE  # noqa: PLW0603 - a CLI switch for the module-level publisher()
    NOISE = args.noise
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found", file=sys.stderr)
        return 2
    client = docker.from_env()
    args.image = ensure_image(args.image)
    container = client.containers.run(
        args.image, detach=True, labels=LABELS,
        ports={"8554/tcp": ("127.0.0.1", None), "9997/tcp": ("127.0.0.1", None)})
    try:
        container.reload()
        ports = container.attrs["NetworkSettings"]["Ports"]
        rtsp = f"rtsp://127.0.0.1:{ports['8554/tcp'][0]['HostPort']}"
        api_base = f"http://127.0.0.1:{ports['9997/tcp'][0]['HostPort']}"
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                api(api_base, "/v3/info")
                break
            if time.monotonic() > deadline:
                raise TimeoutError("stand-in API not answering")
            time.sleep(0.1)
        results = asyncio.run(main_async(args, rtsp, api_base))
        print(json.dumps(results, indent=2))
        return 0
    finally:
        container.remove(force=True)


if __name__ == "__main__":
    sys.exit(main())

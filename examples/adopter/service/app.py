"""The team's echo service: a WebSocket echo behind a JWT, and a health endpoint.

- ``ws://:8002/``: the first message must be a JWT (HS256, signed with ``APP_JWT_SECRET``);
  the server answers ``{"authenticated": <sub>}`` and then echoes every message. A missing,
  late or bad token closes the connection with code 1008 (policy violation).
- ``http://:8003/health``: 200 when MediaMTX's API (``MEDIAMTX_URL``) answers, else 503;
  the JSON body reports the websockets and PyJWT versions the service runs with.

It uses websockets' asyncio API (``websockets.asyncio.server``, new in websockets 13), so
it cannot run on Debian bookworm's websockets 10.4: the image needs its PyPI wheels.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from websockets.asyncio.server import ServerConnection, serve
from websockets.version import version as WEBSOCKETS_VERSION  # websockets.__version__

WS_PORT = 8002
HEALTH_PORT = 8003
POLICY_VIOLATION = 1008
TOKEN_TIMEOUT = 10.0
# Short, so that a health probe never outlasts the readiness poller's own request timeout.
MEDIAMTX_TIMEOUT = 2.0


def mediamtx_status(base_url: str) -> str:
    """Return ``"reachable"`` when MediaMTX's API lists its paths, else why not."""
    url = base_url.rstrip("/") + "/v3/paths/list"
    try:
        with urllib.request.urlopen(url, timeout=MEDIAMTX_TIMEOUT) as response:
            return "reachable" if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"unreachable: {exc}"


def health_server(mediamtx_url: str, port: int) -> ThreadingHTTPServer:
    """Make the health endpoint's HTTP server (not yet serving)."""
    last = {"mediamtx": ""}
    lock = threading.Lock()

    def checked() -> str:
        mediamtx = mediamtx_status(mediamtx_url)
        with lock:
            # Logged on change only: a readiness timeout's log tail then says why.
            if mediamtx != last["mediamtx"]:
                print(f"app: MediaMTX at {mediamtx_url}: {mediamtx}", flush=True)
                last["mediamtx"] = mediamtx
        return mediamtx

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/health":
                self.send_error(404)
                return
            mediamtx = checked()
            body = json.dumps({
                "status": "ok" if mediamtx == "reachable" else "degraded",
                "mediamtx": mediamtx,
                "websockets": WEBSOCKETS_VERSION,
                "jwt": jwt.__version__,
            }).encode()
            self.send_response(200 if mediamtx == "reachable" else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # readiness polls every few hundred ms; their lines would drown the log

    return ThreadingHTTPServer(("0.0.0.0", port), Health)


def make_handler(secret: str) -> Callable[[ServerConnection], Awaitable[None]]:
    """Make the WebSocket handler that checks the first message's JWT, then echoes."""

    async def handler(ws: ServerConnection) -> None:
        try:
            token = await asyncio.wait_for(ws.recv(), TOKEN_TIMEOUT)
            claims = jwt.decode(token, secret, algorithms=["HS256"])
        except asyncio.TimeoutError:
            await ws.close(POLICY_VIOLATION, "no token within 10 s")
            return
        except jwt.InvalidTokenError:
            await ws.close(POLICY_VIOLATION, "invalid token")
            return
        await ws.send(json.dumps({"authenticated": claims.get("sub")}))
        async for message in ws:
            await ws.send(message)

    return handler


async def main() -> int:
    """Serve until SIGTERM or SIGINT."""
    secret = os.environ.get("APP_JWT_SECRET", "")
    if not secret:
        print("app: APP_JWT_SECRET is not set; fix: set it to the JWT signing secret",
              file=sys.stderr)
        return 2
    # The ports are fixed in the image; the variables let a developer run it on the host.
    ws_port = int(os.environ.get("APP_WS_PORT", WS_PORT))
    health_port = int(os.environ.get("APP_HEALTH_PORT", HEALTH_PORT))
    health = health_server(os.environ.get("MEDIAMTX_URL", "http://mediamtx:9997"), health_port)
    threading.Thread(target=health.serve_forever, name="health", daemon=True).start()
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():  # a second signal while stopping is not an error
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    async with serve(make_handler(secret), "0.0.0.0", ws_port):
        print(f"app: websockets {WEBSOCKETS_VERSION}, PyJWT {jwt.__version__}; "
              f"ws on {ws_port}, health on {health_port}", flush=True)
        await stop
    health.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

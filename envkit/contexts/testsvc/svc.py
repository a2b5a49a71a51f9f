"""Tiny stdlib HTTP service used by envkit's own tests.

``svc.py serve --port 8080`` answers ``GET /`` with ``{"service": NAME, "ok": true}`` and
``GET /health`` with 200. With ``--upstream URL``, ``GET /`` fetches URL and nests its JSON
under ``"upstream"`` (502 when that fails), which shows a dependent reaching its dependency
by network alias. SIGTERM exits at once so ``docker stop`` never waits for its timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("SERVICE_NAME") or socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    """Answers ``/`` and ``/health``; ``upstream`` is set once by :func:`main` before serving."""

    upstream: str | None = None

    def do_GET(self) -> None:
        """Every answer names the service, so a test can tell which container replied."""
        if self.path == "/health":
            self._reply(200, {"service": NAME, "ok": True})
        elif self.path == "/" and self.upstream:
            try:
                with urllib.request.urlopen(self.upstream, timeout=5) as resp:
                    self._reply(200, {"service": NAME, "upstream": json.load(resp)})
            except (OSError, ValueError) as exc:
                self._reply(502, {"service": NAME, "error": f"{self.upstream}: {exc}"})
        elif self.path == "/":
            self._reply(200, {"service": NAME, "ok": True})
        else:
            self._reply(404, {"service": NAME, "error": f"no route {self.path}"})

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Prefix access lines with the service name: several services share one log view."""
        sys.stderr.write(f"{NAME} {self.address_string()} {format % args}\n")


def main() -> None:
    """Parse ``serve --port N [--upstream URL]`` and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="svc.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--upstream", default=None)
    args = parser.parse_args()
    # As PID 1 the default SIGTERM action is ignored, so exit explicitly and at once.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Handler.upstream = args.upstream
    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    server.daemon_threads = True
    print(f"{NAME} listening on :{args.port} upstream={args.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

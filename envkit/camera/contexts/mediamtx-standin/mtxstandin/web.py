"""A small HTTP/1.1 server on asyncio streams, shaped like the part of aiohttp.web we use.

Why: importing aiohttp costs about 250 ms of CPU, more than the rest of the stand-in's
start-up together, and issue 9 wants the API up within 1.2x of a bare Python HTTP
server. The three HTTP servers (API, HLS, WebRTC) need little: routes with ``{name}``
and ``{name:.*}`` parts, middlewares, request bodies by Content-Length (or chunked), and
complete responses. Keeping aiohttp's names (``web.Request``, ``web.Response``,
``web.middleware``...) keeps the servers' code as it was.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 413: "Request Entity Too Large",
           500: "Internal Server Error"}


class Headers(dict[str, str]):
    """Request headers, looked up case-insensitively (stored lower-case)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class Request:
    """What handlers read: method, decoded path, query, headers, peer, body."""

    def __init__(self, method: str, target: str, headers: Headers, body: bytes,
                 remote: str) -> None:
        parts = urlsplit(target)
        self.method = method
        self.raw_path = parts.path
        self.path = unquote(parts.path)
        self.query_string = parts.query
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.headers = headers
        self.remote = remote
        self.match_info: dict[str, str] = {}
        self._body = body

    async def json(self) -> Any:
        """The body decoded as JSON (errors as ``json.JSONDecodeError``)."""
        return json.loads(self._body.decode("utf-8"))


class Response:
    """A complete response; ``headers`` may be changed until it is sent."""

    def __init__(self, *, body: bytes | None = None, text: str | None = None,
                 status: int = 200, content_type: str | None = None,
                 charset: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})
        if text is not None:
            body = text.encode(charset or "utf-8")
            charset = charset or "utf-8"
            content_type = content_type or "text/plain"
        self.body = body or b""
        if content_type:
            self.headers["Content-Type"] = \
                f"{content_type}; charset={charset}" if charset else content_type

    def set_cookie(self, name: str, value: str) -> None:
        """``Set-Cookie`` as aiohttp writes it by default (``Path=/``)."""
        self.headers["Set-Cookie"] = f"{name}={value}; Path=/"


StreamResponse = Response
Handler = Callable[[Request], Awaitable[Response]]


class HTTPNotFound(Exception):
    """No route matches the path."""


class HTTPMethodNotAllowed(Exception):
    """A route matches the path, not the method."""


class HTTPMovedPermanently(Response):
    """301 to ``location``."""

    def __init__(self, location: str) -> None:
        super().__init__(status=301, headers={"Location": location})


def middleware(func: Any) -> Any:
    """Mark a middleware (kept for aiohttp's shape; every middleware is new-style)."""
    return func


class UrlDispatcher:
    """Routes tried in order; ``{x}`` matches one segment, ``{x:.*}`` anything."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` (``*``: any) on ``pattern``."""
        regex = re.sub(r"\{(\w+)(?::([^}]*))?\}",
                       lambda m: f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})", pattern)
        self._routes.append((method, re.compile(regex + r"\Z"), handler))

    def add_get(self, pattern: str, handler: Handler, allow_head: bool = True) -> None:
        """GET (and HEAD unless ``allow_head`` is false)."""
        self.add_route("GET", pattern, handler)
        if allow_head:
            self.add_route("HEAD", pattern, handler)

    def add_post(self, pattern: str, handler: Handler) -> None:
        """POST."""
        self.add_route("POST", pattern, handler)

    def add_patch(self, pattern: str, handler: Handler) -> None:
        """PATCH."""
        self.add_route("PATCH", pattern, handler)

    def add_delete(self, pattern: str, handler: Handler) -> None:
        """DELETE."""
        self.add_route("DELETE", pattern, handler)

    def resolve(self, request: Request) -> Handler:
        """The handler of the first matching route, or one raising 404/405."""
        path_matched = False
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            path_matched = True
            if method in ("*", request.method):
                request.match_info = match.groupdict()
                return handler
        error = HTTPMethodNotAllowed if path_matched else HTTPNotFound

        async def refuse(_: Request) -> Response:
            raise error

        return refuse


class Application:
    """A router plus middlewares, outermost first."""

    def __init__(self, middlewares: list[Any] | None = None) -> None:
        self.router = UrlDispatcher()
        self.middlewares = list(middlewares or [])

    async def handle(self, request: Request) -> Response:
        """Run the middlewares around the matched route."""
        handler = self.router.resolve(request)
        for mw in reversed(self.middlewares):
            handler = _bind(mw, handler)
        return await handler(request)


def _bind(mw: Any, inner: Handler) -> Handler:
    async def call(request: Request) -> Response:
        result: Response = await mw(request, inner)
        return result

    return call


class AppRunner:
    """A bound listening server and its open connections (closed by ``cleanup``)."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str | None, port: int) -> None:
        """Listen on ``host:port`` (every interface when ``host`` is None)."""
        self.server = await asyncio.start_server(self._serve, host, port,
                                                 reuse_address=True, limit=MAX_HEAD)

    async def cleanup(self) -> None:
        """Stop listening and drop idle keep-alive connections at once."""
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            while await self._one(reader, writer, str(peer[0])):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   remote: str) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = Headers()
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await _read_body(reader, headers)
        response = await self.app.handle(Request(method, target, headers, body, remote))
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        writer.write(_serialize(response, method == "HEAD", keep))
        await writer.drain()
        return keep


async def _read_body(reader: asyncio.StreamReader, headers: Headers) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])
            if sum(map(len, chunks)) > MAX_BODY:
                raise ValueError("body too large")
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return await reader.readexactly(length) if length else b""


def _serialize(response: Response, head: bool, keep: bool) -> bytes:
    lines = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'Unknown')}"]
    headers = dict(response.headers)
    headers.setdefault("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
    if response.status not in (204, 304):
        headers["Content-Length"] = str(len(response.body))
    if not keep:
        headers["Connection"] = "close"
    lines += [f"{k}: {v}" for k, v in headers.items()]
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return out if head else out + response.body


async def serve(app: Application, address: str) -> AppRunner:
    """Bind ``app`` on ``host:port`` (empty host: every interface)."""
    runner = AppRunner(app)
    host, _, port = address.rpartition(":")
    await runner.start(host or None, int(port))
    return runner

"""Control API v3 (aiohttp), with upstream's routes, status codes and error bodies.

Why: camera services create and delete paths through this API and read stream state
from it; envkit waits on ``/v3/info`` or ``/v3/paths/list``. Every answer follows the
schemas of the MediaMTX v1.20.1 OpenAPI document, errors are
``{"status": "error", "error": "..."}`` and changes answer ``{"status": "ok"}`` (as
upstream's ``writeOK``). Access is checked against ``authInternalUsers`` for the
``api`` action, so a stack that forgets to open the API to its network fails here the
same way it would with real MediaMTX (401).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import VERSION, log
from .config import Conf, ConfError, check_optional_path, check_path_name
from .path import now_iso
from .paths import PathManager
from .rtsp_server import RTSPServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    log.error(f"[API] {message}")
    return _json({"status": "error", "error": message}, status)


def _ok() -> web.Response:
    return _json({"status": "ok"})


def paginate(items: list[Any], request: web.Request) -> dict[str, Any]:
    """Upstream's pagination: ``itemsPerPage`` (default 100, >0) and ``page`` (from 0)."""
    per_raw = request.query.get("itemsPerPage", "")
    page_raw = request.query.get("page", "")
    per_page, page = 100, 0
    if per_raw:
        if not per_raw.isdigit():
            raise ConfError(f'strconv.ParseUint: parsing "{per_raw}": invalid syntax')
        per_page = int(per_raw)
        if per_page == 0:
            raise ConfError("invalid items per page")
    if page_raw:
        if not page_raw.isdigit():
            raise ConfError(f'strconv.ParseUint: parsing "{page_raw}": invalid syntax')
        page = int(page_raw)
    count = len(items)
    page_count = 0 if count == 0 else (count + per_page - 1) // per_page
    lo = min(page * per_page, count)
    hi = min((page + 1) * per_page, count)
    return {"itemCount": count, "pageCount": page_count, "items": items[lo:hi]}


class API:
    """The HTTP API server; holds the live :class:`Conf` and applies changes."""

    def __init__(self, conf: Conf, paths: PathManager, rtsp: RTSPServer | None) -> None:
        self.conf = conf
        self.paths = paths
        self.rtsp = rtsp
        self.started = now_iso()
        self.address = str(conf.global_values["apiAddress"])
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ plumbing
    def _allowed(self, remote: str | None) -> bool:
        """Whether ``authInternalUsers`` grants the ``api`` action to this client IP."""
        if self.conf.global_values.get("authMethod") != "internal":
            return True
        try:
            ip = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        for user in self.conf.global_values.get("authInternalUsers", []):
            if user.get("user") != "any" or user.get("pass"):
                continue
            if not any(p.get("action") == "api" for p in user.get("permissions", [])):
                continue
            ips = user.get("ips") or []
            if not ips:
                return True
            for net in ips:
                with_mask = net if "/" in net else f"{net}/{ip.max_prefixlen}"
                try:
                    if ip in ipaddress.ip_network(with_mask, strict=False):
                        return True
                except ValueError:
                    continue
        return False

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._allowed(request.remote):
            log.info(f"[API] connection {request.remote} failed to authenticate: "
                     "authentication failed")
            return _json({"status": "error", "error": "authentication error"}, 401)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(text="404 page not found", status=404)
        except web.HTTPMethodNotAllowed:
            return web.Response(text="404 page not found", status=404)
        except ConfError as exc:
            return _error(400, str(exc))

    async def start(self) -> None:
        """Bind and log ``[API] listener opened on :9997`` like upstream."""
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/v3/info", self.info)
        r.add_get("/v3/config/global/get", self.global_get)
        r.add_patch("/v3/config/global/patch", self.global_patch)
        r.add_get("/v3/config/pathdefaults/get", self.pathdefaults_get)
        r.add_patch("/v3/config/pathdefaults/patch", self.pathdefaults_patch)
        r.add_get("/v3/config/paths/list", self.conf_paths_list)
        r.add_get("/v3/config/paths/get/{name:.*}", self.conf_paths_get)
        r.add_post("/v3/config/paths/add/{name:.*}", self.conf_paths_add)
        r.add_patch("/v3/config/paths/patch/{name:.*}", self.conf_paths_patch)
        r.add_post("/v3/config/paths/replace/{name:.*}", self.conf_paths_replace)
        r.add_delete("/v3/config/paths/delete/{name:.*}", self.conf_paths_delete)
        r.add_get("/v3/paths/list", self.paths_list)
        r.add_get("/v3/paths/get/{name:.*}", self.paths_get)
        r.add_get("/v3/rtspsessions/list", self.rtsp_sessions_list)
        r.add_get("/v3/rtspsessions/get/{id}", self.rtsp_sessions_get)
        r.add_post("/v3/rtspsessions/kick/{id}", self.rtsp_sessions_kick)
        r.add_get("/v3/rtspconns/list", self.rtsp_conns_list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, _, port = self.address.rpartition(":")
        await web.TCPSite(self._runner, host or None, int(port)).start()
        log.info(f"[API] listener opened on {self.address}")

    async def close(self) -> None:
        """Stop serving."""
        log.info("[API] listener is closing")
        if self._runner is not None:
            await self._runner.cleanup()

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfError(f"invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfError("json: cannot unmarshal non-object into configuration")
        return data

    def _commit(self, new_conf: Conf) -> None:
        new_conf.validate()
        self.conf = new_conf
        self.paths.reload(new_conf)

    @staticmethod
    def _name(request: web.Request) -> str:
        name = request.match_info["name"]
        if not name:
            raise ConfError("invalid name")
        return name

    # ------------------------------------------------------------------ general
    async def info(self, request: web.Request) -> web.Response:
        """Version (names the stand-in) and start time."""
        return _json({"version": VERSION, "started": self.started})

    async def global_get(self, request: web.Request) -> web.Response:
        """Global configuration."""
        return _json(self.conf.global_values)

    async def global_patch(self, request: web.Request) -> web.Response:
        """Patch global values (stored; listeners are not re-bound by the stand-in)."""
        body = await self._body(request)
        new_conf = self.conf.clone()
        for key, value in body.items():
            if key not in new_conf.global_values:
                raise ConfError(f'json: unknown field "{key}"')
            new_conf.global_values[key] = value
        self._commit(new_conf)
        return _ok()

    async def pathdefaults_get(self, request: web.Request) -> web.Response:
        """Default path configuration."""
        return _json(self.conf.path_defaults)

    async def pathdefaults_patch(self, request: web.Request) -> web.Response:
        """Patch the path defaults."""
        values = check_optional_path(await self._body(request))
        new_conf = self.conf.clone()
        new_conf.path_defaults.update(values)
        self._commit(new_conf)
        return _ok()

    # ------------------------------------------------------------------ config paths
    async def conf_paths_list(self, request: web.Request) -> web.Response:
        """All path configurations, sorted by name."""
        items = [self.conf.path_conf(n) for n in sorted(self.conf.paths)]
        return _json(paginate(items, request))

    async def conf_paths_get(self, request: web.Request) -> web.Response:
        """One path configuration (404 ``path configuration not found``, as upstream)."""
        name = self._name(request)
        if name not in self.conf.paths:
            return _error(404, "path configuration not found")
        return _json(self.conf.path_conf(name))

    async def conf_paths_add(self, request: web.Request) -> web.Response:
        """Add a path configuration (400 ``path already exists`` if present)."""
        name = self._name(request)
        values = check_optional_path(await self._body(request))
        if name in self.conf.paths:
            return _error(400, "path already exists")
        check_path_name(name)
        new_conf = self.conf.clone()
        new_conf.paths[name] = values
        self._commit(new_conf)
        return _ok()

    async def conf_paths_patch(self, request: web.Request) -> web.Response:
        """Patch a path configuration (404 ``path not found`` if absent)."""
        name = self._name(request)
        values = check_optional_path(await self._body(request))
        if name not in self.conf.paths:
            return _error(404, "path not found")
        new_conf = self.conf.clone()
        new_conf.paths[name].update(values)
        self._commit(new_conf)
        return _ok()

    async def conf_paths_replace(self, request: web.Request) -> web.Response:
        """Replace a path configuration; like upstream v1.20 this also creates it."""
        name = self._name(request)
        values = check_optional_path(await self._body(request))
        check_path_name(name)
        new_conf = self.conf.clone()
        new_conf.paths[name] = values
        self._commit(new_conf)
        return _ok()

    async def conf_paths_delete(self, request: web.Request) -> web.Response:
        """Remove a path configuration (404 ``path not found`` if absent)."""
        name = self._name(request)
        if name not in self.conf.paths:
            return _error(404, "path not found")
        new_conf = self.conf.clone()
        del new_conf.paths[name]
        self._commit(new_conf)
        return _ok()

    # ------------------------------------------------------------------ runtime
    async def paths_list(self, request: web.Request) -> web.Response:
        """Paths that exist now (static ones always, regex ones while in use)."""
        return _json(paginate(self.paths.api_list(), request))

    async def paths_get(self, request: web.Request) -> web.Response:
        """One path (404 ``path not found``)."""
        item = self.paths.api_get(self._name(request))
        if item is None:
            return _error(404, "path not found")
        return _json(item)

    async def rtsp_sessions_list(self, request: web.Request) -> web.Response:
        """RTSP sessions (publishers and readers)."""
        sessions = self.rtsp.sessions if self.rtsp is not None else {}
        items = [s.api_item() for s in sorted(sessions.values(), key=lambda s: s.created)]
        return _json(paginate(items, request))

    async def rtsp_sessions_get(self, request: web.Request) -> web.Response:
        """One RTSP session (404 ``session not found``)."""
        session = self.rtsp.sessions.get(request.match_info["id"]) if self.rtsp else None
        if session is None:
            return _error(404, "session not found")
        return _json(session.api_item())

    async def rtsp_sessions_kick(self, request: web.Request) -> web.Response:
        """Close one RTSP session and its connection."""
        session = self.rtsp.sessions.get(request.match_info["id"]) if self.rtsp else None
        if session is None:
            return _error(404, "session not found")
        session.conn.close_from_path("kicked")
        return _ok()

    async def rtsp_conns_list(self, request: web.Request) -> web.Response:
        """RTSP connections."""
        conns = self.rtsp.conns if self.rtsp is not None else {}
        items = [{
            "id": c.uuid, "created": c.created, "remoteAddr": c.remote,
            "session": c.session.uuid if c.session else None, "tunnel": "none",
            "inboundBytes": c.bytes_in, "outboundBytes": 0,
            "bytesReceived": c.bytes_in, "bytesSent": 0,
        } for c in conns.values()]
        return _json(paginate(items, request))

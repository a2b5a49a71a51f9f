"""Control API v3, with upstream's routes, status codes and error bodies.

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
from typing import TYPE_CHECKING, Any

from . import VERSION, api_runtime, log, web
from .api_runtime import paginate
from .config import Conf, ConfError, check_optional_path, check_path_name, coerce_global
from .httpbase import Handler, error_response, json_response, make_app, serve
from .path import now_iso

if TYPE_CHECKING:
    from .core import Core


def _json(data: Any, status: int = 200) -> web.Response:
    return json_response(data, status)


def _error(status: int, message: str) -> web.Response:
    return error_response(status, message)


def _ok() -> web.Response:
    return _json({"status": "ok"})


class API:
    """The HTTP API server; holds the live :class:`Conf` and applies changes."""

    def __init__(self, core: Core) -> None:
        self.core = core
        conf = core.conf
        self.started = now_iso()
        self.address = str(conf.global_values["apiAddress"])
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def conf(self) -> Conf:
        """The live configuration (owned by the core, replaced on every change)."""
        return self.core.conf

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
        except ConfError as exc:
            return _error(400, str(exc))

    async def start(self) -> None:
        """Bind and log upstream's ``[API] started with listener on :9997 (TCP/HTTP)``."""
        app = make_app(lambda: list(self.conf.global_values.get("apiAllowOrigins") or []),
                       [self._middleware])
        r = app.router
        r.add_get("/v3/info", self.info, allow_head=False)
        r.add_post("/v3/auth/jwks/refresh", self.jwks_refresh)
        r.add_get("/v3/config/global/get", self.global_get, allow_head=False)
        r.add_patch("/v3/config/global/patch", self.global_patch)
        r.add_get("/v3/config/pathdefaults/get", self.pathdefaults_get, allow_head=False)
        r.add_patch("/v3/config/pathdefaults/patch", self.pathdefaults_patch)
        r.add_get("/v3/config/paths/list", self.conf_paths_list, allow_head=False)
        r.add_get("/v3/config/paths/get/{name:.*}", self.conf_paths_get, allow_head=False)
        r.add_post("/v3/config/paths/add/{name:.*}", self.conf_paths_add)
        r.add_patch("/v3/config/paths/patch/{name:.*}", self.conf_paths_patch)
        r.add_post("/v3/config/paths/replace/{name:.*}", self.conf_paths_replace)
        r.add_delete("/v3/config/paths/delete/{name:.*}", self.conf_paths_delete)
        api_runtime.add_routes(r, self.core)
        self._runner = await serve(app, self.address)
        log.info(f"[API] started with listener on {self.address} (TCP/HTTP)")

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
        self.core.apply(new_conf)

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

    async def jwks_refresh(self, request: web.Request) -> web.Response:
        """Upstream always routes it and answers ok; without JWT auth there is nothing to drop."""
        return _ok()

    async def global_get(self, request: web.Request) -> web.Response:
        """Global configuration."""
        return _json(self.conf.global_values)

    async def global_patch(self, request: web.Request) -> web.Response:
        """Patch global values; like upstream, every server restarts afterwards."""
        body = await self._body(request)
        new_conf = self.conf.clone()
        for key, value in body.items():
            if key not in new_conf.global_values:
                raise ConfError(f'json: unknown field "{key}"')
            new_conf.global_values[key] = coerce_global(key, value)
        new_conf.validate()
        self.core.apply_global(new_conf)
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

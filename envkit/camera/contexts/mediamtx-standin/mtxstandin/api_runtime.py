"""Control API v3, runtime half: paths, sessions, connections, muxers, recordings.

Why a module of its own: these answers describe what the servers are doing now (the
config half lives in ``api.py``). Upstream registers a server's routes only while that
server runs, so a disabled server's routes answer gin's ``404 page not found``; ids are
parsed as UUIDs first (``invalid UUID length: 8`` is a 400), and unknown ids answer 404
with the server's own text (``session not found``, ``muxer not found``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import recordings, web
from .config import ConfError, path_name_problem
from .gofmt import parse_uuid
from .httpbase import error_response, json_response, not_found

if TYPE_CHECKING:
    from .core import Core

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


def _uuid(text: str) -> str:
    """An id parsed as upstream parses it; a bad one answers 400 with Go's text."""
    try:
        return parse_uuid(text)
    except ValueError as exc:
        raise ConfError(str(exc)) from exc


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not name or path_name_problem(name):
        raise ConfError("invalid name")
    return name


def add_routes(r: web.UrlDispatcher, core: Core) -> None:
    """Register every runtime route of the API on ``r``."""
    h = _Handlers(core)
    r.add_get("/v3/paths/list", h.paths_list, allow_head=False)
    r.add_get("/v3/paths/get/{name:.*}", h.paths_get, allow_head=False)
    r.add_get("/v3/paths/forward/list", h.forward_list, allow_head=False)
    r.add_get("/v3/paths/forward/get", h.forward_get, allow_head=False)
    r.add_get("/v3/rtspsessions/list", h.guard("rtsp", h.rtsp_sessions_list), allow_head=False)
    r.add_get("/v3/rtspsessions/get/{id}", h.guard("rtsp", h.rtsp_sessions_get), allow_head=False)
    r.add_post("/v3/rtspsessions/kick/{id}", h.guard("rtsp", h.rtsp_sessions_kick))
    r.add_get("/v3/rtspconns/list", h.guard("rtsp", h.rtsp_conns_list), allow_head=False)
    r.add_get("/v3/rtspconns/get/{id}", h.guard("rtsp", h.rtsp_conns_get), allow_head=False)
    r.add_get("/v3/hlsmuxers/list", h.guard("hls", h.hls_muxers_list), allow_head=False)
    r.add_get("/v3/hlsmuxers/get/{name:.*}", h.guard("hls", h.hls_muxers_get), allow_head=False)
    r.add_get("/v3/hlssessions/list", h.guard("hls", h.empty_list), allow_head=False)
    r.add_get("/v3/hlssessions/get/{id}", h.guard("hls", h.no_session), allow_head=False)
    r.add_post("/v3/hlssessions/kick/{id}", h.guard("hls", h.no_session))
    for proto in ("webrtc", "moq"):
        r.add_get(f"/v3/{proto}sessions/list", h.guard(proto, h.empty_list), allow_head=False)
        r.add_get(f"/v3/{proto}sessions/get/{{id}}", h.guard(proto, h.no_session), allow_head=False)
        r.add_post(f"/v3/{proto}sessions/kick/{{id}}", h.guard(proto, h.no_session))
    r.add_get("/v3/recordings/list", h.recordings_list, allow_head=False)
    r.add_get("/v3/recordings/get/{name:.*}", h.recordings_get, allow_head=False)
    r.add_delete("/v3/recordings/deletesegment", h.recordings_delete_segment)


class _Handlers:
    def __init__(self, core: Core) -> None:
        self.core = core

    def guard(self, flag: str, handler: Callable[[web.Request], Any]) -> Any:
        """Routes of a server exist only while the configuration enables it."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not self.core.conf.global_values.get(flag):
                return not_found()
            result: web.StreamResponse = await handler(request)
            return result

        return wrapped

    async def paths_list(self, request: web.Request) -> web.Response:
        return json_response(paginate(self.core.paths.api_list(), request))

    async def paths_get(self, request: web.Request) -> web.Response:
        item = self.core.paths.api_get(_name(request))
        if item is None:
            return error_response(404, "path not found")
        return json_response(item)

    async def rtsp_sessions_list(self, request: web.Request) -> web.Response:
        rtsp = self.core.rtsp
        sessions = rtsp.sessions.values() if rtsp is not None else []
        items = [s.api_item() for s in sorted(sessions, key=lambda s: s.created)]
        return json_response(paginate(items, request))

    def _session(self, request: web.Request) -> Any:
        sid = _uuid(request.match_info["id"])
        return self.core.rtsp.sessions.get(sid) if self.core.rtsp is not None else None

    async def rtsp_sessions_get(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return error_response(404, "session not found")
        return json_response(session.api_item())

    async def rtsp_sessions_kick(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return error_response(404, "session not found")
        session.conn.close_from_path("kicked")
        return json_response({"status": "ok"})

    async def rtsp_conns_list(self, request: web.Request) -> web.Response:
        rtsp = self.core.rtsp
        conns = rtsp.conns.values() if rtsp is not None else []
        return json_response(paginate([c.api_item() for c in conns], request))

    async def rtsp_conns_get(self, request: web.Request) -> web.Response:
        cid = _uuid(request.match_info["id"])
        conn = self.core.rtsp.conns.get(cid) if self.core.rtsp is not None else None
        if conn is None:
            return error_response(404, "connection not found")
        return json_response(conn.api_item())

    async def hls_muxers_list(self, request: web.Request) -> web.Response:
        hls = self.core.hls
        items = hls.api_list() if hls is not None else []
        return json_response(paginate(items, request))

    async def hls_muxers_get(self, request: web.Request) -> web.Response:
        hls = self.core.hls
        item = hls.api_get(_name(request)) if hls is not None else None
        if item is None:
            return error_response(404, "muxer not found")
        return json_response(item)

    async def empty_list(self, request: web.Request) -> web.Response:
        return json_response(paginate([], request))

    async def no_session(self, request: web.Request) -> web.Response:
        _uuid(request.match_info["id"])
        return error_response(404, "session not found")

    async def recordings_list(self, request: web.Request) -> web.Response:
        # The stand-in never records, so no path has segments.
        return json_response(paginate([], request))

    async def recordings_get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not name:
            raise ConfError("invalid name")
        recordings.find_path_conf(self.core.conf, name)
        return json_response({"name": name, "segments": []})

    async def recordings_delete_segment(self, request: web.Request) -> web.Response:
        recordings.delete_segment(self.core.conf, request.query.get("path", ""),
                                  request.query.get("start", ""))
        return json_response({"status": "ok"})

    def _forward_path(self, request: web.Request) -> str | None:
        """The ``path`` query of the forward routes; None (404) if no such path runs."""
        name = request.query.get("path", "")
        if not name:
            raise ConfError("invalid path")
        return name if name in self.core.paths.paths else None

    async def forward_list(self, request: web.Request) -> web.Response:
        # Forwarding is not implemented: a path never has destinations.
        if self._forward_path(request) is None:
            return error_response(404, "path not found")
        return json_response(paginate([], request))

    async def forward_get(self, request: web.Request) -> web.Response:
        _uuid(request.query.get("id", ""))
        if self._forward_path(request) is None:
            return error_response(404, "path not found")
        return error_response(404, "forward destination not found")

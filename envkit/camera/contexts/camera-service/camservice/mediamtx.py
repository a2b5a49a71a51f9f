"""MediaMTX Control API v3 client and liveness monitor.

Path configurations added through the API live only in MediaMTX's memory, so a
MediaMTX restart silently drops every ``cameraN`` path.  The monitor therefore
polls the API about once a second, keeps an up/down view for the health server,
and hands the set of configured paths to a reconcile callback that re-creates
whatever is missing and restarts publishers after an outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

ReconcileFn = Callable[[set[str], bool], Awaitable[None]]


class MediaMTXError(Exception):
    """An API call failed: transport error (status 0) or an error answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"MediaMTX API {status}: {message}" if status else message)
        self.status = status
        self.message = message


class MediaMTXClient:
    """Thin async wrapper over the few API calls the service needs."""

    def __init__(self, base_url: str, timeout: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Release the HTTP connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self.base_url + path
        try:
            async with self._session.request(method, url, json=body) as resp:
                text = await resp.text()
                data: Any = None
                if text:
                    try:
                        data = await resp.json(content_type=None)
                    except ValueError:
                        data = None
                if resp.status >= 400:
                    message = data.get("error") if isinstance(data, dict) else None
                    raise MediaMTXError(resp.status, str(message or text.strip() or resp.reason))
                return data
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or ("no answer" if isinstance(exc, TimeoutError) else "")
            raise MediaMTXError(0, f"{method} {url}: {type(exc).__name__}: {reason}") from None

    async def _list(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 0
        while True:
            data = await self._request("GET", f"{path}?page={page}&itemsPerPage=500")
            if not isinstance(data, dict):
                raise MediaMTXError(200, f"unexpected answer from {path}")
            items.extend(i for i in data.get("items") or [] if isinstance(i, dict))
            page += 1
            if page >= int(data.get("pageCount") or 1):
                return items

    async def info(self) -> dict[str, Any]:
        """``GET /v3/info`` (``started``, ``version``)."""
        data = await self._request("GET", "/v3/info")
        return data if isinstance(data, dict) else {}

    async def list_paths(self) -> list[dict[str, Any]]:
        """``GET /v3/paths/list``, all pages: runtime state of every path."""
        return await self._list("/v3/paths/list")

    async def list_config_paths(self) -> list[dict[str, Any]]:
        """``GET /v3/config/paths/list``, all pages: configured paths."""
        return await self._list("/v3/config/paths/list")

    async def add_path(self, name: str, conf: dict[str, Any]) -> bool:
        """Add a path configuration; True if created, False if it already existed."""
        try:
            await self._request("POST", f"/v3/config/paths/add/{name}", conf)
        except MediaMTXError as exc:
            if exc.status == 400 and "already exists" in exc.message:
                return False
            raise
        return True

    async def delete_path(self, name: str) -> bool:
        """Delete a path configuration; True if deleted, False if it was not there."""
        try:
            await self._request("DELETE", f"/v3/config/paths/delete/{name}")
        except MediaMTXError as exc:
            if exc.status == 404:
                return False
            raise
        return True


class MediaMTXMonitor:
    """Polls MediaMTX and drives reconciliation; its state feeds /health/mediamtx."""

    def __init__(self, client: MediaMTXClient, interval: float, reconcile: ReconcileFn) -> None:
        self.client = client
        self.interval = interval
        self._reconcile = reconcile
        self.reachable = False
        self.checked = False
        self.last_check: float | None = None
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.consecutive_failures = 0
        self.outages = 0
        self.restarts_detected = 0
        self.started: str | None = None
        self.version: str | None = None
        self.configured_paths: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.polled = asyncio.Event()

    def start(self) -> None:
        """Begin polling in the background."""
        self._task = asyncio.create_task(self._run(), name="mediamtx-monitor")

    async def stop(self) -> None:
        """Stop polling and close the client."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    @property
    def running(self) -> bool:
        """True while the poll task is alive (it must never exit on its own)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("MediaMTX poll failed unexpectedly")
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> None:
        """One check: update state, detect restarts, reconcile paths."""
        self.last_check = time.time()
        was_reachable = self.reachable or not self.checked
        try:
            configured, info = await self._fetch()
        except MediaMTXError as exc:
            self._record_failure(exc)
            return
        restarted = self._record_success(info, was_reachable)
        names = {str(item.get("name")) for item in configured if item.get("name")}
        self.configured_paths = sorted(names)
        try:
            await self._reconcile(names, restarted)
        finally:
            self.polled.set()

    async def _fetch(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Configured paths and ``/v3/info``; raises ``MediaMTXError`` if unreachable."""
        configured = await self.client.list_config_paths()
        try:
            info = await self.client.info()
        except MediaMTXError as exc:
            if exc.status == 0:
                raise
            info = {}  # an API without /v3/info is still usable
        return configured, info

    def _record_failure(self, exc: MediaMTXError) -> None:
        """Mark MediaMTX down; warn and count an outage only on the up-to-down edge."""
        if self.reachable or not self.checked:
            log.warning("MediaMTX unreachable: %s", exc)
            if self.checked:
                self.outages += 1
        self.reachable = False
        self.checked = True
        self.last_error = str(exc)
        self.consecutive_failures += 1
        self.polled.set()

    def _record_success(self, info: dict[str, Any], was_reachable: bool) -> bool:
        """Mark MediaMTX up; True if it restarted (was down, or ``started`` changed)."""
        restarted = not was_reachable
        started = info.get("started")
        if started and self.started and started != self.started:
            restarted = True
        if restarted:
            if self.last_ok is not None:
                self.restarts_detected += 1
            log.info("MediaMTX is back (started=%s); re-creating paths", started)
        self.started = started or self.started
        self.version = info.get("version") or self.version
        self.reachable = True
        self.checked = True
        self.last_ok = self.last_check
        self.last_error = None
        self.consecutive_failures = 0
        return restarted

    def health(self) -> dict[str, Any]:
        """Details for /health/mediamtx and /health/system."""
        return {
            "status": "healthy" if self.reachable else "unhealthy",
            "details": {
                "api_url": self.client.base_url,
                "reachable": self.reachable,
                "checked": self.checked,
                "last_check": self.last_check,
                "last_ok": self.last_ok,
                "last_error": self.last_error,
                "consecutive_failures": self.consecutive_failures,
                "outages": self.outages,
                "restarts_detected": self.restarts_detected,
                "started": self.started,
                "version": self.version,
                "configured_paths": self.configured_paths,
            },
        }

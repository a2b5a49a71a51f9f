"""A small synchronous JSON-RPC 2.0 client over WebSocket, for tests of camera services.

Notifications that arrive while a call waits for its answer are set aside rather than
dropped, so a test can first act and then ask for the notification its action caused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from websockets.sync.client import ClientConnection, connect

from envkit.errors import EnvkitError

Message = dict[str, Any]


class RpcError(EnvkitError):
    """The server answered a call with a JSON-RPC error object."""

    def __init__(self, method: str, error: Message) -> None:
        self.method = method
        self.code = int(error.get("code", 0))
        self.error = error
        super().__init__(f"{method}: error {self.code}: {error.get('message')}",
                         fix="see the camera service contract for this method's errors")


class RpcTimeoutError(EnvkitError, TimeoutError):
    """No matching notification arrived in time; the message lists what came instead."""


class RpcClient:
    """JSON-RPC over one WebSocket connection; see :func:`connect_rpc`."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.notifications: list[Message] = []
        self._next_id = 0

    def call(self, method: str, params: Message | None = None, timeout: float = 30.0) -> Message:
        """Send a request and return the whole response object (result or error)."""
        self._next_id += 1
        request: Message = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            request["params"] = params
        self.ws.send(json.dumps(request))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if "id" not in message:
                self.notifications.append(message)
            elif message["id"] == self._next_id:
                return dict(message)

    def result(self, method: str, params: Message | None = None, timeout: float = 30.0) -> Any:
        """Call and return ``result``.

        :raises RpcError: when the server answered with an error.
        """
        response = self.call(method, params, timeout)
        if "error" in response:
            raise RpcError(method, response["error"])
        return response["result"]

    def wait_notification(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0
    ) -> Message:
        """Return the first queued or incoming notification matching *predicate*.

        :raises TimeoutError: listing what arrived instead.
        """
        for i, message in enumerate(self.notifications):
            if predicate(message):
                return self.notifications.pop(i)
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                break
            if "id" not in message and predicate(message):
                return dict(message)
            seen.append(message)
            if "id" not in message:
                self.notifications.append(message)  # kept for a later wait
        raise RpcTimeoutError(f"no matching notification within {timeout}s; saw {seen}",
                              fix="check that the action causes the notification, or wait longer")


@contextmanager
def connect_rpc(ws_url: str, token: str | None = None) -> Iterator[RpcClient]:
    """Open *ws_url* and, given a *token*, authenticate the connection with it."""
    with connect(ws_url, open_timeout=10) as ws:
        client = RpcClient(ws)
        if token is not None:
            client.result("authenticate", {"auth_token": token})
        yield client

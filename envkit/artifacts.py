"""Evidence a failed test leaves behind: logs, inspect documents, the stack's description.

``--envkit-artifacts DIR`` writes, for each failed test, one folder per stack it used::

    DIR/<test id>/<stack id>/stack.json           the stack's description, services, ports
    DIR/<test id>/<stack id>/<service>.log        the service's whole log, with timestamps
    DIR/<test id>/<stack id>/<service>.inspect.json   ``docker inspect`` of its container
    DIR/<test id>/failure.txt                     the test's failure as pytest reports it

Secret-looking environment values are cut out of every file (``failure.txt``: those of
all the stacks the worker made, since ``-l`` locals may hold one). CI uploads DIR when a
job fails, so the evidence outlives the runner. ``--envkit-logs DIR`` streams every
service's log into ``DIR/<stack id>.log`` while tests run (a follower thread per
container), which also shows what happened before a failure.
"""

from __future__ import annotations

import json
import re
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors
import requests.exceptions

from envkit import _engine
from envkit._privileges import redact, secret_values
from envkit.errors import EnvkitError

if TYPE_CHECKING:
    from envkit.runtime import Stack

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def folder_name(nodeid: str) -> str:
    """A file name for a test id: ``t/test_x.py::test_y[a]`` -> ``t_test_x.py_test_y_a``."""
    return _UNSAFE.sub("_", nodeid).strip("_")[:150] or "test"


def write_stack(stack: Stack, folder: Path) -> list[Path]:
    """Write *stack*'s description, and each service's log and inspect JSON, into *folder*.

    A service that cannot be read gets a ``<service>.error.txt`` instead: evidence of the
    others must not be lost to one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "stack.json"]
    # Secret-looking environment values (a JWT secret) stay out of evidence CI uploads.
    secrets = secret_values(svc.environment for svc in stack.spec.services)
    doc: dict[str, Any] = {**stack.describe(), "spec": repr(stack.spec)}
    written[0].write_text(redact(json.dumps(doc, indent=2, default=str), secrets) + "\n")
    for service, handle in list(stack._handles.items()):
        container = handle.container
        try:
            _engine.call(f"inspect {service}", container.reload, attempts=1)
            logs = _engine.call(f"read logs of {service}",
                                partial(container.logs, timestamps=True), attempts=1)
        except EnvkitError as exc:
            path = folder / f"{service}.error.txt"
            path.write_text(f"{exc}\n")
            written.append(path)
            continue
        (folder / f"{service}.log").write_text(
            redact(bytes(logs).decode("utf-8", "replace"), secrets))
        (folder / f"{service}.inspect.json").write_text(
            redact(json.dumps(container.attrs, indent=2), secrets) + "\n")
        written += [folder / f"{service}.log", folder / f"{service}.inspect.json"]
    return written


class LogStreams:
    """Follow every service of *stack* into ``<folder>/<stack id>.log`` until :meth:`stop`.

    A follower ends when its container stops and starts again after the container does (a
    restart, ``stack.start``), resuming at the time it left off, so faults show in order.
    """

    def __init__(self, stack: Stack, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{stack.id}.log"
        self._out = self.path.open("a", buffering=1)
        self._secrets = secret_values(svc.environment for svc in stack.spec.services)
        self._write = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._follow, args=(name, handle.container), daemon=True,
                             name=f"envkit-logs-{name}")
            for name, handle in stack._handles.items()
        ]
        for thread in self._threads:
            thread.start()

    def _follow(self, service: str, container: Any) -> None:
        since: float | None = None
        while not self._stopped.is_set():
            try:
                for line in container.logs(stream=True, follow=True, since=since):
                    with self._write:
                        text = redact(bytes(line).decode("utf-8", "replace"), self._secrets)
                        self._out.write(f"{service} | {text}")
                since = time.time()
                container.reload()
                while container.status != "running" and not self._stopped.wait(0.2):
                    container.reload()
            except (docker.errors.DockerException, requests.exceptions.RequestException,
                    ValueError):
                return  # the container is gone (teardown): nothing more to follow

    def stop(self) -> None:
        """Stop following (threads end with their streams) and close the file."""
        self._stopped.set()
        with self._write:
            self._out.close()

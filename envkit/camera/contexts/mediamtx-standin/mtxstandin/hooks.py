"""External commands of path hooks (runOnInit, runOnDemand, ...), run like upstream.

Why: a stack can make MediaMTX publish by itself (an FFmpeg test pattern in
``runOnInit``/``runOnDemand``). Upstream does not use a shell: it splits the command with
shell-quoting rules (go-shellquote), expands ``$VAR``/``${VAR}`` from the hook
environment (``MTX_PATH``, ``RTSP_PORT``, ``G1``...), executes it directly, stops it with
SIGINT, and restarts it after 5 s when ``...Restart`` is set. Use ``sh -c '...'`` in the
command for shell features, exactly as with upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
from collections.abc import Callable

RESTART_PAUSE = 5.0
KILL_AFTER = 5.0
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
# Commands told to stop and not yet exited: shutdown waits for exactly these (as
# upstream's command pool does), and for nothing when there are none.
_STOPPING: set[asyncio.Task[None]] = set()


def expand(text: str, env: dict[str, str]) -> str:
    """Expand ``$VAR`` and ``${VAR}`` from ``env`` then the process environment."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, os.environ.get(name, ""))

    return _VAR.sub(repl, text)


class ExternalCmd:
    """One hook command; ``close()`` stops it and any pending restart."""

    def __init__(
        self,
        cmdline: str,
        env: dict[str, str],
        restart: bool,
        on_exit: Callable[[str], None] | None = None,
    ) -> None:
        self.cmdline = cmdline
        self.env = env
        self.restart = restart
        self.on_exit = on_exit
        self._closed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run_once(self) -> str:
        args = [expand(a, self.env) for a in shlex.split(self.cmdline)]
        if not args:
            return "empty command"
        full_env = dict(os.environ)
        full_env.update(self.env)
        try:
            self._proc = await asyncio.create_subprocess_exec(*args, env=full_env)
        except OSError as exc:
            return str(exc)
        code = await self._proc.wait()
        return f"command returned code {code}" if code else "command exited with code 0"

    async def _run(self) -> None:
        while not self._closed.is_set():
            reason = await self._run_once()
            if self._closed.is_set():
                return
            if self.on_exit is not None:
                self.on_exit(reason)
            if not self.restart:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), RESTART_PAUSE)

    def close(self) -> None:
        """Stop the command (SIGINT, then SIGKILL after a grace period); do not wait."""
        self._closed.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            reaping = asyncio.get_running_loop().create_task(self._reap(proc))
            _STOPPING.add(reaping)
            reaping.add_done_callback(_STOPPING.discard)

    async def wait_closed(self, timeout: float = KILL_AFTER + 1) -> None:
        """Wait until the run loop has ended (used at shutdown)."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    @staticmethod
    async def _reap(proc: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(proc.wait(), KILL_AFTER)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def wait_stopped() -> None:
    """Wait until every command told to stop has exited (killed after ``KILL_AFTER``)."""
    if _STOPPING:
        await asyncio.gather(*_STOPPING, return_exceptions=True)

"""One run's view of envkit: its ids, its engine connection and its image builder.

The pytest plugin, the CLI and plain scripts all start stacks through this object, so
they share one way to connect (and fail), one image cache and one labelling scheme.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Mapping

from envkit import mediamtx
from envkit._engine import Engine, connect
from envkit.config import SESSION_MAX, Settings, sanitize_ident
from envkit.errors import EngineUnavailableError
from envkit.images import ImageBuilder
from envkit.runtime import Stack
from envkit.spec import StackSpec
from envkit.stacks import load_stack

NAME_MAX = 80  # a spec name (63 chars) plus its instance number: never cut to one id


def new_session_id() -> str:
    """A short random id for a run that was given none."""
    return uuid.uuid4().hex[:12]


class Envkit:
    """Factory of stacks for one session and worker, connected to the engine lazily.

    :param settings: resolved configuration.
    :param environ: the environment to connect with (``DOCKER_HOST`` and TLS variables).
    :param session: the run's id, shared by every worker of the run.
    :param worker: the xdist worker id, ``main`` outside xdist.
    :param progress: receives image-build progress lines; ``None`` builds quietly.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        environ: Mapping[str, str],
        session: str,
        worker: str = "main",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.session = sanitize_ident(session, limit=SESSION_MAX)
        self.worker = sanitize_ident(worker, limit=16)
        self._environ = dict(environ)
        self._progress = progress
        self._engine: Engine | None = None
        self._engine_error: EngineUnavailableError | None = None
        self._builder: ImageBuilder | None = None
        self._mediamtx: mediamtx.Choice | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, worker: str = "main",
        progress: Callable[[str], None] | None = None,
    ) -> Envkit:
        """Build from the environment; ``ENVKIT_SESSION`` names the session if set."""
        settings = Settings.from_env(environ)
        return cls(settings=settings, environ=environ,
                   session=settings.session or new_session_id(), worker=worker,
                   progress=progress)

    @property
    def engine(self) -> Engine:
        """The engine connection, made on first use; a failure is remembered and re-raised.

        :raises EngineUnavailableError: the same error on every call once it failed.
        """
        with self._lock:
            if self._engine_error is not None:
                raise self._engine_error
            if self._engine is None:
                try:
                    self._engine = connect(self._environ,
                                           host_override=self.settings.host_address)
                except EngineUnavailableError as exc:
                    self._engine_error = exc
                    raise
            return self._engine

    @property
    def images(self) -> ImageBuilder:
        """The image builder shared by every stack of this run."""
        engine = self.engine
        with self._lock:
            if self._builder is None:
                self._builder = ImageBuilder(
                    client=engine.client,
                    images_dir=self.settings.images_dir,
                    lock_dir=self.settings.lock_dir,
                    base_suite=self.settings.base_suite,
                    progress=self._progress,
                )
            return self._builder

    @property
    def mediamtx(self) -> mediamtx.Choice:
        """The MediaMTX image this run uses, decided once (may try a short pull)."""
        client = self.engine.client
        with self._lock:
            if self._mediamtx is None:
                self._mediamtx = mediamtx.choose(client, self.settings.mediamtx)
            return self._mediamtx

    def spec(self, ref: str | None = None) -> StackSpec:
        """The stack spec named *ref*, or the configured default."""
        ref = ref or self.settings.stack
        if ref == "default":
            return load_stack(ref, mediamtx_image=self.mediamtx.image)
        return load_stack(ref)

    def stack_id(self, name: str) -> str:
        """The identifier of this worker's stack instance called *name*."""
        return f"{self.session}-{self.worker}-{sanitize_ident(name, limit=NAME_MAX)}"

    def stack(
        self, spec: StackSpec, *, name: str | None = None, detached: bool = False
    ) -> Stack:
        """A new, not yet started :class:`Stack` of *spec* owned by this session and worker.

        :param name: the instance name; by default ``<spec>-<n>``, numbered so that one
            worker can run several instances of a spec at once.
        """
        if name is None:
            name = f"{spec.name}-{next(self._counter)}"
        return Stack(spec, engine=self.engine, images=self.images, session=self.session,
                     worker=self.worker, name=sanitize_ident(name, limit=NAME_MAX),
                     ready_timeout=self.settings.ready_timeout, detached=detached)

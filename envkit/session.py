"""One run's view of envkit: its ids, its engine connection, its kits and its image builder.

The pytest plugin, the CLI and plain scripts all start stacks through this object, so
they share one way to connect (and fail), one image cache and one labelling scheme.
Everything costly (the engine connection, loading kits, the dead-owner sweep) happens on
first use, not at construction: the plugin makes one for every pytest run.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from envkit.config import SESSION_MAX, Settings, new_session_id, sanitize_ident
from envkit.errors import EngineUnavailableError, EnvkitError
from envkit.kits import Registry

if TYPE_CHECKING:
    from envkit._engine import Engine
    from envkit._pool import Pool
    from envkit._remover import RemovalFailure, Remover
    from envkit.images import ImageBuilder
    from envkit.runtime import Stack
    from envkit.spec import StackSpec

T = TypeVar("T")
NAME_MAX = 80  # a spec name (63 chars) plus its instance number: never cut to one id


class Envkit:
    """Factory of stacks for one session and worker, connected to the engine lazily.

    :param settings: resolved configuration.
    :param environ: the environment to connect with (``DOCKER_HOST`` and TLS variables)
        and to interpolate stack files with.
    :param session: the run's id, shared by every worker of the run.
    :param worker: the xdist worker id, ``main`` outside xdist.
    :param progress: receives image-build progress lines; ``None`` builds quietly.
    :param sweep: before this session's first stack, remove stacks of dead owners (once
        per run across its processes; see :func:`envkit.reaper.sweep`).
    :param run: what the processes of one run share and no other run has (xdist's
        ``testrunuid``), electing the one that sweeps; ``None``: this process alone.
    :param pool: spares of each requested spec kept started ahead of need (:meth:`take`);
        ``0``, the default outside pytest, keeps none.
    :param max_spares: spares kept across all specs; the least recently requested
        spec's go first (``None``: no bound but *pool* per spec).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        environ: Mapping[str, str],
        session: str,
        worker: str = "main",
        progress: Callable[[str], None] | None = None,
        sweep: bool = False,
        run: str | None = None,
        pool: int = 0,
        max_spares: int | None = None,
    ) -> None:
        self.settings = settings
        self.session = sanitize_ident(session, limit=SESSION_MAX)
        self.worker = sanitize_ident(worker, limit=16)
        self.environ: Mapping[str, str] = dict(environ)
        self._progress = progress
        self._sweep = sweep
        self._run = run
        self._engine: Engine | None = None
        self._engine_error: EngineUnavailableError | None = None
        self._builder: ImageBuilder | None = None
        self._kits: Registry | None = None
        self._memo: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._counter = itertools.count(1)
        #: Every stack this object made, in order (the plugin's diagnostics read it).
        self.made: list[Stack] = []
        self._remover: Remover | None = None
        self._pool_size = pool
        self._max_spares = max_spares
        self._pool: Pool[StackSpec, Stack] | None = None
        #: Spares the pool is starting now, which closing it calls off.
        self._starting: set[Stack] = set()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, worker: str = "main", root: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Envkit:
        """Build from the environment; ``ENVKIT_SESSION`` names the session if set."""
        settings = Settings.from_env(environ, root=root)
        return cls(settings=settings, environ=environ,
                   session=settings.session or new_session_id(), worker=worker,
                   progress=progress)

    @property
    def engine(self) -> Engine:
        """The engine connection, made on first use; a failure is remembered and re-raised.

        :raises EngineUnavailableError: the same error on every call once it failed.
        """
        from envkit._engines import connect_bound

        with self._lock:
            if self._engine_error is not None:
                raise self._engine_error
            if self._engine is None:
                try:
                    # ENVKIT_DOCKER_HOSTS binds each worker to one engine; else DOCKER_HOST.
                    self._engine = connect_bound(self.settings, self.environ, self.worker)
                except EngineUnavailableError as exc:
                    self._engine_error = exc
                    raise
            return self._engine

    @property
    def connected(self) -> bool:
        """Whether the engine was reached (the plugin's leak check runs only then)."""
        return self._engine is not None

    @property
    def images(self) -> ImageBuilder:
        """The image builder shared by every stack of this run."""
        from envkit._engines import image_sources
        from envkit.images import ImageBuilder

        engine = self.engine
        with self._lock:
            if self._builder is None:
                s = self.settings
                key, peers = image_sources(s, self.environ, engine)  # other engines' images
                self._builder = ImageBuilder(
                    client=engine.client, root=s.root, project=s.project,
                    lock_dir=s.lock_dir, cache_dir=s.cache_dir, base_suite=s.base_suite,
                    base_packages=s.base_packages, progress=self._progress,
                    engine=key, peers=peers,
                )
            return self._builder

    @property
    def kits(self) -> Registry:
        """The run's kits, loaded on first use."""
        with self._lock:
            if self._kits is None:
                self._kits = Registry.load(self.settings)
            return self._kits

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """Compute *make* once per run and process; kits keep their choices here."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = make()
            value: T = self._memo[key]
            return value

    def spec(self, ref: str | None = None) -> StackSpec:
        """The stack spec named *ref* (a kit's stack or a YAML file), or the configured one.

        A YAML file is a compose file (see :func:`envkit.compose.is_compose_file`: its
        name, or keys only compose has) or else an envkit stack file.

        A file path resolves against the project root; a fresh spec (with fresh generated
        secrets) is made on every call, so each stack instance gets its own.

        :raises EnvkitError: when *ref* is neither, listing the kit stacks that exist.
        """
        from envkit.compose import is_compose_file, load_compose
        from envkit.stackfile import load_stack_file

        ref = ref or self.settings.stack
        if self.kits.has_stack(ref):
            return self.kits.stack(ref, self)
        path = Path(ref)
        if not path.is_absolute():
            path = self.settings.root / path
        if path.suffix in {".yml", ".yaml"} and path.is_file() and is_compose_file(path):
            return load_compose(path, environ=self.environ)
        if path.suffix in {".yml", ".yaml"} and path.is_file():
            return load_stack_file(path, environ=self.environ,
                                   services=lambda name, opts: self.kits.block(name, self, opts))
        raise EnvkitError(
            f"no stack {ref!r}: not a kit's stack ({', '.join(self.kits.stack_names) or 'none'})"
            f" and not a .yml/.yaml file under {self.settings.root}",
            fix="pass a stack name or the path of a stack file (--envkit-stack, ini "
            "envkit_stack, ENVKIT_STACK)",
        )

    def stack_id(self, name: str) -> str:
        """The identifier of this worker's stack instance called *name*."""
        return f"{self.session}-{self.worker}-{sanitize_ident(name, limit=NAME_MAX)}"

    def stack(
        self, spec: StackSpec, *, name: str | None = None, detached: bool = False,
        pooled: bool = False,
    ) -> Stack:
        """A new, not yet started :class:`Stack` of *spec* owned by this session and worker.

        :param name: the instance name; by default ``<spec>-<n>``, numbered so that one
            worker can run several instances of a spec at once.
        :param pooled: a spare for the warm pool: labelled so, and not in :attr:`made`
            until a test takes it (a spare is nobody's evidence before that).
        """
        from envkit.runtime import Stack

        self._sweep_once()
        if name is None:
            name = f"{spec.name}-{next(self._counter)}"
        elif self._remover is not None:
            # A named stack may reuse the id of one still going down in the background.
            self._remover.wait_for(self.stack_id(name))
        made = Stack(spec, engine=self.engine, images=self.images, session=self.session,
                     worker=self.worker, name=sanitize_ident(name, limit=NAME_MAX),
                     ready_timeout=self.settings.ready_timeout, detached=detached,
                     pooled=pooled, subnets=self.settings.subnets)
        if not pooled:
            with self._lock:
                self.made.append(made)
        return made

    def take(self, spec: StackSpec, *, key: Hashable | None = None,
             source: Callable[[], StackSpec] | None = None) -> Stack | None:
        """A started spare equal to *spec* from the warm pool, or ``None``; then refill.

        Returns ``None`` when the pool is off, has no spare of *spec* yet (the first
        request starts one in the background for the next) or does not pool it (see
        :mod:`envkit._pool`); the caller then starts a stack of its own.

        :param key: what was asked for (a stack's name or path); *spec* by default.
        :param source: resolves *key* again for the next spare; by default *spec* itself.
        """
        pool = self._warm_pool()
        if pool is None:
            return None
        taken = pool.take(repr(spec) if key is None else key, spec,
                          source or (lambda: spec))
        if taken is not None:
            with self._lock:
                self.made.append(taken)
        return taken

    def spares_ready(self, key: Hashable) -> int:
        """How many started spares of *key* (a stack's name, as asked for) wait in the pool."""
        with self._lock:
            pool = self._pool
        return 0 if pool is None else pool.ready(key)

    def prepare(self, ref: str) -> None:
        """Start spares of the stack *ref* names in the background, before it is asked for."""
        pool = self._warm_pool()
        if pool is None:
            return
        with contextlib.suppress(EnvkitError):  # a broken kit: the test meets it itself
            self.kits.import_modules()  # what their factories import, as below
        _import_for_spares()
        pool.prepare(ref, lambda: self.spec(ref))

    def close_pool(self, timeout: float | None = None) -> list[str]:
        """Stop the warm pool and hand its spares to the remover; what could not be.

        A spare still starting is called off (it removes what it made itself). Call it
        before :meth:`finish_removals`, which then waits for the spares too; it may be
        called again (``timeout=0`` on Ctrl-C to begin at once, then to wait).
        """
        with self._lock:
            pool, self._pool_size = self._pool, 0
        return [] if pool is None else pool.close(timeout)

    def _warm_pool(self) -> Pool[StackSpec, Stack] | None:
        from envkit._pool import Pool

        with self._lock:
            if self._pool is None and self._pool_size > 0:
                self._pool = Pool(size=self._pool_size, start=self._start_spare,
                                  discard=self.remove_later, eligible=unpoolable,
                                  stop=self._stop_spares, name=f"envkit-pool-{self.worker}",
                                  max_spares=self._max_spares)
            return self._pool

    def _start_spare(self, spec: StackSpec) -> Stack:
        """Start a spare on the pool's thread, where closing the pool can call it off."""
        from envkit.readiness import Cancelled

        stack = self.stack(spec, pooled=True)
        with self._lock:  # close_pool() zeroes the size, then _stop_spares() cancels
            if self._pool_size <= 0:
                raise Cancelled("the warm pool is closed")
            self._starting.add(stack)
        try:
            return stack.up()
        finally:
            with self._lock:
                self._starting.discard(stack)

    def _stop_spares(self) -> None:
        """Call off every spare start in progress (the pool is closing)."""
        with self._lock:
            starting = list(self._starting)
        for stack in starting:
            stack.cancel()

    def remove_later(self, stack: Stack, *, then: Callable[[], object] | None = None) -> None:
        """Take *stack* down in the background and return at once.

        One thread per process removes handed-over stacks in order, while the caller goes
        on (the next test starts its stack); :meth:`finish_removals` waits for them. If the
        process dies first, its watchdog removes what is left, by label.

        :param then: called after the removal, also when it failed (stop log followers).
        """
        from envkit._remover import Remover

        def remove() -> None:
            try:
                stack.down()
            finally:
                if then is not None:
                    then()

        with self._lock:
            if self._remover is None:
                self._remover = Remover(name=f"envkit-remover-{self.worker}")
            remover = self._remover
        remover.submit(stack.id, remove)

    def finish_removals(self, timeout: float | None = None) -> list[RemovalFailure]:
        """Wait for every stack handed to :meth:`remove_later`; the failures, if any.

        :param timeout: seconds to wait at most; a removal still running then is returned
            as a failure (the leak check and the watchdog see to its stack).
        """
        with self._lock:
            remover = self._remover
        return [] if remover is None else remover.wait(timeout)

    def _sweep_once(self) -> None:
        """Remove dead owners' stacks before the run's first stack, in one process.

        Every worker of a run may get here first; an exclusively created marker file per
        run elects one of them, so the engine is swept once, not once per worker. Keyed by
        the run, not the session: a CI job that reuses its ``ENVKIT_SESSION`` for several
        runs sweeps before each.
        """
        if not self._sweep:
            return
        self._sweep = False
        from envkit import reaper
        from envkit._engines import sweep_scope

        if self._run is not None and not _elected(
                self.settings.cache_dir / "sweeps",
                sweep_scope(self.settings, self._run, self.engine)):  # one per engine
            return
        reaper.sweep(self.engine, older_than=reaper.older_than_from_env(self.environ))


def _import_for_spares() -> None:
    """Import, in the caller's thread, the packages the pool's thread will import.

    The caller of :meth:`Envkit.prepare` goes on importing (pytest collects, the first
    fixture connects) while the pool's thread starts spares, and two threads importing
    one package can fail with importlib's ``_DeadlockError`` (CPython gh-83065): one
    imports a submodule by name, taking its lock before the package's, while the other
    runs the package's ``__init__``, which wants that submodule. docker-py has that shape
    (``envkit.runtime`` imports ``docker.models.containers``, ``envkit._engine`` imports
    ``docker``). An imported package is only looked up, so the core's start is left
    nothing to race for but plain modules (requests' ``netrc``); a kit names what its
    factories import in :attr:`~envkit.kits.Kit.imports`.

    Not a pool started after collection: the start would no longer overlap collection,
    the point of ``envkit_pool_stacks``, and fixtures import lazily too. Not the spec
    resolved here: a kit's stack may consult the engine (the camera kit's pulls).
    """
    for name in ("_containers", "_engine", "_engines", "_remover", "compose", "images",
                 "readiness", "reaper", "runtime", "stackfile"):
        importlib.import_module(f"envkit.{name}")


def unpoolable(spec: StackSpec) -> str | None:
    """Why *spec* gets no spares, or ``None``: a spare must not touch host state.

    A spare starts while an earlier test still runs. Devices and host directories are
    shared with that test (and a test may write a directory's files just before it asks
    for its stack), so such a stack is started when asked for, as without the pool.
    """
    for svc in spec.services:
        if svc.devices:
            return f"service {svc.name!r} maps host devices"
        if any(not m.is_volume for m in svc.mounts):
            return f"service {svc.name!r} mounts a host directory"
    return None


#: Markers of runs older than this are debris: no run lasts a day between its workers.
_MARKER_TTL = 86400.0


def _elected(folder: Path, run: str) -> bool:
    """Whether this process is the first of run *run* to get here (marker file created)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in folder.iterdir():
            if now - old.stat().st_mtime > _MARKER_TTL:
                old.unlink(missing_ok=True)
        os.close(os.open(folder / sanitize_ident(run, limit=64),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    except OSError:
        pass  # nowhere to coordinate: sweeping twice is only slower
    return True

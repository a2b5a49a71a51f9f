"""The path manager: which paths exist, and applying configuration changes to them.

Why: like upstream's ``pathManager``, statically named paths exist from start (so they
are listed by ``/v3/paths/list`` and run ``runOnInit``), while paths matched by a regex
or ``all_others`` are created by the first publisher/reader and removed when unused. A
configuration change (config API) closes and recreates the paths whose configuration
changed, and leaves the others alone.
"""

from __future__ import annotations

from typing import Any

from . import log
from .config import ALL_ALIASES, Conf, ConfError, check_path_name
from .path import Endpoint, Path, PathError
from .sdp import SessionDescription


def _same_values(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two merged path configurations differ in nothing but their name."""
    return {k: v for k, v in a.items() if k != "name"} == \
        {k: v for k, v in b.items() if k != "name"}


class PathManager:
    """Owns every :class:`Path` and routes publishers and readers to them."""

    def __init__(self, conf: Conf) -> None:
        self.conf = conf
        self.paths: dict[str, Path] = {}

    def start(self) -> None:
        """Create the statically named paths."""
        for conf_name in sorted(self.conf.paths):
            if not conf_name.startswith("~") and conf_name not in ALL_ALIASES:
                self._create(conf_name, conf_name, [conf_name])

    def close(self) -> None:
        """Destroy every path (shutdown)."""
        for path in list(self.paths.values()):
            path.close()
        self.paths.clear()

    def _create(self, name: str, conf_name: str, matches: list[str]) -> Path:
        path = Path(name=name, conf_name=conf_name, conf=self.conf.path_conf(conf_name),
                    matches=matches, rtsp_port=self.conf.rtsp_port, on_idle=self._remove_idle)
        self.paths[name] = path
        log.debug(f"[path {name}] created")
        path.start()
        return path

    def _remove_idle(self, path: Path) -> None:
        if self.paths.get(path.name) is path:
            del self.paths[path.name]
            path.close()

    def get_or_create(self, name: str) -> Path:
        """Path for a publisher or reader; refused if no configuration matches."""
        existing = self.paths.get(name)
        if existing is not None:
            return existing
        try:
            if name.startswith("~"):
                raise ConfError("invalid path name")
            check_path_name(name)
        except ConfError as exc:
            raise PathError(f"invalid path name: {exc} ({name})") from exc
        found = self.conf.find_path_conf(name)
        if found is None:
            raise PathError(f"path '{name}' is not configured")
        conf_name, matches = found
        return self._create(name, conf_name, matches)

    # ------------------------------------------------------------------ RTSP entry points
    async def describe(self, name: str, query: str = "") -> SessionDescription:
        """Description of the stream on ``name`` (may start ``runOnDemand`` and wait)."""
        path = self.get_or_create(name)
        try:
            return await path.wait_available(query)
        finally:
            if path.should_close():
                self._remove_idle(path)

    async def add_reader(self, name: str, reader: Endpoint, query: str = "") -> Path:
        """Attach a reader to ``name``, waiting for an on-demand publisher if needed."""
        path = self.get_or_create(name)
        try:
            await path.wait_available(query)
            path.add_reader(reader)
        finally:
            if path.should_close():
                self._remove_idle(path)
        return path

    async def ready_path(self, name: str) -> Path:
        """The path ``name`` once its stream is available (an internal reader, e.g. HLS)."""
        path = self.get_or_create(name)
        try:
            await path.wait_available()
        finally:
            if path.should_close():
                self._remove_idle(path)
        return path

    def add_publisher(self, name: str, publisher: Endpoint) -> Path:
        """Reserve ``name`` for a publisher."""
        path = self.get_or_create(name)
        try:
            path.add_publisher(publisher)
        finally:
            if path.should_close():
                self._remove_idle(path)
        return path

    # ------------------------------------------------------------------ configuration
    def reload(self, new_conf: Conf) -> None:
        """Apply a new configuration, recreating only the paths whose conf changed."""
        self.conf = new_conf
        for name, path in list(self.paths.items()):
            found = new_conf.find_path_conf(name)
            if found is not None:
                conf_name, matches = found
                new_values = new_conf.path_conf(conf_name)
                if _same_values(new_values, path.conf):
                    # Like upstream's reloadConf: an equivalent configuration (even under
                    # another name, e.g. all_others after a delete) keeps the path alive.
                    path.conf_name, path.conf, path.matches = conf_name, new_values, matches
                    continue
            del self.paths[name]
            path.close()
        self.start_missing()

    def start_missing(self) -> None:
        """Create static paths that do not exist yet (after a reload)."""
        for conf_name in sorted(self.conf.paths):
            if conf_name.startswith("~") or conf_name in ALL_ALIASES:
                continue
            if conf_name not in self.paths:
                self._create(conf_name, conf_name, [conf_name])

    # ------------------------------------------------------------------ API
    def api_list(self) -> list[dict[str, Any]]:
        """Every path, sorted by name (upstream sorts too)."""
        return [self.paths[n].api_item() for n in sorted(self.paths)]

    def api_get(self, name: str) -> dict[str, Any] | None:
        """One path, or ``None`` if it does not exist right now."""
        path = self.paths.get(name)
        return path.api_item() if path is not None else None

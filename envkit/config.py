"""Settings read from an injected environment mapping.

The environment is passed in rather than read at import, so tests build settings from a
plain dict and nothing changes behind a caller's back (docker-py's ``kwargs_from_env``
takes the same approach; testcontainers' import-time class defaults do not).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

from envkit.errors import EnvkitError

_IDENT = re.compile(r"[^a-z0-9_.-]+")

DEFAULT_READY_TIMEOUT = 60.0
SESSION_ENV = "ENVKIT_SESSION"
#: Room for a CI id such as ``gh-<run id>-<job index>``, short enough for resource names.
SESSION_MAX = 32


def new_session_id() -> str:
    """A short random id for a run that was given none."""
    return uuid.uuid4().hex[:12]


def sanitize_ident(raw: str, *, limit: int = 32) -> str:
    """Fold *raw* into the characters Docker accepts in resource names."""
    folded = _IDENT.sub("-", raw.lower()).strip("-.")
    return folded[:limit] or "x"


def session_from_env(environ: Mapping[str, str]) -> str | None:
    """``ENVKIT_SESSION``, checked; ``None`` when unset.

    The value is the ``envkit.session`` label that ``envkit down --session`` and the leak
    check select by, so it is used whole or refused, never folded or cut to fit.

    :raises EnvkitError: when it is longer than :data:`SESSION_MAX` or holds characters
        Docker names cannot (anything but ``a-z 0-9 _ . -``), naming the fix.
    """
    raw = environ.get(SESSION_ENV)
    if not raw:
        return None
    folded = sanitize_ident(raw, limit=SESSION_MAX)
    if len(raw) <= SESSION_MAX and folded == raw:
        return raw
    raise _invalid_session(raw, folded)


def _invalid_session(raw: str, folded: str) -> EnvkitError:
    problem = (f"is {len(raw)} characters long (at most {SESSION_MAX})"
               if len(raw) > SESSION_MAX else "holds characters a session id cannot")
    return EnvkitError(
        f"environment variable {SESSION_ENV}={raw!r} {problem}",
        fix=f"set {SESSION_ENV} to at most {SESSION_MAX} of a-z 0-9 _ . - "
        f"(for instance {SESSION_ENV}={folded}), or unset it",
    )


def project_name(root: Path) -> str:
    """The project a root directory holds, as image tags carry it: its folded name."""
    return sanitize_ident(root.name or "root", limit=40)


def _words(raw: str | None) -> tuple[str, ...]:
    return tuple(word for word in (raw or "").replace(",", " ").split() if word)


DOCKER_HOSTS_ENV = "ENVKIT_DOCKER_HOSTS"
#: Engine URL schemes a worker can be bound to (docker-py's own, less Windows pipes).
ENGINE_SCHEMES = ("unix", "tcp", "ssh")
_HOSTS_FIX = (f"set {DOCKER_HOSTS_ENV} to comma-separated engine URLs, each optionally "
              "weighted with *N, e.g. unix:///var/run/docker.sock*2,tcp://ci-2:2376 "
              "(or unset it to use DOCKER_HOST alone)")


@dataclass(frozen=True, kw_only=True)
class EngineHost:
    """One engine of ``ENVKIT_DOCKER_HOSTS``: its URL and its share of the workers.

    :param url: the engine URL, as ``DOCKER_HOST`` would hold it.
    :param weight: how many workers it gets per round, relative to the others.
    """

    url: str
    weight: int = 1

    def __str__(self) -> str:
        return self.url if self.weight == 1 else f"{self.url}*{self.weight}"


def parse_docker_hosts(raw: str | None) -> tuple[EngineHost, ...]:
    """Parse ``ENVKIT_DOCKER_HOSTS``: ``URL[*WEIGHT]`` entries separated by commas.

    Empty entries (a trailing comma) are ignored; an empty or unset value gives ``()``,
    which means one engine, the one ``DOCKER_HOST`` names, as without the variable.

    :raises EnvkitError: for a scheme other than unix, tcp or ssh, a URL without a path
        or host, a weight that is not a positive integer, or a URL listed twice.
    """
    hosts: list[EngineHost] = []
    for entry in (part.strip() for part in (raw or "").split(",")):
        if not entry:
            continue
        url, star, weight_text = entry.rpartition("*") if "*" in entry else (entry, "", "")
        url = url.strip()
        weight = _weight(entry, weight_text.strip()) if star else 1
        _check_url(entry, url)
        if any(h.url == url for h in hosts):
            raise EnvkitError(f"{DOCKER_HOSTS_ENV}: engine {url!r} is listed twice",
                              fix=f"list it once, with a weight such as {url}*2")
        hosts.append(EngineHost(url=url, weight=weight))
    return tuple(hosts)


def _weight(entry: str, text: str) -> int:
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise EnvkitError(f"{DOCKER_HOSTS_ENV}: entry {entry!r} has weight {text!r}, not a "
                      "positive whole number", fix=_HOSTS_FIX)


def _check_url(entry: str, url: str) -> None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ENGINE_SCHEMES:
        raise EnvkitError(f"{DOCKER_HOSTS_ENV}: entry {entry!r} is not a unix://, tcp:// "
                          "or ssh:// engine URL", fix=_HOSTS_FIX)
    if not rest.strip("/") or any(c.isspace() for c in rest):
        raise EnvkitError(f"{DOCKER_HOSTS_ENV}: entry {entry!r} names no socket path or host",
                          fix=_HOSTS_FIX)


SUBNETS_ENV = "ENVKIT_SUBNETS"
#: Where envkit carves a stack network's subnet when the engine's default pools are used
#: up: Docker's own default ranges (172.16/12 whole: 172.16/16 is not in Docker's pools).
DEFAULT_SUBNETS = (IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"))
_SUBNETS_FIX = (f"set {SUBNETS_ENV} to comma-separated IPv4 networks such as "
                "172.16.0.0/12,192.168.0.0/16 (or unset it for those)")


def parse_subnets(raw: str | None) -> tuple[IPv4Network, ...]:
    """Parse ``ENVKIT_SUBNETS``: IPv4 networks separated by commas; unset means the defaults.

    :raises EnvkitError: for an entry that is not an IPv4 network, one with host bits set
        (naming the network meant), or a value with no entry at all.
    """
    if raw is None or not raw.strip():
        return DEFAULT_SUBNETS
    ranges = tuple(_subnet(raw, entry) for entry in (p.strip() for p in raw.split(",")) if entry)
    if not ranges:
        raise EnvkitError(f"environment variable {SUBNETS_ENV}={raw!r} names no network",
                          fix=_SUBNETS_FIX)
    return ranges


def _subnet(raw: str, entry: str) -> IPv4Network:
    try:
        return IPv4Network(entry)
    except ValueError as exc:
        problem = str(exc)
    try:
        meant = f"; the network is {IPv4Network(entry, strict=False)}"
    except ValueError:
        meant = ""
    raise EnvkitError(f"environment variable {SUBNETS_ENV}={raw!r}: entry {entry!r} is not an "
                      f"IPv4 network ({problem}{meant})", fix=_SUBNETS_FIX)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """Envkit's cache directory: ``$XDG_CACHE_HOME/envkit``, else ``~/.cache/envkit``."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/tmp")) / ".cache")
    return Path(base) / "envkit"


def _parse_seconds(environ: Mapping[str, str], key: str, default: float) -> float:
    raw = environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):  # NaN and inf too: a deadline must end
        raise EnvkitError(
            f"environment variable {key}={raw!r} is not a positive, finite number of seconds",
            fix=f"set {key} to a number such as 60, or unset it",
        )
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What envkit needs to know about its surroundings, resolved once.

    :param docker_host: the engine URL (``DOCKER_HOST``); ``None`` means the local socket.
    :param docker_hosts: the engines workers are spread over (``ENVKIT_DOCKER_HOSTS``);
        empty means one engine, ``docker_host``.
    :param session: a run-wide id shared by all workers (``ENVKIT_SESSION``), if set.
    :param stack: the default stack name or spec path (``ENVKIT_STACK``).
    :param root: the project root: relative build contexts and ``images/<name>`` resolve
        against it (pytest's rootdir, the CLI's working directory), never ``PWD``.
    :param project: the namespace of the project's image tags (``ENVKIT_PROJECT``, else
        the root directory's name), so two projects' images never collide.
    :param base_packages: Debian packages the project adds to its base image
        (``ENVKIT_BASE_PACKAGES``, ini ``envkit_base_packages``).
    :param kits: ``module:attribute`` references of kits to load besides those installed
        under the ``envkit.kits`` entry point (``ENVKIT_KITS``, ini ``envkit_kits``).
    :param cache_dir: where locks and state files go.
    :param ready_timeout: default readiness deadline per service, in seconds.
    :param host_address: override of the address published ports are reached at.
    :param base_suite: Debian suite of the bootstrapped base image.
    :param subnets: where a stack network's subnet is picked when the engine's default
        address pools are used up (``ENVKIT_SUBNETS``).
    :param options: settings that kits define for themselves (the camera kit's
        ``mediamtx``), set by their pytest options; a kit reads them with its own defaults.
    """

    docker_host: str | None = None
    docker_hosts: tuple[EngineHost, ...] = ()
    session: str | None = None
    stack: str = "default"
    root: Path = field(default_factory=Path.cwd)
    project: str = ""
    base_packages: tuple[str, ...] = ()
    kits: tuple[str, ...] = ()
    cache_dir: Path = field(default_factory=lambda: default_cache_dir(os.environ))
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    host_address: str | None = None
    base_suite: str = "bookworm"
    subnets: tuple[IPv4Network, ...] = DEFAULT_SUBNETS
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.project:
            object.__setattr__(self, "project", project_name(self.root))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, root: Path | None = None) -> Settings:
        """Build settings from *environ* (pass ``os.environ`` at the edge).

        :param root: the project root that relative build contexts resolve against
            (pytest's rootdir; the working directory for the CLI).
        :raises EnvkitError: when a variable is set to something unusable, naming the fix.
        """
        where = root if root is not None else Path.cwd()
        return cls(
            docker_host=environ.get("DOCKER_HOST") or None,
            docker_hosts=parse_docker_hosts(environ.get(DOCKER_HOSTS_ENV)),
            session=session_from_env(environ),
            stack=environ.get("ENVKIT_STACK") or "default",
            root=where,
            project=sanitize_ident(environ.get("ENVKIT_PROJECT") or "", limit=40)
            if environ.get("ENVKIT_PROJECT") else project_name(where),
            base_packages=_words(environ.get("ENVKIT_BASE_PACKAGES")),
            kits=_words(environ.get("ENVKIT_KITS")),
            cache_dir=default_cache_dir(environ),
            ready_timeout=_parse_seconds(environ, "ENVKIT_READY_TIMEOUT", DEFAULT_READY_TIMEOUT),
            host_address=environ.get("ENVKIT_HOST_ADDRESS") or None,
            base_suite=environ.get("ENVKIT_BASE_SUITE") or "bookworm",
            subnets=parse_subnets(environ.get(SUBNETS_ENV)),
        )

    @property
    def lock_dir(self) -> Path:
        """Directory of the file locks that serialize image builds across workers."""
        return self.cache_dir / "locks"

"""Several engines: which one a worker uses, images carried between them, views over all.

``ENVKIT_DOCKER_HOSTS`` lists engines (see :func:`envkit.config.parse_docker_hosts`).
Each process is bound to one of them for its whole life, chosen from its xdist worker
id and the weights alone, so the binding needs no coordination and a rerun binds alike:
``gw<N>`` takes slot N (modulo the round) of a smooth weighted round robin (nginx's),
which interleaves engines (``a*2,b`` gives a, b, a) instead of filling the first one
before the next gets a worker. Any other process (the controller, the CLI) takes slot 0.

Without the variable there is one engine, the one ``DOCKER_HOST`` names, exactly as
before: same connection, same lock files, same sweep election.

Everything per engine follows from the binding: a process's stacks, its watchdog (keyed
by owner and engine URL), its sweep (one elected process per run and engine), its image
locks (named after engine and tag). What spans engines is listed here: the peers an image
is copied from (``docker save`` on one, ``docker load`` on the other, streamed, so a base
is bootstrapped once, not once per engine) and the views of ``envkit ps``/``down`` and the
run's leak check.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envkit import _engine
from envkit._engine import Engine, connect
from envkit.config import EngineHost, Settings, sanitize_ident
from envkit.errors import EngineError, EngineUnavailableError
from envkit.inventory import list_resources

DEFAULT_URL = "unix:///var/run/docker.sock"
_GW = re.compile(r"^gw(\d+)$")
#: Bytes per chunk of an image streamed from one engine to another.
TRANSFER_CHUNK = 1 << 21


def schedule(hosts: Sequence[EngineHost]) -> list[EngineHost]:
    """One round of smooth weighted round robin: each host appears *weight* times, spread.

    Every step adds each host's weight to its credit and picks the host with the most
    (the first listed on a tie), which then pays the round's total weight.
    """
    total = sum(h.weight for h in hosts)
    credit = [0] * len(hosts)
    order: list[EngineHost] = []
    for _ in range(total):
        credit = [c + h.weight for c, h in zip(credit, hosts, strict=True)]
        best = max(range(len(hosts)), key=lambda i: (credit[i], -i))
        credit[best] -= total
        order.append(hosts[best])
    return order


def bind(hosts: Sequence[EngineHost], worker: str) -> EngineHost:
    """The engine of process *worker* (``gw3``, ``main``, ``cli``...); deterministic.

    :raises ValueError: when *hosts* is empty (there is nothing to bind to).
    """
    if not hosts:
        raise ValueError("no engines to bind to")
    match = _GW.match(worker)
    slots = schedule(hosts)
    return slots[int(match.group(1)) % len(slots) if match else 0]


def environ_for(environ: Mapping[str, str], url: str) -> dict[str, str]:
    """*environ* with ``DOCKER_HOST`` set to *url* (TLS settings, if any, are kept)."""
    return {**environ, "DOCKER_HOST": url}


def urls(settings: Settings) -> list[str]:
    """Every configured engine's URL; one (``DOCKER_HOST`` or the local socket) by default."""
    if settings.docker_hosts:
        return [h.url for h in settings.docker_hosts]
    return [settings.docker_host or DEFAULT_URL]


def several(settings: Settings) -> bool:
    """Whether stacks are spread over more than one engine."""
    return len(settings.docker_hosts) > 1


def key(url: str) -> str:
    """A short file-name-safe id of the engine at *url* (lock files, sweep markers)."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{sanitize_ident(url.split('://', 1)[-1], limit=24)}-{digest}"


def connect_bound(settings: Settings, environ: Mapping[str, str], worker: str) -> Engine:
    """Connect to the engine *worker* is bound to (``DOCKER_HOST`` without the list).

    :raises EngineUnavailableError: when it does not answer.
    """
    if not settings.docker_hosts:
        return connect(environ, host_override=settings.host_address)
    host = bind(settings.docker_hosts, worker)
    return connect(environ_for(environ, host.url), host_override=settings.host_address)


def connect_url(settings: Settings, environ: Mapping[str, str], url: str) -> Engine:
    """Connect to the configured engine at *url*.

    :raises EngineUnavailableError: when it does not answer.
    """
    return connect(environ_for(environ, url), host_override=settings.host_address)


@dataclass(frozen=True, kw_only=True)
class Reached:
    """One configured engine as a view over all of them found it.

    :param url: its URL; :param engine: the connection, None when unreachable;
    :param error: why it could not be reached.
    """

    url: str
    engine: Engine | None = None
    error: EngineUnavailableError | None = None


def each(
    settings: Settings, environ: Mapping[str, str], *, first: Engine | None = None
) -> Iterator[Reached]:
    """Every configured engine, connected in turn; an unreachable one is reported, not raised.

    :param first: an engine already connected (the caller's bound one), reused for its URL.
    """
    for url in urls(settings):
        if first is not None and first.docker_host == url:
            yield Reached(url=url, engine=first)
            continue
        try:
            yield Reached(url=url, engine=connect_url(settings, environ, url))
        except EngineUnavailableError as exc:
            yield Reached(url=url, error=exc)


class Peers:
    """The engines besides one process's own, connected on first need; images' sources.

    An unreachable peer is skipped (remembered), never an error: it only means that an
    image missing here is built here rather than copied.
    """

    def __init__(self, settings: Settings, environ: Mapping[str, str], own: str) -> None:
        self._settings = settings
        self._environ = dict(environ)
        self._urls = [u for u in urls(settings) if u != own]
        self._apis: dict[str, Any] = {}
        self._dead: set[str] = set()

    def apis(self) -> list[tuple[str, Any]]:
        """``(url, low-level API client)`` of every peer that answers."""
        found = []
        for url in self._urls:
            if url not in self._apis and url not in self._dead:
                try:
                    self._apis[url] = connect_url(self._settings, self._environ, url).client.api
                except EngineUnavailableError:
                    self._dead.add(url)
            if url in self._apis:
                found.append((url, self._apis[url]))
        return found


def transfer(source: Any, target: Any, tag: str, *, say: Callable[[str], None]) -> None:
    """Stream image *tag* from engine *source* to engine *target* (``docker save | load``).

    The image keeps its ID and labels, so content-hash tags computed on either engine
    agree. Nothing is written to disk on this host.

    :param source: the low-level API client of an engine that has *tag*.
    :param target: the low-level API client of the engine that needs it.
    :raises EngineError: when either engine breaks off, or the load reports an error.
    """
    say(f"copying {tag} from another engine (save | load)")

    def copy() -> None:
        chunks = source.get_image(tag, chunk_size=TRANSFER_CHUNK)
        for line in target.load_image(chunks, quiet=True) or ():
            if isinstance(line, dict) and line.get("error"):
                raise EngineError(action=f"load {tag}", cause=str(line["error"]),
                                  fix="check the target engine's disk space and log")

    # One attempt: a half-sent image stream cannot be resumed, and a retry of a 5xx here
    # would resend the whole image; the caller falls back to building.
    _engine.call(f"copy {tag} between engines", copy, attempts=1)


def image_sources(
    settings: Settings, environ: Mapping[str, str], engine: Engine
) -> tuple[str, Peers | None]:
    """The lock key of *engine* and its peers, for its image builder; ``("", None)`` alone."""
    if not several(settings):
        return "", None
    return key(engine.docker_host), Peers(settings, environ, engine.docker_host)


def sweep_scope(settings: Settings, run: str, engine: Engine) -> str:
    """What one sweep election covers: the run, and with several engines the engine too."""
    if not several(settings):
        return run
    return f"{run}-{hashlib.sha256(engine.docker_host.encode()).hexdigest()[:8]}"


def leftovers(
    settings: Settings, environ: Mapping[str, str], session: str, first: Engine
) -> list[str]:
    """Every resource of *session* on every engine (the run's leak check), as ``<kind> <name>``.

    With several engines each carries ``(on <url>)``. An engine that does not answer is
    passed over: the workers bound to it already failed saying so.

    :param first: the caller's own engine, already connected.
    :raises EngineError: when an engine keeps refusing a listing.
    """
    if not several(settings):
        return list_resources(first.client, session=session)
    return [f"{found} (on {r.url})" for r in each(settings, environ, first=first)
            if r.engine is not None
            for found in list_resources(r.engine.client, session=session)]

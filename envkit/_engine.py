"""The connection to the Docker engine: client, host address, and transient-error retries.

Kept apart so that the rest of envkit reasons about one small object, and so that an
unreachable engine is detected once, with one error, before any test runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlparse

import docker
import docker.errors
import requests.exceptions
from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from tenacity import (
    retry as tenacity_retry,
)

from envkit.errors import EngineError, EngineUnavailableError

T = TypeVar("T")

LOCAL_PUBLISH_IP = "127.0.0.1"
REMOTE_PUBLISH_IP = "0.0.0.0"


def host_address(docker_host: str | None, override: str | None = None) -> str:
    """Where published ports are reached from this process.

    testcontainers guesses from ``/.dockerenv`` and can answer with the bridge gateway;
    envkit derives it from the engine URL alone: the local socket means loopback, a
    ``tcp://`` or ``ssh://`` engine means that engine's host.
    """
    if override:
        return override
    if not docker_host:
        return LOCAL_PUBLISH_IP
    parsed = urlparse(docker_host)
    if parsed.scheme in {"tcp", "ssh", "http", "https"} and parsed.hostname:
        return parsed.hostname
    return LOCAL_PUBLISH_IP


def is_remote(docker_host: str | None) -> bool:
    """Whether the engine runs on another machine (so ports must publish on all interfaces)."""
    if not docker_host:
        return False
    parsed = urlparse(docker_host)
    return parsed.scheme in {"tcp", "ssh", "http", "https"} and parsed.hostname not in {
        "localhost", "127.0.0.1", "::1",
    }


@dataclass(frozen=True, kw_only=True)
class Engine:
    """A live connection to one Docker engine.

    :param client: the docker SDK client, with the API version already negotiated.
    :param docker_host: the engine URL as configured (``unix://...`` for the default).
    :param host_address: the address this process reaches published ports at.
    :param remote: whether the engine is on another host.
    :param environ: the ``DOCKER_*`` settings it was reached with (for the watchdog).
    """

    client: docker.DockerClient
    docker_host: str
    host_address: str
    remote: bool
    environ: Mapping[str, str] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        """The negotiated API version, handed to other clients to skip renegotiation."""
        return str(self.client.api.api_version)

    @property
    def publish_ip(self) -> str:
        """The host interface ports are bound to: loopback unless the engine is remote."""
        return REMOTE_PUBLISH_IP if self.remote else LOCAL_PUBLISH_IP

    def server_version(self) -> str:
        """The engine's own version string, for report headers and ``doctor``."""
        return str(self.client.version().get("Version", "unknown"))


def connect(
    environ: Mapping[str, str], *, host_override: str | None = None, timeout: int = 30
) -> Engine:
    """Connect to the engine named by *environ* and check that it answers.

    :raises EngineUnavailableError: when it does not, with the fix.
    """
    docker_host = environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    # A reset or a 5xx from an engine that is there gets two more tries: the error is
    # remembered for the whole session. A refusal (no engine) fails at once.
    ssh = urlparse(docker_host).scheme == "ssh"
    # Not over ssh: there a broken pipe means the ssh client gave up (login refused,
    # unknown host), and each retry would print its message again.
    opening = tenacity_retry(retry=retry_if_exception(_answered_badly),
                             stop=stop_after_attempt(1 if ssh else 3),
                             wait=wait_exponential(multiplier=0.1), reraise=True)
    if ssh and shutil.which("ssh") is None:
        raise EngineUnavailableError(docker_host=docker_host, cause="no `ssh` client on PATH",
                                     fix="install the OpenSSH client (apt-get install "
                                     "openssh-client), which ssh:// engines are reached through")
    try:
        client = opening(_open)(environ, timeout, ssh=ssh)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailableError(docker_host=docker_host, cause=_short(exc),
                                     fix=ssh_fix(docker_host, exc) if ssh else "") from None
    return Engine(
        client=client,
        docker_host=docker_host,
        host_address=host_address(environ.get("DOCKER_HOST"), host_override),
        remote=is_remote(environ.get("DOCKER_HOST")),
        environ={k: v for k, v in environ.items() if k.startswith("DOCKER_")},
    )


def ssh_fix(docker_host: str, exc: BaseException) -> str:
    """What makes the ssh:// engine at *docker_host* answer, given why it did not (*exc*)."""
    if "paramiko" in str(exc):
        # docker-py imports paramiko for every ssh:// URL, even the ssh-binary route.
        return "install envkit's ssh extra: pip install 'envkit[ssh]' (docker[ssh])"
    return (f"`docker -H {docker_host} info` must work from this shell without a prompt "
            "(ssh's own message is printed above): a key in ssh-agent or ~/.ssh/config, the "
            "host in known_hosts, and a remote user allowed to use Docker there (`docker "
            "system dial-stdio` runs as that user; a daemon on another socket needs "
            "DOCKER_HOST set remotely, e.g. sshd's SetEnv)")


def _open(environ: Mapping[str, str], timeout: int, *, ssh: bool = False) -> docker.DockerClient:
    # ssh:// goes through the ssh binary, as the docker CLI does: ~/.ssh/config, the agent,
    # known_hosts and ProxyJump all apply, and `docker -H ssh://... info` is a faithful check.
    client = docker.from_env(environment=dict(environ), timeout=timeout, version="auto",
                             use_ssh_client=ssh)
    try:
        client.ping()
    except BaseException:
        client.close()
        raise
    return client


def _answered_badly(exc: BaseException) -> bool:
    # docker-py wraps a failed version negotiation in a DockerException "from" the cause.
    cause = exc if is_transient(exc) else exc.__cause__
    return cause is not None and is_transient(cause) and not refused(cause)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether retrying *exc* may help: lost connections and the daemon's 5xx hiccups."""
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    if isinstance(exc, docker.errors.APIError) and exc.status_code is not None:
        return exc.status_code >= 500 and "no such image" not in str(exc).lower()
    return False


def _is_transient_or_missing_network(exc: BaseException) -> bool:
    # A network created a moment ago is sometimes "not found" by the next call.
    if isinstance(exc, docker.errors.NotFound) and "network" in str(exc).lower():
        return True
    return is_transient(exc)


#: Seconds a request keeps trying while the engine refuses connections (a daemon restart
#: takes a few), after its attempts are spent; a refused request never reached the engine.
RESTART_WINDOW = 15.0


def refused(exc: BaseException | None) -> bool:
    """Whether *exc* means nothing listens on the engine's socket (down or restarting)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
            return True
        inner = [a for a in exc.args if isinstance(a, BaseException)]
        exc = inner[-1] if inner else getattr(exc, "reason", None) or exc.__cause__
        exc = exc if isinstance(exc, BaseException) else None
        seen += 1
    return False


def _stop(attempts: int) -> Callable[[RetryCallState], bool]:
    """Stop after *attempts*, unless the engine is refusing connections (see above)."""
    by_count = stop_after_attempt(attempts)

    def stop(state: RetryCallState) -> bool:
        failure = state.outcome.exception() if state.outcome else None
        restarting = attempts > 1 and refused(failure) and (
            state.seconds_since_start or 0.0) < RESTART_WINDOW
        return by_count(state) and not restarting

    return stop


def call(
    action: str,
    fn: Callable[[], T],
    *,
    attempts: int = 4,
    network_race: bool = False,
    fix: str = "",
) -> T:
    """Run one engine request, retrying transient failures a bounded number of times.

    :param action: what the request does, for the error message ("create network x").
    :param network_race: also retry "network not found" just after creating it.
    :raises EngineError: when it still fails, or fails in a way retrying cannot fix.
    """
    predicate = _is_transient_or_missing_network if network_race else is_transient
    retrying = tenacity_retry(
        retry=retry_if_exception(predicate),
        stop=_stop(attempts),
        wait=wait_exponential(multiplier=0.1, max=1.0),
        reraise=True,
    )
    try:
        return retrying(fn)()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        if refused(exc):  # the request's own fix assumes an engine that answers
            fix = (f"the engine refused connections for {RESTART_WINDOW:g} s: check that "
                   "dockerd runs, then `envkit gc` removes what is left")
        raise EngineError(action=action, cause=_short(exc), fix=fix) from exc


def remove(action: str, fn: Callable[[], object], *, attempts: int = 4) -> None:
    """Run a removal; an object that is already gone counts as removed.

    Teardown races other cleaners (a reaper, ``envkit gc``, Docker's own auto-remove),
    so "no such container" and "removal already in progress" both mean success.
    """

    def tolerant() -> None:
        try:
            fn()
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    call(action, tolerant, attempts=attempts)

"""The exceptions envkit raises, one root and a subclass per cause.

Every error says what went wrong, shows what it found, and ends with the fix, so
that a failing test run can be repaired from its message alone::

    EnvkitError
    ├── SpecError              a stack spec is malformed (names service, field, value)
    ├── EngineUnavailableError the Docker engine does not answer
    ├── EngineError            the engine refused a request (after retries)
    ├── ImageError             an image is missing or its build failed
    │   └── ImageBuildError    carries the build log
    ├── DeviceNotFoundError    a device mapping names a host path that is absent
    ├── ReadinessTimeoutError  a service did not become ready before its deadline
    ├── StackStateError        a Stack method was called in the wrong lifecycle state
    ├── StackNotFoundError     no stack on the engine has the given identifier
    └── NameNotFoundError      a stack has no such service, or a service no such port
"""

from __future__ import annotations

from collections.abc import Sequence


class EnvkitError(Exception):
    """Root of every error envkit raises on purpose.

    :param message: what went wrong.
    :param fix: the action that resolves it; appended to the message.
    """

    def __init__(self, message: str, *, fix: str = "") -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message}\n  fix: {fix}" if fix else message)


class SpecError(EnvkitError, ValueError):
    """A stack spec is invalid; raised at construction, before Docker is touched."""

    def __init__(
        self,
        *,
        stack: str | None,
        service: str | None,
        field: str,
        value: object,
        problem: str,
        fix: str,
    ) -> None:
        self.stack = stack
        self.service = service
        # A field may be named after a hostile key (environment.<key>): cut it like values.
        self.field = _cut(field, 200)
        self.value = value
        self.problem = problem
        parts = [f"stack {shown(stack, 100)}" if stack else "",
                 f"service {shown(service, 100)}" if service else ""]
        where = ", ".join(p for p in parts if p) or "spec"
        # A problem may quote the value again (a path made of it): long lines are cut too.
        told = "\n".join(_cut(line, 400) for line in problem.split("\n"))
        super().__init__(f"{where}: field {self.field!r} = {shown(value)}: {told}",
                         fix=_cut(fix, 400))


def shown(value: object, limit: int = 200) -> str:
    """``repr(value)``, cut in the middle past *limit* characters.

    A hostile or mistaken value (a megabyte string, an alias-expanded list) must not
    drown the message that names it; both ends stay, as they usually tell it apart.
    """
    return _cut(repr(value), limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 30) // 2
    return f"{text[:half]} ...({len(text) - 2 * half} characters)... {text[-half:]}"


class EngineUnavailableError(EnvkitError):
    """The Docker engine cannot be reached at all."""

    def __init__(self, *, docker_host: str, cause: str, fix: str = "") -> None:
        self.docker_host = docker_host
        self.cause = cause
        super().__init__(
            f"the Docker engine at {docker_host} does not answer: {cause}",
            fix=fix or "start the daemon (`sudo systemctl start docker`, or `dockerd &`), or "
            "point DOCKER_HOST at a running engine; `envkit doctor` checks the setup",
        )


class EngineError(EnvkitError):
    """The engine answered with an error that retrying did not cure."""

    def __init__(self, *, action: str, cause: str, fix: str = "") -> None:
        self.action = action
        self.cause = cause
        super().__init__(f"Docker refused to {action}: {cause}", fix=fix)


class ImageError(EnvkitError):
    """An image a stack needs is absent and cannot be built or pulled."""

    def __init__(self, *, image: str, problem: str, fix: str) -> None:
        self.image = image
        super().__init__(f"image {image!r}: {problem}", fix=fix)


class ImageBuildError(ImageError):
    """``docker build`` failed; ``build_log`` holds the builder's output."""

    def __init__(self, *, image: str, context: str, reason: str, build_log: Sequence[str]) -> None:
        self.context = context
        self.build_log = list(build_log)
        tail = "\n    ".join(self.build_log[-15:])
        super().__init__(
            image=image,
            problem=f"build of {context} failed: {reason}\n  last build output:\n    {tail}",
            fix=f"fix the Dockerfile in {context}, then rerun; `envkit images build` shows the "
            "whole build",
        )


class DeviceNotFoundError(EnvkitError):
    """A service maps a host device that this machine does not have."""

    def __init__(self, *, service: str, device: str, available: Sequence[str]) -> None:
        self.service = service
        self.device = device
        found = ", ".join(available) or "none"
        super().__init__(
            f"service {service!r}: host device {device!r} does not exist "
            f"(character devices like it on this host: {found})",
            fix="connect the device, load its driver (for cameras: `modprobe v4l2loopback`), "
            "or remove the mapping from the spec",
        )


class ReadinessTimeoutError(EnvkitError, TimeoutError):
    """A service's readiness check did not pass before its deadline, or it exited first.

    :param ran_for: when the container exited, how long it ran (seconds); the message then
        says that ("exited after 0.4 s, exit code 3") rather than blaming the deadline.
    """

    def __init__(
        self,
        *,
        service: str,
        check: str,
        timeout: float,
        last_error: str,
        state: str,
        exit_code: int | None,
        oom_killed: bool,
        log_tail: Sequence[str],
        ran_for: float | None = None,
    ) -> None:
        self.service = service
        self.check = check
        self.timeout = timeout
        self.last_error = last_error
        self.state = state
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.log_tail = list(log_tail)
        self.ran_for = ran_for
        status = state if exit_code is None else f"{state}, exit code {exit_code}"
        if oom_killed:
            status += ", OOM-killed"
        logs = "\n    ".join(self.log_tail) or "(no output)"
        if exit_code is not None:
            after = "" if ran_for is None else f" after {ran_for:.1f} s"
            head = (f"service {service!r} exited{after} (exit code {exit_code}"
                    f"{', OOM-killed' if oom_killed else ''}) before check {check} passed")
            fix = ("read the log lines above: the service's command failed; correct its "
                   "command, image or environment")
        else:
            head = (f"service {service!r} not ready after {timeout:.1f}s: check {check} "
                    f"last failed with: {last_error}")
            fix = ("read the log lines above; raise the service's `ready_timeout` if it is "
                   "only slow, or correct its command or readiness check")
        hint = privilege_hint(self.log_tail)
        super().__init__(f"{head}\n  container: {status}\n  last log lines:\n    {logs}",
                         fix=f"{hint}; else {fix}" if hint else fix)


#: What a service's log says when envkit's least privilege stopped it, and what to change.
_PRIVILEGE_HINTS = (
    ("Operation not permitted", "envkit runs every container without Linux capabilities: "
     "give the service those it needs with cap_add (chown: CHOWN; switching user: SETUID, "
     "SETGID; files of other users: DAC_OVERRIDE, FOWNER)"),
    ("Read-only file system", "the service's root file system is read-only (read_only): "
     "give the paths it writes as tmpfs or volumes"),
    ("Resource temporarily unavailable", "the service may have hit its process limit: "
     "raise pids_limit (1024 by default; threads count)"),
    ("can't start new thread", "the service hit its process limit: raise pids_limit "
     "(1024 by default; threads count)"),
    ("Permission denied", "check that the user the service runs as (user, or the image's "
     "USER) may write what it writes, or give it cap_add: [DAC_OVERRIDE]"),
)


def privilege_hint(log_lines: Sequence[str]) -> str:
    """What to change when *log_lines* show a denial that least privilege may cause, or ``""``.

    envkit drops every capability, and a spec may set a read-only root or a low process
    limit; a service written for Docker's defaults then fails with one of these errors,
    far from the setting that caused it.
    """
    text = "\n".join(log_lines)
    return "; ".join(hint for marker, hint in _PRIVILEGE_HINTS if marker in text)


class StackStateError(EnvkitError, RuntimeError):
    """A Stack method was called when the stack's lifecycle does not allow it."""


class StackNotFoundError(EnvkitError, LookupError):
    """No stack on the engine carries the requested identifier."""

    def __init__(self, *, stack: str, known: Sequence[str]) -> None:
        self.stack = stack
        listing = ", ".join(known) or "none"
        super().__init__(
            f"no stack {stack!r} on this engine (stacks present: {listing})",
            fix="run `envkit ps` to list stacks, and pass one of its identifiers",
        )


class NameNotFoundError(EnvkitError, KeyError):
    """A stack has no service by that name, or a service publishes no such port.

    A :class:`KeyError` too, so ``except KeyError`` around a look-up keeps working.
    """

    def __str__(self) -> str:
        # KeyError would print the repr of its argument, quotes and escaped newlines.
        return str(self.args[0]) if self.args else ""

"""What a failed test's report shows of the stacks it used: state, ports and log tails.

A failure in an integration test is usually explained by a container ("exited 1",
"OOM-killed", a stack trace in its log); putting that next to the assertion saves a
rerun with ``docker logs`` that, by then, has nothing left to read.
"""

from __future__ import annotations

from typing import Any

from envkit import _engine
from envkit._privileges import redact, secret_values
from envkit.errors import EnvkitError, StackStateError, privilege_hint
from envkit.runtime import Stack

LOG_TAIL = 25


def describe(stack: Stack, *, tail: int = LOG_TAIL) -> str:
    """Each service of *stack*: container state, published ports, last *tail* log lines."""
    return "\n".join(_service(stack, svc.name, tail) for svc in stack.spec.services)


def _service(stack: Stack, service: str, tail: int) -> str:
    try:
        container = stack.container(service)
        # One attempt each: a failing engine must not add minutes to every failed test.
        _engine.call(f"inspect {service}", container.reload, attempts=1)
        logs = _engine.call(f"read logs of {service}", lambda: container.logs(tail=tail),
                            attempts=1)
    except (KeyError, StackStateError):
        return f"--- {service}: not running in this stack"
    except EnvkitError as exc:
        return f"--- {service}: could not be inspected: {exc.message}"
    state = container.attrs.get("State", {})
    status = str(state.get("Status", "unknown"))
    if status != "running":
        status += f", exit code {state.get('ExitCode')}"
    if state.get("OOMKilled"):
        status += ", OOM-killed"
    ports = ", ".join(f"{k} -> {v}" for k, v in stack.ports(service).items()) or "none"
    secrets = secret_values(svc.environment for svc in stack.spec.services)
    text = redact(bytes(logs).decode("utf-8", "replace").rstrip("\n"), secrets)
    lines = "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"
    image = (container.attrs.get("Config") or {}).get("Image", "?")
    hint = privilege_hint(text.splitlines())
    return (f"--- {service} ({status}; image {image}; ports {ports}; "
            f"{_privileges(container.attrs)}); last {tail} log lines:\n{lines}"
            + (f"\n    hint: {hint}" if hint else ""))


def _privileges(attrs: dict[str, Any]) -> str:
    """``user 10001:10001, caps CHOWN, read-only, pids 256``: what the service may do."""
    host, config = attrs.get("HostConfig") or {}, attrs.get("Config") or {}
    caps = ",".join(host.get("CapAdd") or []) or "none"
    parts = [f"user {config.get('User') or 'root (image default)'}", f"caps {caps}"]
    if host.get("ReadonlyRootfs"):
        parts.append("read-only")
    if host.get("PidsLimit"):
        parts.append(f"pids {host['PidsLimit']}")
    return ", ".join(parts)

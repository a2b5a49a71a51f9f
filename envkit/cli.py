"""The ``envkit`` command: thin wrappers over the library, mapped to exit codes.

Exit codes: 0 ok, 1 failure (an :class:`~envkit.errors.EnvkitError`, printed with its
fix), 2 usage. Machine-readable output (``--json``) goes to stdout alone; progress and
messages go to stderr so that ``envkit up --json | jq`` always parses.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from envkit import labels
from envkit.errors import EnvkitError, StackNotFoundError
from envkit.runtime import Stack, teardown
from envkit.session import Envkit

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
CommandFn = Callable[[argparse.Namespace, Envkit], int]
COMMANDS: dict[str, CommandFn] = {}


def command(name: str) -> Callable[[CommandFn], CommandFn]:
    """Register a subcommand implementation under *name*."""

    def register(fn: CommandFn) -> CommandFn:
        COMMANDS[name] = fn
        return fn

    return register


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand's options sit next to it here."""
    parser = argparse.ArgumentParser(
        prog="envkit", description="Ephemeral, isolated container stacks for tests.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start a stack and print its services and endpoints")
    up.add_argument("--stack", default=None, metavar="NAME|PATH",
                    help="built-in stack name or YAML stack file (default: $ENVKIT_STACK)")
    up.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    up.add_argument("--detach", action="store_true",
                    help="leave the stack running and exit (remove it with `envkit down`)")
    down = sub.add_parser("down", help="remove a stack started by `envkit up` or a test run")
    down.add_argument("stack", metavar="STACK", help="the stack id `envkit up` printed")
    for extend in PARSER_EXTENSIONS:
        extend(sub)
    return parser


PARSER_EXTENSIONS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


def _print_stack(stack: Stack, *, as_json: bool) -> None:
    doc = stack.describe()
    if as_json:
        print(json.dumps(doc), flush=True)
        return
    lines = [f"stack {doc['stack']} (network {doc['network']})"]
    for name, svc in doc["services"].items():
        ports = ", ".join(f"{k} -> {v}" for k, v in svc["ports"].items()) or "no ports"
        lines.append(f"  {name:<16} {svc['image']:<32} {ports}")
    print("\n".join(lines), flush=True)


@command("up")
def cmd_up(args: argparse.Namespace, kit: Envkit) -> int:
    spec = kit.spec(args.stack)
    stack = kit.stack(spec, name=spec.name, detached=args.detach)
    stack.up()
    try:
        _print_stack(stack, as_json=args.json)
        if args.detach:
            _err(f"envkit: stack {stack.id} left running; remove it with `envkit down {stack.id}`")
            return EXIT_OK
        _err("envkit: stack is up; press Ctrl-C to remove it")
        _wait_for_interrupt()
    except BaseException:
        stack.down()
        raise
    stack.down()
    _err(f"envkit: stack {stack.id} removed")
    return EXIT_OK


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


@command("down")
def cmd_down(args: argparse.Namespace, kit: Envkit) -> int:
    removed = teardown(kit.engine, args.stack)
    if removed == 0:
        raise StackNotFoundError(stack=args.stack, known=known_stacks(kit))
    _err(f"envkit: stack {args.stack} removed ({removed} resources)")
    return EXIT_OK


def known_stacks(kit: Envkit) -> list[str]:
    """Identifiers of every envkit stack on the engine."""
    nets = kit.engine.client.networks.list(filters=labels.selector())
    return sorted({n.attrs.get("Labels", {}).get(labels.STACK, "?") for n in nets})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``envkit`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    kit = Envkit.from_env(os.environ, worker="cli", progress=lambda line: _err(f"build: {line}"))
    try:
        return COMMANDS[args.command](args, kit)
    except EnvkitError as exc:
        _err(f"envkit: error: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _err("envkit: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

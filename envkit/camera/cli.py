"""``envkit-camera``: the camera kit's commands beside envkit's own (``token``)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from functools import partial

from envkit import _engine, labels
from envkit.camera import auth
from envkit.errors import EnvkitError, StackNotFoundError
from envkit.inventory import list_stacks
from envkit.session import Envkit

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: The longest token lifetime: a year; past that a test token is a mistake (or a leak).
MAX_TTL = 366 * 24 * 3600


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """``envkit-camera token STACK [--role R] [--ttl S]``."""
    parser = argparse.ArgumentParser(prog="envkit-camera",
                                     description="The camera kit's commands.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token = sub.add_parser("token", help="print a JWT for a stack's camera service")
    token.add_argument("stack", metavar="STACK", help="the stack id `envkit up` printed")
    token.add_argument("--role", choices=auth.ROLES, default="viewer")
    token.add_argument("--ttl", type=_ttl, default=3600.0, metavar="SECONDS",
                       help=f"lifetime of the token, 1 to {MAX_TTL} seconds (default 3600)")
    return parser


def _ttl(text: str) -> float:
    """``--ttl``'s type: a bad value is a usage error (exit 2), never a traceback.

    The claim ``exp`` is whole seconds: NaN or inf cannot be written, and less than a
    second (or a negative number) mints a token that is already expired.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 <= value <= MAX_TTL:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"not a lifetime: {text[:40]!r} (give seconds from 1 to {MAX_TTL}, e.g. 3600)")
    return value


def token(args: argparse.Namespace, kit: Envkit) -> int:
    """Mint with the secret the stack's camera service was started with; token on stdout."""
    api = kit.engine.client.api
    found = list_stacks(kit.engine.client, selector=labels.selector(stack=args.stack))
    if not found:
        known = [s.stack for s in list_stacks(kit.engine.client)]
        raise StackNotFoundError(stack=args.stack, known=known)
    for container in found[0].containers:
        info = _engine.call(f"inspect container {container.name}",
                            partial(api.inspect_container, container.name))
        secret = auth.secret_from_env((info.get("Config") or {}).get("Env"))
        if secret:
            _err(f"envkit: {args.role} token for {container.service} "
                 f"of {args.stack}, valid {args.ttl:.0f}s")
            print(auth.mint_token(secret, args.role, ttl=args.ttl), flush=True)
            return EXIT_OK
    raise EnvkitError(f"no service of stack {args.stack} has {auth.JWT_SECRET_ENV}",
                      fix="tokens are for stacks that run a camera service (the default stack)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``envkit-camera`` console script."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        return token(args, Envkit.from_env(os.environ, worker="cli"))
    except EnvkitError as exc:
        _err(f"envkit: error: {exc}")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

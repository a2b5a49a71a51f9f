"""The ``envkit`` command: thin wrappers over the library, mapped to exit codes.

Commands parse, call one library function (:mod:`envkit.inventory`, :mod:`envkit.reaper`,
:mod:`envkit.imageset`, :mod:`envkit.doctor`) and print; tables are rich on a terminal and
plain when piped. Exit codes: 0 ok, 1 failure (an :class:`~envkit.errors.EnvkitError`,
printed with its fix), 2 usage: a bad argument, or a malformed stack or compose file it
names (a :class:`~envkit.errors.SpecError`, printed with its field, value and fix).
Machine-readable output (``--json``) goes to stdout alone; progress and messages go to
stderr so that ``envkit up --json | jq`` always parses.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from envkit import _engines, _table, doctor, imageset, labels, reaper
from envkit._engine import Engine
from envkit._teardown import teardown
from envkit.errors import EnvkitError, SpecError, StackNotFoundError
from envkit.images import ImageBuilder
from envkit.imageset import list_images, prune_images
from envkit.inventory import list_stacks
from envkit.runtime import Stack
from envkit.session import Envkit
from envkit.spec import Build, StackSpec

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
    down = sub.add_parser("down", help="remove stacks: one, a session's, or all of envkit's")
    down.add_argument("stack", metavar="STACK", nargs="?", help="a stack id (see `envkit ps`)")
    which = down.add_mutually_exclusive_group()
    which.add_argument("--session", metavar="ID", help="every stack of test session ID")
    which.add_argument("--all", action="store_true", help="every envkit stack on the engine")
    ps = sub.add_parser("ps", help="list envkit stacks: session, worker, owner, age, state")
    ps.add_argument("--json", action="store_true", help="print a JSON array on stdout")
    gc = sub.add_parser("gc", help="remove stacks whose owner process is gone")
    gc.add_argument("--older-than", metavar="DURATION", default=None, type=_duration,
                    help=f"also remove any stack this old: 30s, 10m, 2h, 1d "
                    f"(default: ${reaper.GC_OLDER_THAN_ENV})")
    gc.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    images = sub.add_parser(
        "images", help="build, list or prune this project's envkit/<project>/<name>:<hash> images")
    images.add_argument("action", nargs="?", choices=("ls", "build", "prune"), default="ls")
    images.add_argument("names", nargs="*", metavar="NAME",
                        help="images/<NAME> under the project root to build (default: all)")
    images.add_argument("--all", action="store_true",
                        help="ls/prune every envkit image on the engine, not only this project's")
    images.add_argument("--stack", action="append", default=[], metavar="NAME|PATH",
                        help="with build: also the images of this stack (a kit's stack or a "
                        "stack file), e.g. before a CI run; repeatable")
    sub.add_parser("doctor", help="check engine, images, cameras and disk; say how to fix")
    return parser


def _duration(text: str) -> timedelta:
    """``--older-than``'s type: a bad value is a usage error that says the accepted forms."""
    try:
        return reaper.parse_duration(text)
    except EnvkitError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} ({exc.fix})") from None


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
    if sum((args.stack is not None, args.session is not None, args.all)) != 1:
        _err("envkit down: give exactly one of STACK, --session ID or --all")
        return EXIT_USAGE
    engines = _all_engines(kit)
    if args.stack is not None:
        removed = sum(teardown(engine, args.stack) for engine in engines)
        if removed == 0:
            raise StackNotFoundError(stack=args.stack, known=known_stacks(kit))
        _err(f"envkit: stack {args.stack} removed ({removed} resources)")
        return EXIT_OK
    selector = labels.selector(session=args.session) if args.session else None
    found = [(e, list_stacks(e.client, selector=selector)) for e in engines]
    if args.session and not any(stacks for _, stacks in found):
        sessions = sorted({s.session for e in engines for s in list_stacks(e.client)})
        raise EnvkitError(f"no stacks of session {args.session!r} "
                          f"(sessions on the engine: {', '.join(sessions) or 'none'})",
                          fix="pick a session from `envkit ps`")
    counts = {k: n for e, stacks in found for k, n in reaper.remove_stacks(e, stacks).items()}
    for stack, removed in counts.items():
        _err(f"envkit: stack {stack} removed ({removed} resources)")
    _err(f"envkit: {len(counts)} stacks removed")
    return EXIT_OK


def known_stacks(kit: Envkit) -> list[str]:
    """Identifiers of every envkit stack on the engines."""
    return [s.stack for e in _all_engines(kit) for s in list_stacks(e.client)]


def _all_engines(kit: Envkit) -> list[Engine]:
    """The kit's engine, or every one of ``ENVKIT_DOCKER_HOSTS``.

    With several, an unreachable one is named on stderr and skipped, so the others are
    still listed and cleaned; only when none answers is that an error.
    """
    if not _engines.several(kit.settings):
        return [kit.engine]
    reached = list(_engines.each(kit.settings, kit.environ))
    for r in reached:
        if r.error is not None:
            _err(f"envkit: warning: skipping engine {r.url}: {r.error.cause}")
    if all(r.engine is None for r in reached) and reached[0].error is not None:
        raise reached[0].error
    return [r.engine for r in reached if r.engine is not None]


@command("ps")
def cmd_ps(args: argparse.Namespace, kit: Envkit) -> int:
    found = [(e.docker_host, s) for e in _all_engines(kit) for s in list_stacks(e.client)]
    now = datetime.now(timezone.utc)
    if args.json:
        print(json.dumps([{**s.describe(now), "engine": url} for url, s in found], indent=2),
              flush=True)
        return EXIT_OK
    rows = [
        [s.stack, url, s.session, s.worker,
         s.owner + (" (detached)" if s.detached else "") + (" (kept)" if s.kept else "")
         + (" (pooled)" if s.pooled else ""),
         _table.human_age(None if (a := s.age(now)) is None else a.total_seconds()),
         s.state, ", ".join(s.endpoints) or "-"]
        for url, s in found
    ]
    _table.render(["STACK", "ENGINE", "SESSION", "WORKER", "OWNER", "AGE", "STATE",
                   "ENDPOINTS"], rows, stream=sys.stdout)
    return EXIT_OK


@command("gc")
def cmd_gc(args: argparse.Namespace, kit: Envkit) -> int:
    older_than = (args.older_than if args.older_than is not None
                  else reaper.older_than_from_env(os.environ))
    swept = [s for engine in _all_engines(kit)
             for s in reaper.sweep(engine, older_than=older_than, dry_run=args.dry_run)]
    verb = "would remove" if args.dry_run else "removed"
    rows = [[s.stack.stack, verb if s.verdict.remove else "kept", s.verdict.reason,
             str(s.removed) if s.verdict.remove and not args.dry_run else "-"] for s in swept]
    if rows:
        _table.render(["STACK", "ACTION", "REASON", "RESOURCES"], rows, stream=sys.stdout)
    gone = sum(s.verdict.remove for s in swept)
    _err(f"envkit: gc {verb} {gone} of {len(swept)} stacks")
    return EXIT_OK


def _buildable(kit: Envkit) -> list[str]:
    """Every ``images/<name>/Dockerfile`` directory under the project root."""
    return imageset.image_names(kit.settings.root / "images")


@command("images")
def cmd_images(args: argparse.Namespace, kit: Envkit) -> int:
    if args.names and args.action != "build":
        _err("envkit images: NAME arguments go with `build` only")
        return EXIT_USAGE
    if args.all and args.action == "build":
        _err("envkit images: --all goes with `ls` and `prune`; `build` builds this project's")
        return EXIT_USAGE
    if args.stack and args.action != "build":
        _err("envkit images: --stack goes with `build` only")
        return EXIT_USAGE
    client, builder = kit.engine.client, kit.images
    if args.action == "build":
        if args.stack and not args.names:
            return _build_stacks(builder, [kit.spec(ref) for ref in args.stack])
        return _build_images(builder, args.names or _buildable(kit))
    project = None if args.all else builder.project
    current = {s.tag for s in imageset.statuses(client, builder) if s.tag} | {builder.base_tag}
    if args.action == "prune":
        removed = prune_images(client, keep=current, project=project)
        for tag in removed:
            print(tag, flush=True)
        where = "every project" if project is None else f"project {project}"
        _err(f"envkit: pruned {len(removed)} stale image tags of {where}")
        return EXIT_OK
    rows = [[i.tag, i.id.removeprefix("sha256:")[:12], _table.human_size(i.size),
             i.created.strftime("%Y-%m-%d %H:%M"), "yes" if i.tag in current else "no"]
            for i in list_images(client, project=project)]
    _table.render(["TAG", "ID", "SIZE", "CREATED", "CURRENT"], rows, stream=sys.stdout)
    return EXIT_OK


def _build_stacks(builder: ImageBuilder, specs: Sequence[StackSpec]) -> int:
    """Build every image the stacks build (once each), reporting each tag."""
    builds: list[Build] = []
    for svc in (svc for spec in specs for svc in spec.services):
        if isinstance(svc.image, Build) and svc.image not in builds:  # unhashable: args
            builds.append(svc.image)
    for index, build in enumerate(builds, 1):
        _err(f"envkit: [{index}/{len(builds)}] {build.name} ({build})")
        print(f"{build.name}  {builder.ensure(build)}", flush=True)
    return EXIT_OK


def _build_images(builder: ImageBuilder, names: Sequence[str]) -> int:
    if not names:
        _err(f"envkit: no images/<name>/Dockerfile under {builder.root}")
        return EXIT_OK
    failed: list[str] = []
    for index, name in enumerate(names, 1):
        _err(f"envkit: [{index}/{len(names)}] {name}")
        try:
            print(f"{name}  {builder.ensure(Build(name=name))}", flush=True)
        except EnvkitError as exc:
            _err(f"envkit: error: {exc}")
            failed.append(name)
    if failed:
        _err(f"envkit: {len(failed)} of {len(names)} images failed: {', '.join(failed)}")
        return EXIT_FAILURE
    return EXIT_OK


@command("doctor")
def cmd_doctor(args: argparse.Namespace, kit: Envkit) -> int:
    checks = doctor.run(kit)
    rows = [[c.status.upper(), c.name, c.detail + (f"\n  fix: {c.fix}" if c.fix else "")]
            for c in checks]
    if sys.stdout.isatty():
        _table.render(["", "CHECK", "FINDING"], rows, stream=sys.stdout)
    else:
        for c in checks:
            print(f"{c.status:<4}  {c.name}: {c.detail}" + (f"\n      fix: {c.fix}" if c.fix
                                                              else ""), flush=True)
    failed = [c for c in checks if c.status == doctor.FAIL]
    _err(f"envkit: doctor found {len(failed)} problems" if failed else "envkit: all good")
    return EXIT_FAILURE if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``envkit`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    try:
        kit = Envkit.from_env(os.environ, worker="cli",
                              progress=lambda line: _err(f"build: {line}"))
        return COMMANDS[args.command](args, kit)
    except SpecError as exc:  # a malformed stack file named on the command line: usage
        _err(f"envkit: error: {exc}")
        return EXIT_USAGE
    except EnvkitError as exc:
        _err(f"envkit: error: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _err("envkit: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

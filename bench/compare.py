"""envkit beside the raw docker SDK, testcontainers, docker-compose and pytest-docker.

One run, every contender interleaved round by round (the order reversed every other
round, so drift in a shared machine's load hits all alike), medians, ratios to the raw
floor (the fewest low-level SDK calls, one service after another). Parts:

* ``a``: the two-service chain (``envkit.demo``: an HTTP service and a dependent that
  reaches it by alias, on envkit's base image), up to ready and down, five contenders;
* ``b``: the camera kit's default stack (stand-in MediaMTX + camera-service), envkit
  against the sequential raw floor for the same containers;
* ``c``: suites of K tests, each with a fresh chain, trivial bodies and bodies with
  ``--work`` seconds, at each ``--workers`` (pytest-xdist; raw in threads);
* ``d``: the same tests with one chain per worker;
* ``i``: the unchanged-image check (envkit's cached ensure beside one image inspect);
* ``calls`` (with ``a``/``b``): engine requests of one up and down, raw against envkit.

It writes ``docs/benchmarks.md``, ``docs/benchmarks.png`` and ``docs/benchmarks.json``.
Everything it creates carries an ``envkit.bench`` label or a session of its own and is
removed at the end, also on Ctrl-C or SIGTERM.

Usage: ``python bench/compare.py [--quick] [--parts a,b,c,d,i] [--runs 7]
[--suite-runs 3] [--tests 12] [--work 1] [--workers 1,2,4] [--contenders ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import docker
from bench_stack import _interleaved, envkit_cycle
from compare_report import machine, write
from compare_stacks import (
    BENCH_LABEL,
    CallLog,
    Chain,
    compose_cycle,
    pytest_docker_cycle,
    raw_cycle,
    summarize,
    testcontainers_cycle,
)
from compare_suites import Suite, SuiteRunner

from envkit import labels
from envkit.demo import demo
from envkit.session import Envkit
from envkit.spec import StackSpec

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = ("raw", "testcontainers", "compose", "pytest-docker", "envkit", "envkit pool",
              "pytest alone")
QUICK = {"runs": 2, "suite_runs": 1, "tests": 4, "work": 0.2, "workers": "2",
         "parts": "a,c,i"}


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pool_option(override: str | None) -> str | None:
    """Find envkit's warm-pool option as ``pytest --help`` lists it, if it has landed."""
    if override:
        return override
    with tempfile.TemporaryDirectory() as tmp:
        shown = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=tmp,
                               capture_output=True, text=True, check=False).stdout
    found = re.search(r"(--envkit-pool[\w-]*)[= ]", shown)
    return found.group(1) if found else None


def stacks(args: argparse.Namespace, ctx: dict[str, Any], res: dict[str, Any],
           only: str) -> None:
    """Parts a and b: one stack up and down per contender, then the engine calls."""
    kit: Envkit = ctx["kit"]
    cycles: dict[str, Callable[[Chain], tuple[float, float]]] = {
        "raw": partial(raw_cycle, ctx["raw_api"]),
        "testcontainers": testcontainers_cycle,
        "compose": partial(compose_cycle, kit.engine.client),
        "pytest-docker": pytest_docker_cycle,
        "envkit": lambda chain: envkit_cycle(kit, chain.spec),
    }
    parts = [("b", "default", ctx.get("default"), {"raw", "envkit"}),
             ("a", "chain", ctx["chain"], set(cycles))]
    for part, key, chain, allowed in parts:
        if part != only or part not in args.parts or chain is None:
            continue
        chosen = {k: partial(_tolerant, res, f"({part}) {k}", partial(v, chain))
                  for k, v in cycles.items() if k in allowed and k in args.contenders}
        _say(f"part {part}: {key}, warm-up then {args.runs} interleaved rounds")
        for cycle in chosen.values():
            cycle()
        res[key] = _interleaved(chosen, args.runs)
        if "raw" in chosen and "envkit" in chosen:
            try:
                res.setdefault("calls", {})[key] = calls(ctx, chain, rounds=2)
            except Exception as failed:  # as in _tolerant: the rest still counts
                res["failures"].append(f"({part}) engine calls: {failed!r}"[:1500])


def _tolerant(res: dict[str, Any], what: str,
              cycle: Callable[[], tuple[float, float]]) -> tuple[float, float] | None:
    """Run *cycle*; a failure is recorded and the round goes on without it."""
    try:
        return cycle()
    except Exception as failed:  # a loaded engine may miss a deadline: keep the others
        res["failures"].append(f"{what}: {type(failed).__name__}: {str(failed)[-1500:]}")
        _say(f"{what}: FAILED ({type(failed).__name__})")
        return None


def calls(ctx: dict[str, Any], chain: Chain, rounds: int) -> dict[str, Any]:
    """Engine requests of *rounds* ups and downs, raw and envkit, split by phase."""
    log: CallLog = ctx["log"]
    raw: dict[str, list[Any]] = {"up": [], "down": []}
    env: dict[str, list[Any]] = {"up": [], "down": []}
    ready, raw_up, env_up = 0.0, 0.0, 0.0
    for _ in range(rounds):
        phases: dict[str, float] = {}
        with log.record() as got:
            up, _ = raw_cycle(ctx["raw_api"], chain, phases)
        raw["up"] += [c for c in got if c[1] < phases["up_end"]]
        raw["down"] += [c for c in got if c[1] >= phases["up_end"]]
        ready, raw_up = ready + phases["ready"], raw_up + up
        stack = ctx["kit"].stack(chain.spec)
        with log.record() as got:
            started = time.perf_counter()
            stack.up()
            env_up += time.perf_counter() - started
        env["up"] += got
        with log.record() as got:
            stack.down()
        env["down"] += got
    return {
        "raw": {**{p: summarize(c, rounds) for p, c in raw.items()},
                "ready": ready / rounds, "wall_up": raw_up / rounds},
        "envkit": {**{p: summarize(c, rounds) for p, c in env.items()},
                   "wall_up": env_up / rounds},
    }


def suites(args: argparse.Namespace, ctx: dict[str, Any], res: dict[str, Any]) -> None:
    """Parts c and d: whole suites per contender, interleaved, medians of wall time."""
    runner = SuiteRunner(chain=ctx["chain"], api=ctx["raw_api"], pool_option=ctx["pool"],
                         sessions=ctx["sessions"])
    contenders = {k: v for k, v in runner.contenders().items() if k in args.contenders}
    variants: list[tuple[str, str, Suite, str]] = []
    for part in ("c", "d"):
        if part not in args.parts:
            continue
        bodies = [("trivial", 0.0), ("work", args.work)] if part == "c" else [("work", args.work)]
        for body, work in bodies:
            for n in args.workers:
                suite = Suite(tests=args.tests, work=work, fresh=part == "c", workers=n)
                # One stack per worker never takes a spare: the pool would only cost.
                variants += [(part, body, suite, who) for who in contenders
                             if (part == "c" or who != "envkit pool")
                             and not {f"{part}:{who}", f"{part}:{body}:{who}"} & args.skip]
    if not variants:
        return
    _say(f"parts c/d: warm-up, then {args.suite_runs} rounds of {len(variants)} runs")
    # Parts a/b warmed images and engine; one tiny run warms pytest's own caches.
    warm = [who for who in dict.fromkeys(v[3] for v in variants)
            if who == "pytest alone" or not {"a", "b"} & args.parts]
    for who in warm:
        with contextlib.suppress(RuntimeError):  # a failure shows again in the rounds
            contenders[who](Suite(tests=1, work=0.0, fresh=True, workers=1))
    samples: dict[tuple[str, str, Suite, str], list[float]] = {v: [] for v in variants}
    for i in range(args.suite_runs):
        for v in variants if i % 2 == 0 else list(reversed(variants)):
            try:
                samples[v].append(contenders[v[3]](v[2]))
            except RuntimeError as failed:  # one failed run must not lose the others
                res["failures"].append(f"({v[0]}) {v[1]} -n {v[2].workers} {v[3]}: "
                                       + str(failed)[-1500:])
                _say(f"round {i + 1}: ({v[0]}) {v[1]} -n {v[2].workers} {v[3]}: FAILED")
                continue
            _say(f"round {i + 1}: ({v[0]}) {v[1]} -n {v[2].workers} {v[3]}: "
                 f"{samples[v][-1]:.1f} s")
            _suite_rows(res, samples, runner)
    _suite_rows(res, samples, runner)


def _suite_rows(res: dict[str, Any], samples: dict[tuple[str, str, Suite, str], list[float]],
                runner: SuiteRunner) -> None:
    """Medians so far (kept after every sample, so an interrupted run still reports)."""
    res["suites"] = [
        {"part": part, "body": body, "workers": suite.workers, "contender": who,
         "median": statistics.median(got), "samples": got,
         "take": runner.median_take(who, suite)}
        for (part, body, suite, who), got in samples.items() if got
    ]


def images(args: argparse.Namespace, ctx: dict[str, Any], res: dict[str, Any]) -> None:
    """Part i: envkit's check that an image is unchanged, beside one image inspect."""
    kit: Envkit = ctx["kit"]
    specs = [ctx["chain"].spec] + ([ctx["default"].spec] if ctx.get("default") else [])
    builds = {svc.image.name: svc.image for spec in specs for svc in spec.services
              if not isinstance(svc.image, str)}
    out = {}
    for name, build in builds.items():
        tag = kit.images.resolve(build)
        ensure, inspect = [], []
        for _ in range(max(args.runs * 3, 5)):
            started = time.perf_counter()
            kit.images.resolve(build)
            ensure.append(time.perf_counter() - started)
            started = time.perf_counter()
            ctx["raw_api"].inspect_image(tag)
            inspect.append(time.perf_counter() - started)
        out[name] = {"ensure": statistics.median(ensure), "inspect": statistics.median(inspect)}
    res["images"] = out


def sweep(client: docker.DockerClient, run: str, sessions: list[str]) -> int:
    """Remove every container, network and volume this run made; how many were left."""
    left = 0
    selectors = [{"label": [f"{BENCH_LABEL}={run}"]}] + [
        labels.selector(session=s) for s in sessions]
    for selector in selectors:
        for box in client.containers.list(all=True, filters=selector, ignore_removed=True):
            box.remove(force=True, v=True)
            left += 1
        for net in client.networks.list(filters=selector):
            net.remove()
            left += 1
        for vol in client.volumes.list(filters=selector):
            vol.remove(force=True)
            left += 1
    return left


def _interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def measure(args: argparse.Namespace, ctx: dict[str, Any], res: dict[str, Any]) -> None:
    """Run the chosen parts, filling *res* as compare_report takes it, part by part."""
    kit: Envkit = ctx["kit"]
    res |= {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(kit.engine.client), "notes": [], "failures": [],
        "options": {k: sorted(v) if isinstance(v, set) else v for k, v in vars(args).items()
                    if k not in {"out", "report_only"}},
    }
    spec = demo()
    ctx["chain"] = Chain(spec=spec, tags=_tags(kit, spec), run=ctx["run"], workdir=ctx["tmp"])
    if "b" in args.parts or "i" in args.parts:
        default = kit.spec("default")
        ctx["default"] = Chain(spec=default, tags=_tags(kit, default), run=ctx["run"],
                               workdir=ctx["tmp"])
    # Targets first (b, c), so a machine too loaded to finish still reports them.
    stacks(args, ctx, res, "b")
    if "i" in args.parts:
        images(args, ctx, res)
    res["notes"] = notes(ctx)
    suites(args, ctx, res)
    stacks(args, ctx, res, "a")


def _tags(kit: Envkit, spec: StackSpec) -> dict[str, str]:
    return {svc.name: kit.images.resolve(svc.image) for svc in spec.services}


def notes(ctx: dict[str, Any]) -> list[str]:
    """How to read the tables: what each contender does, and what was not measured."""
    out = ["## How each contender runs", "",
           "- **raw**: docker-py's low-level API, the fewest calls: network create; per "
           "service create, start, inspect (for the host port), then HTTP polls every 20 ms;"
           " down: remove with force per container, then the network. Services one after "
           "another. In suites: the same lifecycles in a thread pool as wide as `-n` "
           "(no pytest, so no interpreter or xdist start-up: see `pytest alone`).",
           "- **testcontainers**: testcontainers-python by hand: `Network`, `DockerContainer`"
           " with a network alias, the same HTTP wait, `stop()`; Ryuk off (its image cannot "
           "be pulled here). In suites: a fixture, function scope (c) or session scope (d).",
           "- **compose**: `docker-compose up -d` (v1), host ports read through the SDK, the "
           "same HTTP wait, `docker-compose down -v`.",
           "- **pytest-docker**: its `docker_services` (`get_docker_services` in part a) with "
           "`docker-compose` v1 and `up -d` (v1 has no `--wait`), `port_for`, the HTTP wait; "
           "`--container-scope function` (c) or `session` (d).",
           "- **envkit**: `Stack.up()`/`down()` (a, b); in suites `envkit_stack_factory` per "
           "test (c) or `envkit_stack` (d), background teardown (the default)"
           + (f", warm pool off (`{ctx['pool']} 0`)." if ctx["pool"] else "."),
           "- **pytest alone**: the same tests with no stack: pytest and xdist's own cost.", ""]
    if ctx["pool"]:
        out.append(f"- **envkit pool**: envkit with `{ctx['pool']} 1` (one spare per spec; "
                   "the default is 0, off) within `--envkit-pool-max-spares` (default 2): a "
                   "spare is started after a worker's first request; not in (d), where no "
                   "test takes a spare. Spares started at worker start while collection "
                   "runs (ini `envkit_pool_stacks`) are not measured.")
    else:
        out.append("- **envkit pool**: not measured: no `--envkit-pool` option in this "
                   "checkout yet.")
    return [*out, "", "Reproduce: `make bench` (or `.venv/bin/python bench/compare.py "
            "--quick` for a smoke run that writes nothing unless `--out` is given)."]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Options; ``--quick`` changes the defaults of those not given."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke run: {QUICK}; writes only with --out")
    p.add_argument("--parts", help="comma-separated of a,b,c,d,i (default all)")
    p.add_argument("--runs", type=int, help="rounds for one stack (default 7)")
    p.add_argument("--suite-runs", type=int, help="rounds for suites (default 3)")
    p.add_argument("--tests", type=int, help="tests per suite (default 12)")
    p.add_argument("--work", type=float, help="seconds of each test's work (default 1)")
    p.add_argument("--workers", help="comma-separated -n values (default 1,2,4)")
    p.add_argument("--contenders", default=",".join(CONTENDERS),
                   help=f"comma-separated subset of {', '.join(CONTENDERS)}")
    p.add_argument("--skip", default="", help="comma-separated part:contender or "
                   "part:body:contender to leave out, e.g. c:pytest-docker,c:work:raw")
    p.add_argument("--pool-option", help="envkit's warm-pool option, if not found by itself")
    p.add_argument("--out", help="the page to write (default docs/benchmarks.md)")
    p.add_argument("--report-only", metavar="JSON", help="rewrite the page from saved results")
    args = p.parse_args(argv)
    full = {"runs": 7, "suite_runs": 3, "tests": 12, "work": 1.0, "workers": "1,2,4",
            "parts": "a,b,c,d,i"}
    for key, value in (QUICK if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None and not args.quick:
        args.out = str(ROOT / "docs" / "benchmarks.md")
    args.parts = set(args.parts.split(","))
    args.workers = [int(n) for n in str(args.workers).split(",")]
    args.contenders = set(args.contenders.split(","))
    args.skip = set(filter(None, args.skip.split(",")))
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure (or rewrite the report), always removing what the run made."""
    args = parse(argv)
    if args.report_only:
        write(json.loads(Path(args.report_only).read_text()), Path(args.out))
        return 0
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"  # before testcontainers loads
    os.environ.setdefault("ENVKIT_PROJECT", ROOT.name)  # the checkout's built images
    signal.signal(signal.SIGTERM, _interrupted)
    run = uuid.uuid4().hex[:10]
    kit = Envkit.from_env({**os.environ, "ENVKIT_SESSION": f"bench{run}"}, worker="bench")
    ctx: dict[str, Any] = {"kit": kit, "run": run, "sessions": [kit.session],
                           "raw_api": docker.from_env().api, "log": CallLog(),
                           "pool": pool_option(args.pool_option)}
    ctx["log"].attach(ctx["raw_api"])
    ctx["log"].attach(kit.engine.client.api)
    res: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="envkit-compare-") as tmp:
            ctx["tmp"] = Path(tmp)
            measure(args, ctx, res)
    except KeyboardInterrupt:
        _say("interrupted: reporting what was measured so far")
        res.setdefault("notes", []).append("**This run was interrupted: parts missing above "
                                           "were not measured.**")
    finally:
        left = sweep(kit.engine.client, run, ctx["sessions"])
        _say(f"cleanup: {left} leftover resource(s) removed")
    print(json.dumps({k: v for k, v in res.items() if k != "notes"}, indent=1, default=str))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str))
        write(res, out)
        _say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

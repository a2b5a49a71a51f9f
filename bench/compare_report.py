"""Write ``compare.py``'s results as ``docs/benchmarks.md`` with a PNG plot beside it.

The results are a plain dict (also saved as JSON next to the page) so a report can be
rewritten from a saved run without measuring again:
``python bench/compare.py --report-only docs/benchmarks.json``.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

TARGETS = {
    "default_up": 0.7,  # default stack up / sequential raw floor
    "work_n2": 0.6,  # 12 x fresh chain x 1 s at -n 2 / testcontainers by hand
    "trivial": 1.1,  # trivial bodies / raw at the same concurrency
    "take": 0.1,  # seconds to take a pooled stack (median)
}


def machine(client: Any) -> dict[str, str]:
    """Cores, engine version, storage driver, kernel: what the numbers depend on."""
    info = client.info()
    version = client.version()
    compose = subprocess.run(["docker-compose", "version", "--short"], capture_output=True,
                             text=True, check=False).stdout.strip()
    return {
        "cores": str(os.cpu_count()), "engine": f"Docker {version.get('Version')} "
        f"(API {version.get('ApiVersion')})", "storage driver": str(info.get("Driver")),
        "kernel": platform.release(), "python": platform.python_version(),
        "docker-compose": compose or "absent",
        "memory": f"{info.get('MemTotal', 0) / 2**30:.1f} GiB",
    }


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def _stack_table(title: str, rows: dict[str, dict[str, float]]) -> list[str]:
    base = rows.get("raw", {})
    out = [f"### {title}", "", "| contender | up (s) | up vs raw | down (s) | down vs raw |",
           "| --- | ---: | ---: | ---: | ---: |"]
    for who, row in rows.items():
        out.append(f"| {who} | {row['up']:.2f} | {_ratio(row['up'], base.get('up'))} | "
                   f"{row['down']:.2f} | {_ratio(row['down'], base.get('down'))} |")
    return [*out, ""]


def _suite_table(rows: list[dict[str, Any]], part: str) -> list[str]:
    mine = [r for r in rows if r["part"] == part]
    names = list(dict.fromkeys(r["contender"] for r in mine))
    cases = list(dict.fromkeys((r["body"], r["workers"]) for r in mine))
    out = ["| body | -n | " + " | ".join(names) + " |",
           "| --- | ---: |" + " ---: |" * len(names)]
    for body, n in cases:
        got = {r["contender"]: r["median"] for r in mine if (r["body"], r["workers"]) == (body, n)}
        cells = [f"{got[c]:.1f} ({_ratio(got[c], got.get('raw'))})" if c in got else "-"
                 for c in names]
        out.append(f"| {body} | {n} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _takes(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| suite | -n | contender | median wait for a stack (s) |",
           "| --- | ---: | --- | ---: |"]
    for r in rows:
        if r.get("take") is not None:
            out.append(f"| {r['part']} {r['body']} | {r['workers']} | {r['contender']} | "
                       f"{r['take']:.3f} |")
    return [*out, ""]


def _calls(calls: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for stack, who in calls.items():
        out += [f"### {stack}", "", "| phase | call | raw: n | raw: ms | envkit: n | "
                "envkit: ms |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for phase in ("up", "down"):
            raw, env = who["raw"][phase], who["envkit"][phase]
            for kind in sorted({*raw, *env}):
                rn, rt = raw.get(kind, (0, 0.0))
                en, et = env.get(kind, (0, 0.0))
                out.append(f"| {phase} | `{kind}` | {rn:g} | {rt * 1000:.0f} | {en:g} | "
                           f"{et * 1000:.0f} |")
        out += ["", f"Raw: {who['raw']['ready'] * 1000:.0f} ms of its up went to waiting "
                f"for readiness (HTTP polls, outside the engine); envkit's up took "
                f"{who['envkit']['wall_up'] * 1000:.0f} ms wall, raw's "
                f"{who['raw']['wall_up'] * 1000:.0f} ms.", ""]
    return out


def verdicts(res: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, met?) for each of issue 13's targets the run measured."""
    out = []
    default = res.get("default")
    if default and "envkit" in default and "raw" in default:
        r = default["envkit"]["up"] / default["raw"]["up"]
        out.append(("default stack up <= 0.7x sequential raw", f"{r:.2f}x", _met(r, "default_up")))
    suites = res.get("suites", [])
    for who in ("envkit", "envkit pool"):
        cell = _cell(suites, "c", "work", 2, who)
        tc = _cell(suites, "c", "work", 2, "testcontainers")
        if cell and tc:
            r = cell / tc
            out.append((f"{who}: fresh chain x 1 s at -n 2 <= 0.6x testcontainers",
                        f"{r:.2f}x", _met(r, "work_n2")))
        for n in sorted({r["workers"] for r in suites}):
            mine = _cell(suites, "c", "trivial", n, who)
            raw = _cell(suites, "c", "trivial", n, "raw")
            if mine and raw:
                out.append((f"{who}: trivial bodies at -n {n} <= 1.1x raw",
                            f"{mine / raw:.2f}x", _met(mine / raw, "trivial")))
    takes = [r["take"] for r in suites if r["contender"] == "envkit pool" and r.get("take")]
    if takes:
        t = min(takes)
        out.append(("pooled take <= 0.1 s (median)", f"{t:.3f} s (best suite median)",
                    _met(t, "take")))
    return out


def _cell(rows: list[dict[str, Any]], part: str, body: str, n: int, who: str) -> float | None:
    for r in rows:
        if (r["part"], r["body"], r["workers"], r["contender"]) == (part, body, n, who):
            return float(r["median"])
    return None


def _met(value: float, target: str) -> str:
    return "met" if value <= TARGETS[target] else "NOT met"


def plot(res: dict[str, Any], path: Path) -> None:
    """Bars of each contender's time as a ratio to the raw floor, per case."""
    import matplotlib  # noqa: PLC0415 (the dev extra; only needed when writing)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    cases: dict[str, dict[str, float]] = {}
    for part in ("chain", "default"):
        if "raw" not in res.get(part, {}):
            continue
        for who, row in res[part].items():
            cases.setdefault(f"{part} up", {})[who] = row["up"] / res[part]["raw"]["up"]
    for r in res.get("suites", []):
        raw = _cell(res["suites"], r["part"], r["body"], r["workers"], "raw")
        if raw:
            cases.setdefault(f"({r['part']}) {r['body']} -n {r['workers']}", {})[
                r["contender"]] = r["median"] / raw
    names = list(dict.fromkeys(w for row in cases.values() for w in row))
    fig, ax = plt.subplots(figsize=(max(8, len(cases) * 1.1), 5))
    width = 0.8 / max(len(names), 1)
    for i, who in enumerate(names):
        xs = [j + i * width for j, row in enumerate(cases.values()) if who in row]
        ys = [row[who] for row in cases.values() if who in row]
        ax.bar(xs, ys, width, label=who)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cases))], list(cases),
                  rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("time / raw SDK floor (lower is better)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(res: dict[str, Any], page: Path) -> None:
    """The Markdown page, its plot (same name, ``.png``) and the results as JSON."""
    plot(res, page.with_suffix(".png"))
    opts = res["options"]
    lines = ["# Benchmarks: envkit beside the raw SDK, testcontainers, docker-compose, "
             "pytest-docker", "",
             f"Measured by `bench/compare.py` on {res['when']} "
             f"{res.get('how', 'in one run')}, contenders "
             f"interleaved round by round (order reversed every other round); medians of "
             f"{opts['runs']} rounds for one stack, {opts['suite_runs']} for suites. "
             "The machine is shared with other engineers' test runs, so expect noise of "
             "10-20 %; read ratios, not absolute times.", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in res["machine"].items()) + ".", "",
             f"![ratios to the raw floor]({page.with_suffix('.png').name})", ""]
    lines += res.get("preface", [])  # what a partial or merged run must say first
    if verdicts(res):
        lines += ["## Issue 13's targets", "", "| target | measured | |", "| --- | ---: | --- |"]
        lines += [f"| {t} | {m} | {ok} |" for t, m, ok in verdicts(res)] + [""]
    lines += _body(res)
    page.write_text("\n".join(lines) + "\n")


def _body(res: dict[str, Any]) -> list[str]:
    opts, out = res["options"], ["## Results", ""]
    if res.get("chain"):
        out += _stack_table("(a) Two-service chain: up to ready, and down", res["chain"])
    if res.get("default"):
        out += _stack_table("(b) Default stack (stand-in MediaMTX + camera-service)",
                            res["default"])
    suites = res.get("suites", [])
    for part, title in (("c", f"(c) {opts['tests']} tests, each with a fresh chain"),
                        ("d", f"(d) {opts['tests']} tests, one chain per worker")):
        if any(r["part"] == part for r in suites):
            out += [f"### {title}", "", "Wall time of the whole run in seconds (ratio to "
                    "raw at the same concurrency). `1 s work`: each test sleeps "
                    f"{opts['work']:g} s.", ""]
            out += _suite_table(suites, part)
    if any(r.get("take") is not None for r in suites):
        out += ["### Waiting for a stack inside a test", "", *_takes(suites)]
    if res.get("images"):
        out += ["### Unchanged images (cached ensure)", "", "| image | ensure (ms) | one "
                "inspect (ms) |", "| --- | ---: | ---: |"]
        out += [f"| {k} | {v['ensure'] * 1000:.1f} | {v['inspect'] * 1000:.1f} |"
                for k, v in res["images"].items()] + [""]
    if res.get("calls"):
        out += ["## Where the engine's time goes", "", "Engine requests of one up and one "
                "down, counted and timed at docker-py's HTTP layer (mean of the recorded "
                "rounds).", "", *_calls(res["calls"])]
    out += res.get("notes", [])
    if res.get("failures"):
        out += ["", "## Failures", "", "Runs that failed (left out of the medians):", ""]
        out += [f"```\n{failure}\n```" for failure in res["failures"]]
    return out

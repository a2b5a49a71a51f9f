"""bench/compare.py's pure parts: engine calls grouped by kind, the report and its verdicts.

No engine and no timing: the numbers below are made up, and only how they are grouped,
divided and written is checked (speed is measured by the bench scripts, never asserted).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """The bench modules, importable by the bare names they use for each other."""
    monkeypatch.syspath_prepend(str(BENCH))
    import compare  # noqa: PLC0415
    import compare_report  # noqa: PLC0415
    import compare_stacks  # noqa: PLC0415

    return {"compare": compare, "report": compare_report, "stacks": compare_stacks}


SOCKET = "http+docker://localhost/v1.41"


@pytest.mark.parametrize(("method", "url", "kind"), [
    ("POST", f"{SOCKET}/containers/3f2a9c/start", "POST /containers/{id}/start"),
    ("POST", f"{SOCKET}/containers/create?name=x", "POST /containers/create"),
    ("GET", f"{SOCKET}/containers/json?all=1", "GET /containers/json"),
    ("GET", f"{SOCKET}/images/envkit/testsvc:60bc/json", "GET /images/{id}/json"),
    ("DELETE", "http://127.0.0.1:2375/v1.41/networks/envkit-s-w-demo-1", "DELETE /networks/{id}"),
])
def test_calls_are_grouped_by_kind(
    bench: dict[str, ModuleType], method: str, url: str, kind: str
) -> None:
    assert bench["stacks"].call_kind(method, url) == kind


def test_summary_is_per_round(bench: dict[str, ModuleType]) -> None:
    calls = [("POST /containers/create", 0.0, 0.2), ("POST /containers/create", 0.0, 0.4),
             ("DELETE /networks/{id}", 0.0, 0.1)]
    assert bench["stacks"].summarize(calls, rounds=2) == {
        "DELETE /networks/{id}": (0.5, pytest.approx(0.05)),
        "POST /containers/create": (1.0, pytest.approx(0.3))}


def _results(envkit_work: float, pool_take: float) -> dict[str, Any]:
    def row(part: str, body: str, n: int, who: str, median: float, /, *rest: float
            ) -> dict[str, Any]:
        return {"part": part, "body": body, "workers": n, "contender": who,
                "median": median, "samples": [median], "take": rest[0] if rest else None}

    return {
        "when": "today", "machine": {"cores": "2"}, "notes": ["## notes"],
        "options": {"runs": 1, "suite_runs": 1, "tests": 12, "work": 1.0},
        "chain": {"raw": {"up": 1.0, "down": 0.5}, "envkit": {"up": 1.1, "down": 0.4}},
        "default": {"raw": {"up": 2.0, "down": 1.0}, "envkit": {"up": 1.2, "down": 1.0}},
        "suites": [row("c", "work", 2, "raw", 10.0), row("c", "work", 2, "testcontainers", 20.0),
                   row("c", "work", 2, "envkit", envkit_work, 1.5),
                   row("c", "work", 2, "envkit pool", 8.0, pool_take),
                   row("c", "trivial", 2, "raw", 10.0), row("c", "trivial", 2, "envkit", 12.0)],
    }


def test_verdicts_divide_by_the_named_baseline(bench: dict[str, ModuleType]) -> None:
    verdicts = {t: (m, ok) for t, m, ok in bench["report"].verdicts(_results(11.0, 0.05))}
    assert verdicts["default stack up <= 0.7x sequential raw"] == ("0.60x", "met")
    assert verdicts["envkit: fresh chain x 1 s at -n 2 <= 0.6x testcontainers"] == (
        "0.55x", "met")
    assert verdicts["envkit: trivial bodies at -n 2 <= 1.1x raw"] == ("1.20x", "NOT met")
    assert verdicts["pooled take <= 0.1 s (median)"][1] == "met"
    missed = {t: ok for t, _, ok in bench["report"].verdicts(_results(13.0, 0.3))}
    assert missed["envkit: fresh chain x 1 s at -n 2 <= 0.6x testcontainers"] == "NOT met"
    assert missed["pooled take <= 0.1 s (median)"] == "NOT met"


def test_report_has_tables_ratios_and_plot(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    page = tmp_path / "benchmarks.md"
    bench["report"].write(_results(11.0, 0.05), page)
    text = page.read_text()
    assert "| envkit | 1.10 | 1.10x | 0.40 | 0.80x |" in text
    assert "| work | 2 | 10.0 (1.00x) | 20.0 (2.00x) | 11.0 (1.10x) | 8.0 (0.80x) |" in text
    assert "![ratios to the raw floor](benchmarks.png)" in text
    assert page.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


def test_quick_mode_writes_nothing_unless_asked(bench: dict[str, ModuleType]) -> None:
    quick = bench["compare"].parse(["--quick"])
    assert (quick.out, quick.tests, quick.workers) == (None, 4, [2])
    full = bench["compare"].parse(["--parts", "a", "--runs", "3"])
    assert (full.parts, full.runs, full.workers) == ({"a"}, 3, [1, 2, 4])
    assert full.out.endswith("docs/benchmarks.md")

"""The soak's verdict (bench/soak.py) flags leaks and growth, and only those."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@functools.cache
def _soak() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
    spec = importlib.util.spec_from_file_location("envkit_bench_soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _figures(*, fds: int = 0, threads: int = 0, rss_kib: int = 0, left: int = 0,
             at_end: list[str] | None = None) -> dict[str, Any]:
    def sample(cycle: int, grown: bool) -> dict[str, int]:
        return {"cycle": cycle, "seconds": 1.0, "fds": 30 + fds * grown,
                "threads": 1 + threads * grown, "os_threads": 1 + threads * grown,
                "rss_kib": 40000 + rss_kib * grown, "left": left * grown}

    result = {"worker": "soak0", "samples": [sample(c, c == 3) for c in (1, 2, 3)]}
    soak = _soak()
    return {"leaked_after_a_cycle": sum(s["left"] for s in result["samples"]),
            "left_at_end": at_end or [], "growth": {"soak0": soak.growth(result, 1)}}


@pytest.mark.parametrize(("figures", "problem"), [
    (_figures(), None),
    (_figures(fds=2), None),
    (_figures(fds=3), "file descriptors grew by 3"),
    (_figures(threads=1), "threads grew by 1"),
    (_figures(rss_kib=9 * 1024), "RSS grew"),
    (_figures(left=1), "leaked: 1"),
    (_figures(at_end=["network x"]), "leaked"),
])
def test_verdict(figures: dict[str, Any], problem: str | None) -> None:
    problems = _soak().verdict(figures, fds=2, threads=0, rss_mib=8.0)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]

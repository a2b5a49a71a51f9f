"""Local stand-ins for the GitHub-only actions ci.yml uses, each saying what it did instead.

Why stand-ins and not skips: later steps read these actions' effects (setup-python's
interpreter on PATH, actions/cache's ``cache-hit`` output and restored file), so each
stand-in gives the same effect from what this machine has.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ci_local import JobRun

PYENV = Path("/root/.pyenv/versions")
CACHE = Path("/var/tmp/envkit-ci-local/cache")


def note(text: str) -> None:
    """A line that says what ci-local did in GitHub's place."""
    print(f"ci-local: {text}", flush=True)


def pick_python(version: str) -> Path:
    """The newest pyenv interpreter of *version* ('3.12' -> 3.12.x).

    :raises SystemExit: none is installed (the fix is ``pyenv install``).
    """
    found = sorted((p for p in PYENV.glob(f"{version}.*") if (p / "bin/python3").exists()),
                   key=lambda p: tuple(int(x) for x in p.name.split(".") if x.isdigit()))
    if not found:
        raise SystemExit(f"ci-local: no Python {version} in {PYENV} (pyenv install {version})")
    return found[-1]


class StandIns:
    """``uses:`` steps, by action name; *run* is the job they belong to."""

    def __init__(self, run: JobRun) -> None:
        self._run = run
        self._saves: list[tuple[str, list[str]]] = []

    def use(self, step: dict[str, Any]) -> str:
        """Stand in for one ``uses:`` step; returns its outcome."""
        action = str(step["uses"]).split("@")[0]
        with_ = {k: self._run.sub(v) for k, v in (step.get("with") or {}).items()}
        handler = {
            "actions/checkout": self._checkout, "actions/setup-python": self._setup_python,
            "actions/cache": self._cache, "actions/cache/restore": self._cache,
            "actions/upload-artifact": self._upload,
        }.get(action)
        if handler is None:
            note(f"no stand-in for {step['uses']}: add one to .ci/gh_stand_ins.py")
            return "failure (no stand-in)"
        outputs = handler(with_, save=action == "actions/cache")
        if step.get("id"):
            self._run.steps[step["id"]] = {"outputs": outputs}
        return "success (stand-in)"

    def _checkout(self, _with: dict[str, str], save: bool) -> dict[str, str]:
        note(f"actions/checkout: the work tree was copied to {self._run.workspace} "
             "(tracked and untracked files, .gitignore applied)")
        return {}

    def _setup_python(self, with_: dict[str, str], save: bool) -> dict[str, str]:
        home = pick_python(with_["python-version"])
        self._run.path_prefix[:0] = [str(home / "bin")]
        self._run.env["pythonLocation"] = str(home)
        note(f"actions/setup-python {with_['python-version']}: pyenv's {home} first on PATH "
             "(the runner's tool cache); Debian's /usr/bin/python3 stays sudo's, as Ubuntu's does")
        if with_.get("cache"):
            note(f"cache: {with_['cache']}: pip's own ~/.cache/pip stands in (kept between runs)")
        return {"python-version": home.name, "python-path": str(home / "bin/python3")}

    def _cache(self, with_: dict[str, str], save: bool) -> dict[str, str]:
        key, paths = with_.get("key", ""), with_["path"].split()
        if not key:
            note("actions/cache: no key (the job that computes it has not run here): a miss")
            return {"cache-hit": "false"}
        stored = CACHE / hashlib.sha256(key.encode()).hexdigest()[:16]
        if stored.is_dir():
            for index, path in enumerate(paths):
                shutil.copy2(stored / str(index), path)
                shutil.chown(path, "envkit-ci", "envkit-ci")
            note(f"actions/cache: restored {key} from {stored}")
            return {"cache-hit": "true", "cache-matched-key": key}
        later = " (saved after the job if it passes)" if save else ""
        note(f"actions/cache: miss for {key}{later}")
        if save:
            self._saves.append((key, paths))
        return {"cache-hit": "false"}

    def _upload(self, with_: dict[str, str], save: bool) -> dict[str, str]:
        where = self._run.run_dir / "artifacts" / with_.get("name", "artifact")
        for pattern in with_["path"].split():
            source = self._run.workspace / pattern
            if source.exists():
                shutil.copytree(source, where / pattern, dirs_exist_ok=True)
        kept = sorted(str(p.relative_to(where)) for p in where.rglob("*") if p.is_file()) \
            if where.exists() else []
        note(f"actions/upload-artifact: not uploaded; {len(kept)} files copied to {where}: "
             + ", ".join(kept[:12]))
        return {}

    def post(self) -> None:
        """actions/cache's post step: save what missed, when the job passed."""
        for key, paths in self._saves:
            if self._run.failed:
                note(f"actions/cache post: the job failed, {key} not saved")
                continue
            stored = CACHE / hashlib.sha256(key.encode()).hexdigest()[:16]
            stored.mkdir(parents=True, exist_ok=True)
            for index, path in enumerate(paths):
                shutil.copy2(path, stored / str(index))
            note(f"actions/cache post: saved {key} to {stored}")

"""The warm pool's thread imports no package: the import deadlock of issue 13, made certain.

Two threads importing one package can fail with importlib's ``_DeadlockError``
(CPython gh-83065): one imports a submodule by name, taking its lock before the
package's, while the other runs the package's ``__init__``, which imports that
submodule. ``envkit_pool_stacks`` made it happen: an xdist worker's pool thread imported
``docker.models.containers`` (through ``envkit.runtime``) while the worker's main thread
imported ``docker`` (through ``envkit._engine``). Whether it happens depends on timing,
so these tests check the condition instead, every time: after ``Envkit.prepare``
returned, what the pool's thread imports first must be plain standard-library modules,
which have no package lock to hold while waiting for another.

A kit's factories import their own modules when called: the kit names them in
``Kit.imports`` and ``Envkit.prepare`` imports those too.

Each case runs in a fresh interpreter (nothing imported yet) that aims at an unreachable
engine: the spare's start resolves the stack, makes it and fails at the connection.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from envkit.errors import EnvkitError
from envkit.kits import Kit, Registry

#: Records the thread that first imported each module; prints those of the pool's thread.
SCRIPT = """
import json, sys, threading, time

first = {}
sys.addaudithook(lambda event, args: event == "import"
                 and first.setdefault(args[0], threading.current_thread().name))

from envkit.config import Settings
from envkit.session import Envkit

environ = {"DOCKER_HOST": "tcp://127.0.0.1:9"}
kit = Envkit(settings=Settings.from_env(environ), environ=environ, session="imports",
             pool=1)
kit.prepare(sys.argv[1])
deadline = time.monotonic() + 60
while not kit._pool.refused and time.monotonic() < deadline:  # the start has failed
    time.sleep(0.02)
refused = kit._pool.refused
kit.close_pool(60)
print(json.dumps({"refused": {str(k): v for k, v in refused.items()},
                  "pool": sorted(m for m, t in first.items() if t.startswith("envkit-pool"))}))
"""


def _pool_thread_imports(ref: str) -> list[str]:
    """The modules first imported on the pool's thread while it starts a spare of *ref*."""
    run = subprocess.run([sys.executable, "-c", SCRIPT, ref], capture_output=True,
                         text=True, timeout=120, check=True)
    found = json.loads(run.stdout.splitlines()[-1])
    # The spare's start ran up to the engine: otherwise nothing was imported to check.
    assert "does not answer" in found["refused"].get(ref, ""), found
    return list(found["pool"])


def _packages(modules: list[str]) -> list[str]:
    return [m for m in modules if "." in m or m not in sys.stdlib_module_names]


def test_a_core_stack_started_at_worker_start_leaves_the_pool_thread_no_package() -> None:
    # Without Envkit.prepare's imports: envkit.runtime, docker, docker.models.containers...
    assert _packages(_pool_thread_imports("demo")) == []


def test_a_kit_stack_started_at_worker_start_leaves_the_pool_thread_no_package() -> None:
    # Without the camera kit's Kit.imports: envkit.camera.stack, jwt, cryptography.x509...
    assert _packages(_pool_thread_imports("default")) == []


def test_a_kit_naming_a_module_that_does_not_import_is_an_error_naming_the_kit() -> None:
    registry = Registry([Kit(name="broken", imports=("envkit.no_such_module",))])
    with pytest.raises(EnvkitError, match=re.escape("kit 'broken' names 'envkit.no_such_module'")):
        registry.import_modules()

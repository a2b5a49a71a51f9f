"""The package's one ``__all__`` lists exactly its public names, and importing is inert."""

from __future__ import annotations

import subprocess
import sys

import envkit
from envkit import camera


def test_all_is_sorted_unique_and_importable() -> None:
    assert envkit.__all__ == sorted(set(envkit.__all__))
    for name in envkit.__all__:
        assert getattr(envkit, name) is not None


def test_every_public_attribute_is_listed() -> None:
    """Nothing public beyond ``__all__``; its names load lazily, so load them all first."""
    for name in envkit.__all__:
        getattr(envkit, name)
    public = {
        name for name, value in vars(envkit).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("envkit")
    }
    assert public == set(envkit.__all__)


def test_import_needs_no_engine() -> None:
    """Importing with an unroutable DOCKER_HOST must neither fail nor wait on a connection."""
    code = "import envkit, envkit.plugin, envkit.cli; print('imported')"
    env = {"DOCKER_HOST": "tcp://192.0.2.1:1", "PATH": "/usr/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=20, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "imported"), out.stderr


def test_the_camera_kits_all_is_unique_and_importable() -> None:
    assert len(camera.__all__) == len(set(camera.__all__))
    assert set(camera.__all__) == set(camera._EXPORTS)
    for name in camera.__all__:
        assert getattr(camera, name) is not None


def test_importing_the_packages_and_plugins_imports_nothing_heavy() -> None:
    code = ("import sys, envkit, envkit.plugin, envkit.camera, envkit.camera.plugin\n"
            "heavy = ('docker', 'testcontainers', 'yaml', 'websockets', 'jwt', 'tenacity', "
            "'requests')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin"},
                         capture_output=True, text=True, timeout=20, check=False)
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr

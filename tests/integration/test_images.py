"""envkit.images against the real engine: build once, skip after, and one build across processes.

Every image these tests build gets a fresh, unique context, so each run really builds; each
tag created is removed at the end (by tag only). The base image is machine-wide cache and is
left in place (it is bootstrapped here only if this machine has none yet).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from envkit.config import Settings
from envkit.errors import ImageBuildError
from envkit.images import LABEL_HASH, LABEL_IMAGE, BuildRef, ImageBuilder

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from pathlib import Path
import docker
from envkit.images import BuildRef, ImageBuilder
lines = []
builder = ImageBuilder(client=docker.from_env(), images_dir=Path(sys.argv[1]),
                       lock_dir=Path(sys.argv[2]), progress=lines.append)
tag = builder.ensure(BuildRef(name="tiny"))
built = any(line.startswith("building ") for line in lines)
waited = any(line.startswith("waiting ") for line in lines)
print("BUILT" if built else "CACHED", "WAITED" if waited else "-", tag)
"""


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        engine = docker.from_env(timeout=120)
        engine.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"integration tests need the Docker engine, which does not answer: {exc}\n"
            "  fix: start dockerd, or opt out explicitly with -m 'not integration'",
            pytrace=False,
        )
    yield engine
    engine.close()


@pytest.fixture
def created(client: docker.DockerClient) -> Iterator[list[str]]:
    """Tags the test created; each is removed afterwards, and nothing else is."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_image(tag)


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    """A private images dir: the project's base package list plus a unique tiny image."""
    root = tmp_path / "images"
    shutil.copytree(REPO / "images" / "base", root / "base")
    tiny = root / "tiny"
    tiny.mkdir()
    (tiny / "Dockerfile").write_text(
        "ARG BASE_IMAGE=envkit/base:bookworm\nFROM ${BASE_IMAGE}\n"
        "COPY nonce.txt /nonce.txt\nRUN sleep 2 && cat /nonce.txt\n"
    )
    (tiny / "nonce.txt").write_text(uuid.uuid4().hex)
    return root


#: The machine-wide lock dir the plugin uses: a private one would let this run bootstrap the
#: base concurrently with another run and swap its ID (and so every tag) mid-test.
LOCK_DIR = Settings.from_env(os.environ).lock_dir


def builder_for(
    client: docker.DockerClient, images_dir: Path, lines: list[str] | None = None
) -> ImageBuilder:
    return ImageBuilder(
        client=client,
        images_dir=images_dir,
        lock_dir=LOCK_DIR,
        progress=None if lines is None else lines.append,
    )


def test_build_once_then_cached(
    client: docker.DockerClient, images_dir: Path, created: list[str]
) -> None:
    first: list[str] = []
    tag = builder_for(client, images_dir, first).ensure(BuildRef(name="tiny"))
    created.append(tag)
    assert any(line.startswith("Step ") for line in first), first
    image = client.api.inspect_image(tag)
    labels = image["Config"]["Labels"]
    assert labels[LABEL_IMAGE] == "tiny"
    assert labels[LABEL_HASH].startswith(tag.rsplit(":", 1)[1])

    again: list[str] = []
    assert builder_for(client, images_dir, again).ensure(BuildRef(name="tiny")) == tag
    assert again == [], "a cached ensure must not build"
    after = client.api.inspect_image(tag)
    assert (after["Id"], after["Created"]) == (image["Id"], image["Created"])


def test_two_processes_build_once(
    client: docker.DockerClient, images_dir: Path, created: list[str]
) -> None:
    builder_for(client, images_dir).ensure_base()  # keep a first-ever bootstrap out of the race
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", CHILD, str(images_dir), str(LOCK_DIR)]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    outcomes = sorted(out.split()[0] for out, _ in results)
    tags = {out.split()[2] for out, _ in results}
    created.extend(tags)
    assert outcomes == ["BUILT", "CACHED"], results
    assert len(tags) == 1


def test_failed_build_carries_the_log(
    client: docker.DockerClient, images_dir: Path, created: list[str]
) -> None:
    (images_dir / "tiny" / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about-to-fail && false\n"
    )
    builder = builder_for(client, images_dir)
    created.append(builder.tag_for(BuildRef(name="tiny")))
    with pytest.raises(ImageBuildError) as info:
        builder.ensure(BuildRef(name="tiny"))
    assert any("about-to-fail" in line for line in info.value.build_log)
    assert "non-zero code" in str(info.value)

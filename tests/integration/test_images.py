"""The image builder against the real engine.

Build once and skip after, one build across processes, Docker's context rules (symlinks,
``.dockerignore``, a Dockerfile outside the context, a target stage), PyPI wheels installed
offline, and two projects sharing an image name on one engine without touching each other.

Every test builds under a project name unique to this run, so each run really builds and
the cleanup can remove exactly its own images (by that project's label). Bases are
machine-wide cache and are left in place: they take about a minute each to bootstrap.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from envkit.config import Settings
from envkit.errors import ImageBuildError, ImageError
from envkit.images import LABEL_BASE, LABEL_HASH, LABEL_IMAGE, LABEL_PROJECT, ImageBuilder
from envkit.imageset import list_images, prune_images
from envkit.spec import Build

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: The machine-wide lock and cache dirs the plugin uses: a private lock dir would let this
#: run bootstrap a base concurrently with another run.
SETTINGS = Settings.from_env(os.environ)
TINY = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY nonce.txt /nonce.txt\nRUN cat /nonce.txt\n"

CHILD = """
import sys
from pathlib import Path
import docker
from envkit.images import ImageBuilder
from envkit.spec import Build
lines = []
builder = ImageBuilder(client=docker.from_env(), root=Path(sys.argv[1]), project=sys.argv[2],
                       lock_dir=Path(sys.argv[3]), cache_dir=Path(sys.argv[4]),
                       progress=lines.append)
tag = builder.ensure(Build(name="tiny"))
built = any(line.startswith("building ") for line in lines)
print("BUILT" if built else "CACHED", tag)
"""


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    try:
        engine = docker.from_env(timeout=300)
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
def projects(client: docker.DockerClient) -> Iterator[Callable[[], str]]:
    """Hands out project names unique to this test; removes their images afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(f"itest-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield new
    for project in made:
        found = client.api.images(filters={"label": f"{LABEL_PROJECT}={project}"})
        # Newest first: a final image before the -deps layer it is built on.
        for image in sorted(found, key=lambda i: -int(i["Created"])):
            for tag in image.get("RepoTags") or []:
                with contextlib.suppress(docker.errors.NotFound):
                    client.api.remove_image(tag)


def make_project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def builder_for(
    client: docker.DockerClient, root: Path, project: str, lines: list[str] | None = None,
    *, cache_dir: Path = SETTINGS.cache_dir, base_packages: tuple[str, ...] = (),
) -> ImageBuilder:  # fmt: skip
    return ImageBuilder(client=client, root=root, project=project, lock_dir=SETTINGS.lock_dir,
                        cache_dir=cache_dir, base_packages=base_packages,
                        progress=None if lines is None else lines.append)


def run_in(client: docker.DockerClient, tag: str, *cmd: str) -> str:
    out: bytes = client.containers.run(tag, list(cmd), remove=True, network_disabled=True)
    return out.decode().strip()


def test_build_once_then_cached(
    client: docker.DockerClient, tmp_path: Path, projects: Callable[[], str]
) -> None:
    root = make_project(tmp_path, {"images/tiny/Dockerfile": TINY,
                                   "images/tiny/nonce.txt": uuid.uuid4().hex})
    project = projects()
    first: list[str] = []
    tag = builder_for(client, root, project, first).ensure(Build(name="tiny"))
    assert tag.startswith(f"envkit/{project}/tiny:")
    assert any(line.startswith("Step ") for line in first), first
    image = client.api.inspect_image(tag)
    labels = image["Config"]["Labels"]
    assert (labels[LABEL_IMAGE], labels[LABEL_PROJECT]) == ("tiny", project)
    assert labels[LABEL_HASH].startswith(tag.rsplit(":", 1)[1])
    assert labels[LABEL_BASE].startswith("envkit/base:bookworm-")

    again: list[str] = []
    assert builder_for(client, root, project, again).ensure(Build(name="tiny")) == tag
    assert again == [], "a cached ensure must not build"
    after = client.api.inspect_image(tag)
    assert (after["Id"], after["Created"]) == (image["Id"], image["Created"])


def test_two_processes_build_once(
    client: docker.DockerClient, tmp_path: Path, projects: Callable[[], str]
) -> None:
    root = make_project(tmp_path, {"images/tiny/Dockerfile": TINY.replace("cat", "sleep 2; cat"),
                                   "images/tiny/nonce.txt": uuid.uuid4().hex})
    project = projects()
    builder_for(client, root, project).ensure_base()  # a first-ever bootstrap stays out of it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", CHILD, str(root), project, str(SETTINGS.lock_dir),
            str(SETTINGS.cache_dir)]  # fmt: skip
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]  # fmt: skip
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    assert sorted(out.split()[0] for out, _ in results) == ["BUILT", "CACHED"], results
    assert len({out.split()[1] for out, _ in results}) == 1


def test_failed_build_carries_the_log(
    client: docker.DockerClient, tmp_path: Path, projects: Callable[[], str]
) -> None:
    root = make_project(tmp_path, {"images/tiny/Dockerfile": "ARG BASE_IMAGE\n"
                                   "FROM ${BASE_IMAGE}\nRUN echo about-to-fail && false\n"})
    with pytest.raises(ImageBuildError) as info:
        builder_for(client, root, projects()).ensure(Build(name="tiny"))
    assert any("about-to-fail" in line for line in info.value.build_log)
    assert "non-zero code" in str(info.value)


def test_context_rules_as_docker_has_them(
    client: docker.DockerClient, tmp_path: Path, projects: Callable[[], str]
) -> None:
    """A linked directory arrives as a link, .dockerignore (with `!`) applies, -f and target."""
    root = make_project(tmp_path, {
        "src/real/x.txt": "linked", "src/run.log": "no", "src/keep.log": "yes",
        "src/.dockerignore": "*.log\n!keep.log\n",
        "deploy/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS one\nCOPY . /ctx/\n"
        "RUN test -L /ctx/data && test -f /ctx/data/x.txt && test ! -e /ctx/run.log "
        "&& test -f /ctx/keep.log && echo one > /stage\nFROM one AS two\nRUN echo two > /stage\n",
    })  # fmt: skip
    (root / "src" / "data").symlink_to("real")
    build = Build(name="rules", context="src", dockerfile="../deploy/Dockerfile", target="one")
    tag = builder_for(client, root, projects()).ensure(build)
    assert run_in(client, tag, "cat", "/stage") == "one"
    assert run_in(client, tag, "readlink", "/ctx/data") == "real"


def test_requirements_are_installed_offline_from_host_wheels(
    client: docker.DockerClient, tmp_path: Path, projects: Callable[[], str]
) -> None:
    root = make_project(tmp_path / "proj", {
        "requirements.txt": "websockets>=14\nPyJWT>=2.8\n",
        "images/svc/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN python3 -c "
        "'import websockets, jwt; print(websockets.__version__, jwt.__version__)'\n",
    })  # fmt: skip
    lines: list[str] = []
    builder = builder_for(client, root, projects(), lines, cache_dir=tmp_path / "cache")
    tag = builder.ensure(Build(name="svc", requirements="requirements.txt"))
    assert any(line.startswith("downloading wheels for") for line in lines)
    versions = run_in(client, tag, "python3", "-c",
                      "import websockets, jwt, sys; print(websockets.__version__, "
                      "jwt.__version__, sys.prefix)").split()  # fmt: skip
    assert int(versions[0].split(".")[0]) >= 14, versions
    assert tuple(int(p) for p in versions[1].split(".")[:2]) >= (2, 8), versions
    assert versions[2] == "/opt/envkit/venv"
    assert builder.tag_for(Build(name="svc", requirements="requirements.txt")) == tag


def test_pip_failure_names_the_requirements_file(
    client: docker.DockerClient, tmp_path: Path, projects: Callable[[], str]
) -> None:
    root = make_project(tmp_path, {"reqs.txt": "envkit-surely-no-such-package-zz==0.0.1\n",
                                   "images/svc/Dockerfile": TINY})
    builder = builder_for(client, root, projects(), cache_dir=tmp_path / "cache")
    with pytest.raises(ImageError) as info:
        builder.ensure(Build(name="svc", requirements="reqs.txt"))
    assert str(root / "reqs.txt") in str(info.value) and "envkit-surely" in str(info.value)
    assert "wheel" in info.value.fix


def test_two_projects_share_a_name_but_never_each_others_images(
    client: docker.DockerClient, tmp_path: Path, projects: Callable[[], str]
) -> None:
    """The issue's "done when": different base lists, one name in common, on one engine."""
    files = {"images/camera-service/Dockerfile": TINY}
    root_a = make_project(tmp_path / "a", {**files, "images/camera-service/nonce.txt": "A"})
    root_b = make_project(tmp_path / "b", {**files, "images/camera-service/nonce.txt": "B"})
    pa, pb = projects(), projects()
    build = Build(name="camera-service")
    a_lines: list[str] = []
    a = builder_for(client, root_a, pa, a_lines)
    tag_a = a.ensure(build)
    id_a = client.api.inspect_image(tag_a)["Id"]
    b = builder_for(client, root_b, pb, base_packages=("less",))
    tag_b = b.ensure(build)
    assert a.base_tag != b.base_tag and tag_a != tag_b
    assert tag_a.startswith(f"envkit/{pa}/") and tag_b.startswith(f"envkit/{pb}/")

    (root_b / "images/camera-service/nonce.txt").write_text("B2")  # B's first tag goes stale
    tag_b2 = b.ensure(build)
    removed = prune_images(client, keep={tag_b2}, project=pb)
    assert removed == [tag_b]

    again: list[str] = []
    assert builder_for(client, root_a, pa, again).ensure(build) == tag_a
    assert again == [], f"project A rebuilt after project B worked: {again}"
    assert client.api.inspect_image(tag_a)["Id"] == id_a
    for base in (a.base_tag, b.base_tag):
        client.api.inspect_image(base)  # both bases are still there
    mine = [i.tag for i in list_images(client, project=pa)]
    assert mine == sorted([a.base_tag, tag_a])

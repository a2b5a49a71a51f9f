"""Pure logic of the image builder: context listing and hashing, tags, bases, wheels, prune.

A hand-written fake of the docker low-level API stands in for the engine, in the manner of
xdist's ``MockNode``: it records calls and answers from a dict of known images.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from envkit import _rootfs, _wheels, images
from envkit._context import OUTSIDE_DOCKERFILE, context_tar, hash_context, list_context
from envkit._images_naming import (
    LABEL_BASE,
    LABEL_PACKAGES,
    LABEL_PROJECT,
    base_tag,
    fold_project,
    packages_digest,
)
from envkit.errors import EngineError, ImageBuildError, ImageError
from envkit.images import ImageBuilder
from envkit.imageset import list_images, prune_images, statuses
from envkit.spec import Build

BASE_ID = "sha256:" + "b" * 64
CORE = _rootfs.core_packages()


class FakeApi:
    """Answers inspect/build/tag/images/remove like the engine, from ``self.known``."""

    def __init__(self, images: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.known: dict[str, dict[str, Any]] = dict(images or {})
        self.calls: list[str] = []
        self.builds: list[dict[str, Any]] = []
        self.members: list[list[tarfile.TarInfo]] = []
        self.build_output: list[dict[str, Any]] = [{"stream": "Step 1/2 : FROM base\n"}]

    def inspect_image(self, ref: str) -> dict[str, Any]:
        self.calls.append(f"inspect {ref}")
        if ref not in self.known:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return self.known[ref]

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(f"build {kwargs['tag']}")
        self.builds.append(kwargs)
        with tarfile.open(fileobj=kwargs["fileobj"]) as tar:
            self.members.append(tar.getmembers())
        if not any("error" in c for c in self.build_output):
            self.known[kwargs["tag"]] = {"Id": "sha256:" + "c" * 64, "Config": {}}
        return iter(self.build_output)

    def tag(self, image: str, repository: str, tag: str) -> bool:
        self.calls.append(f"tag {image} {repository}:{tag}")
        self.known[f"{repository}:{tag}"] = self.known[image]
        return True

    def pull(self, ref: str) -> None:
        self.calls.append(f"pull {ref}")
        raise docker.errors.NotFound("no registry")

    def info(self) -> dict[str, Any]:
        return {"Architecture": "x86_64"}

    def remove_image(self, ref: str) -> None:
        self.calls.append(f"remove {ref}")


class FakeClient:
    def __init__(self, api: Any) -> None:
        self.api = api


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project root with ``images/svc`` on the base."""
    project = tmp_path / "proj"
    svc = project / "images" / "svc"
    svc.mkdir(parents=True)
    (svc / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY app.py /app/\n")
    (svc / "app.py").write_text("print('hi')\n")
    return project


def make_builder(root: Path, api: FakeApi, tmp_path: Path, **kw: Any) -> ImageBuilder:
    kw.setdefault("project", "proj")
    return ImageBuilder(client=FakeClient(api), root=root, lock_dir=tmp_path / "locks",
                        cache_dir=tmp_path / "cache", **kw)


def with_base(api: FakeApi, packages: tuple[str, ...] = CORE) -> FakeApi:
    record = {"Id": BASE_ID, "Config": {"Labels": {LABEL_PACKAGES: packages_digest(packages)}}}
    api.known[base_tag("bookworm", packages)] = record
    return api


def digest(context: Path, args: Mapping[str, str] | None = None, base: str = "x") -> str:
    ctx = list_context(context, context / "Dockerfile")
    return hash_context(ctx, args=args or {}, base=base)


# --- context: listing, .dockerignore, symlinks, hash ---------------------------------------


def test_hash_is_stable_and_independent_of_location(root: Path, tmp_path: Path) -> None:
    ctx = root / "images" / "svc"
    copy = tmp_path / "elsewhere" / "svc"
    shutil.copytree(ctx, copy)
    assert digest(ctx) == digest(ctx) == digest(copy)
    assert re.fullmatch(r"[0-9a-f]{64}", digest(ctx))


def test_hash_changes_with_content_mode_name_args_and_base(root: Path) -> None:
    ctx = root / "images" / "svc"
    before = digest(ctx)
    assert digest(ctx, {"A": "1"}) not in (before, digest(ctx, {"A": "2"}))
    assert digest(ctx, {"A": "1B=2"}) != digest(ctx, {"A": "1", "B": "2"})
    assert digest(ctx, base="y") != before
    (ctx / "app.py").chmod(0o755)
    after_mode = digest(ctx)
    assert after_mode != before
    (ctx / "app.py").write_text("print('bye')\n")
    assert digest(ctx) != after_mode
    (ctx / "app.py").rename(ctx / "main.py")
    assert digest(ctx) not in (before, after_mode)
    with_file = digest(ctx)
    (ctx / "empty").mkdir()
    assert digest(ctx) != with_file  # an empty directory is sent, so it counts


def test_dockerignore_follows_docker_rules_including_exceptions(root: Path) -> None:
    ctx = root / "images" / "svc"
    (ctx / ".dockerignore").write_text("# notes\ndocs\n*.log\n!keep.log\n**/secret.txt\n")
    (ctx / "docs").mkdir()
    (ctx / "docs" / "x.md").write_text("x")
    (ctx / "run.log").write_text("x")
    (ctx / "keep.log").write_text("x")
    (ctx / "deep" / "er").mkdir(parents=True)
    (ctx / "deep" / "er" / "secret.txt").write_text("x")
    listed = list_context(ctx, ctx / "Dockerfile").entries
    assert listed == (".dockerignore", "Dockerfile", "app.py", "deep", "deep/er", "keep.log")


def test_tool_caches_are_left_out_unless_reincluded(root: Path) -> None:
    ctx = root / "images" / "svc"
    before = digest(ctx)
    (ctx / "__pycache__").mkdir()
    (ctx / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0junk")
    (ctx / "stray.pyc").write_bytes(b"\0junk")
    (ctx / ".pytest_cache").mkdir()
    assert digest(ctx) == before
    (ctx / ".dockerignore").write_text("!stray.pyc\n")
    assert "stray.pyc" in list_context(ctx, ctx / "Dockerfile").entries


def test_symlinks_are_sent_as_links_and_hashed_by_target(root: Path) -> None:
    ctx = root / "images" / "svc"
    (root / "shared").mkdir()
    (root / "shared" / "lib.py").write_text("x = 1\n")
    (ctx / "lib").symlink_to("../../shared")
    (ctx / "alias.py").symlink_to("app.py")
    ctx_listed = list_context(ctx, ctx / "Dockerfile")
    assert "lib" in ctx_listed.entries and "alias.py" in ctx_listed.entries
    assert "lib/lib.py" not in ctx_listed.entries  # a linked directory is not followed
    with tarfile.open(fileobj=context_tar(ctx_listed)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["lib"].issym() and members["lib"].linkname == "../../shared"
    assert members["alias.py"].issym() and members["alias.py"].linkname == "app.py"
    before = digest(ctx)
    (ctx / "lib").unlink()
    (ctx / "lib").symlink_to("../../other")
    assert digest(ctx) != before


def test_dockerfile_outside_the_context_travels_under_a_private_name(tmp_path: Path) -> None:
    ctx = tmp_path / "src"
    ctx.mkdir()
    (ctx / "app.py").write_text("x")
    dockerfile = tmp_path / "docker" / "Dockerfile.svc"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM scratch\n")
    listed = list_context(ctx, dockerfile)
    assert listed.dockerfile == OUTSIDE_DOCKERFILE
    with tarfile.open(fileobj=context_tar(listed)) as tar:
        assert tar.extractfile(OUTSIDE_DOCKERFILE).read() == b"FROM scratch\n"  # type: ignore[union-attr]
    first = hash_context(listed, args={}, base="")
    dockerfile.write_text("FROM scratch\nLABEL a=b\n")
    assert hash_context(list_context(ctx, dockerfile), args={}, base="") != first


# --- tags, namespaces, planning -----------------------------------------------------------


def test_tag_carries_the_project_and_labels_name_it(root: Path, tmp_path: Path) -> None:
    api = with_base(FakeApi())
    tag = make_builder(root, api, tmp_path).ensure(Build(name="svc", args={"X": "1"}))
    assert re.fullmatch(r"envkit/proj/svc:[0-9a-f]{12}", tag)
    (build,) = api.builds
    assert build["buildargs"] == {"X": "1", "BASE_IMAGE": base_tag("bookworm", CORE)}
    assert build["labels"] == {"envkit.image": "svc", LABEL_PROJECT: "proj",
                               "envkit.context-hash": build["labels"]["envkit.context-hash"],
                               LABEL_BASE: base_tag("bookworm", CORE)}
    assert build["labels"]["envkit.context-hash"].startswith(tag.split(":")[1])


def test_two_projects_same_name_never_share_a_tag(root: Path, tmp_path: Path) -> None:
    api = with_base(FakeApi())
    a = make_builder(root, api, tmp_path, project="alpha").tag_for(Build(name="svc"))
    b = make_builder(root, api, tmp_path, project="beta").tag_for(Build(name="svc"))
    kit = make_builder(root, api, tmp_path).tag_for(Build(name="svc", namespace="camera-kit"))
    assert a is not None and b is not None and kit is not None
    assert a.startswith("envkit/alpha/svc:") and b.startswith("envkit/beta/svc:")
    assert kit.startswith("envkit/camera-kit/svc:")


def test_names_are_checked_and_projects_folded(root: Path, tmp_path: Path) -> None:
    assert fold_project("My Project_2") == "my-project-2"
    assert fold_project("ok.name_1") == "ok.name_1"
    builder = make_builder(root, with_base(FakeApi()), tmp_path, project="My Proj")
    assert builder.project == "my-proj"
    with pytest.raises(ImageError, match="namespace 'Bad/NS'"):
        builder.tag_for(Build(name="svc", namespace="Bad/NS"))


def test_relative_context_and_dockerfile_resolve_against_root(root: Path, tmp_path: Path) -> None:
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("x")
    (root / "deploy").mkdir()
    (root / "deploy" / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    api = with_base(FakeApi())
    build = Build(name="app", context="src", dockerfile="../deploy/Dockerfile", target="prod")
    make_builder(root, api, tmp_path).ensure(build)
    (sent,) = api.builds
    assert sent["dockerfile"] == OUTSIDE_DOCKERFILE and sent["target"] == "prod"
    assert {m.name for m in api.members[0]} == {"main.py", OUTSIDE_DOCKERFILE}


def test_missing_context_or_dockerfile_names_it_and_the_fix(root: Path, tmp_path: Path) -> None:
    builder = make_builder(root, FakeApi(), tmp_path)
    with pytest.raises(ImageError) as info:
        builder.ensure(Build(name="nope"))
    assert "images/nope" in str(info.value) and "svc" in str(info.value)
    assert "fix:" in str(info.value)
    with pytest.raises(ImageError, match=r"no Dockerfile at .*Dockerfile\.dev") as info:
        builder.ensure(Build(name="svc", dockerfile="Dockerfile.dev"))
    assert "ARG BASE_IMAGE" in info.value.fix


# --- ensure: skip, build, errors ----------------------------------------------------------


def test_ensure_skips_existing_tag_with_one_inspect_after_base(root: Path, tmp_path: Path) -> None:
    api = with_base(FakeApi())
    builder = make_builder(root, api, tmp_path)
    tag = builder.tag_for(Build(name="svc"))
    assert tag is not None
    api.known[tag] = {"Id": "sha256:" + "d" * 64}
    api.calls.clear()
    assert builder.ensure(Build(name="svc")) == tag
    assert api.calls == [f"inspect {tag}"]


def test_resolve_inspects_a_tag_once_per_builder_unless_asked_to_recheck(
        root: Path, tmp_path: Path) -> None:
    """Stacks of one process share a builder: a tag seen present costs no more inspects.

    ``recheck`` is the runtime's call after "No such image" at create: it asks the engine
    again and rebuilds a tag removed since (here: removed behind the builder's back).
    """
    api = with_base(FakeApi({"redis:7": {"Id": "sha256:" + "f" * 64}}))
    builder = make_builder(root, api, tmp_path)
    tag = builder.resolve(Build(name="svc"))
    assert builder.resolve("redis:7") == "redis:7"
    api.calls.clear()
    assert builder.resolve(Build(name="svc")) == tag and builder.resolve("redis:7") == "redis:7"
    assert api.calls == []
    del api.known[tag]
    assert builder.resolve(Build(name="svc"), recheck=True) == tag
    assert api.calls[0] == f"inspect {tag}" and f"build {tag}" in api.calls, api.calls
    api.calls.clear()
    builder.resolve("redis:7", recheck=True)
    assert api.calls == ["inspect redis:7"]


def test_user_base_image_is_used_without_bootstrapping(root: Path, tmp_path: Path) -> None:
    api = FakeApi({"python:3.12-slim": {"Id": "sha256:" + "e" * 64}})
    make_builder(root, api, tmp_path).ensure(
        Build(name="svc", args={"BASE_IMAGE": "python:3.12-slim"}))
    assert api.builds[0]["buildargs"] == {"BASE_IMAGE": "python:3.12-slim"}
    assert not any("envkit/base" in c for c in api.calls)


def test_failed_build_raises_with_log(root: Path, tmp_path: Path) -> None:
    api = with_base(FakeApi())
    api.build_output = [
        {"stream": "Step 2/3 : RUN false\n"},
        {"stream": " ---> Running in 123\n"},
        {"error": "The command '/bin/sh -c false' returned a non-zero code: 1"},
    ]
    with pytest.raises(ImageBuildError) as info:
        make_builder(root, api, tmp_path).ensure(Build(name="svc"))
    assert info.value.build_log == ["Step 2/3 : RUN false", "---> Running in 123"]
    assert "non-zero code" in str(info.value)


def test_tag_for_never_builds_bootstraps_or_pulls(root: Path, tmp_path: Path) -> None:
    api = FakeApi()
    builder = make_builder(root, api, tmp_path)
    status = builder.status(Build(name="svc"))
    assert status.tag is None and not status.present
    assert builder.base_tag in status.problem and "not on this engine" in status.problem
    ext = builder.status(Build(name="svc", args={"BASE_IMAGE": "python:3"}))
    assert ext.tag is None
    assert all(c.startswith("inspect ") for c in api.calls)


# --- bases keyed by package set -----------------------------------------------------------


def test_base_package_sets(root: Path, tmp_path: Path) -> None:
    assert {"python3", "python3-pip", "python3-venv", "ca-certificates"} <= set(CORE)
    assert "ffmpeg" not in CORE
    builder = make_builder(root, FakeApi(), tmp_path, base_packages=("curl",))
    own = builder.packages_for(Build(name="svc", packages=("ffmpeg",)))
    kit = builder.packages_for(Build(name="svc", packages=("ffmpeg",), namespace="kit"))
    assert set(own) == {*CORE, "ffmpeg", "curl"} and set(kit) == {*CORE, "ffmpeg"}
    assert builder.base_tag == base_tag("bookworm", (*CORE, "curl"))
    assert re.fullmatch(r"envkit/base:bookworm-[0-9a-f]{12}", builder.base_tag)
    assert base_tag("bookworm", ["b", "a", "a"]) == base_tag("bookworm", ["a", "b"])
    assert base_tag("bookworm", ["a"]) != base_tag("bookworm", ["a", "b"])


def test_base_bootstrapped_once_per_package_set(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boots: list[Any] = []

    def fake_bootstrap(api: FakeApi, **kw: Any) -> str:
        boots.append(kw)
        want = kw["changes"][0].split("=", 1)[1]
        api.known[f"sha256:new{len(boots)}"] = {"Id": f"sha256:new{len(boots)}",
                                                "Config": {"Labels": {LABEL_PACKAGES: want}}}
        return f"sha256:new{len(boots)}"

    monkeypatch.setattr(_rootfs, "bootstrap_and_import", fake_bootstrap)
    api = FakeApi()
    builder = make_builder(root, api, tmp_path)
    tag = builder.ensure_base()
    assert tag == builder.base_tag and boots[0]["packages"] == CORE
    assert f"tag sha256:new1 {tag}" in api.calls
    other = make_builder(root, api, tmp_path, base_packages=("curl",)).ensure_base()
    assert other != tag and len(boots) == 2
    make_builder(root, api, tmp_path).ensure_base()
    make_builder(root, api, tmp_path, base_packages=("curl",)).ensure(Build(name="svc"))
    assert len(boots) == 2 and api.known[tag]["Id"] == "sha256:new1"


def test_package_list_parsing() -> None:
    assert _rootfs.parse_packages("# header\nb a  # two\n\nc\n", source="x") == ("a", "b", "c")
    with pytest.raises(ImageError, match="lists no package"):
        _rootfs.parse_packages("# nothing\n", source="x")


def test_no_bootstrap_tool_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_rootfs.shutil, "which", lambda _name: None)
    with pytest.raises(ImageError) as info:
        _rootfs.bootstrap_and_import(
            FakeApi(), suite="bookworm", mirror="m", packages=["a"], changes=[], progress=print
        )
    assert "mmdebstrap" in str(info.value) and "apt-get install" in str(info.value)


def test_decode_import_reply() -> None:
    reply = '{"status":"Downloading"}\r\n{"status":"sha256:abc"}\r\n'
    assert _rootfs._decode_import(reply) == "sha256:abc"
    assert _rootfs._decode_import("garbage") == ""


# --- PyPI wheels --------------------------------------------------------------------------


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    runs: list[list[str]] = []

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        runs.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / "websockets-14.1-cp311-cp311-manylinux_2_17_x86_64.whl").write_bytes(b"w")
        (dest / "PyJWT-2.9.0-py3-none-any.whl").write_bytes(b"j")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_wheels.subprocess, "run", run)
    return runs


def test_requirements_build_a_deps_layer_from_host_wheels(
    root: Path, tmp_path: Path, fake_pip: list[list[str]]
) -> None:
    (root / "requirements.txt").write_text("websockets>=14\nPyJWT>=2.8\n")
    api = with_base(FakeApi())
    builder = make_builder(root, api, tmp_path)
    build = Build(name="svc", requirements="requirements.txt")
    assert builder.tag_for(build) is None  # not downloaded yet: unknown, and no download
    assert fake_pip == []
    tag = builder.ensure(build)
    (cmd,) = fake_pip
    assert cmd[cmd.index("--python-version") + 1] == "3.11" and "--only-binary=:all:" in cmd
    assert "manylinux2014_x86_64" in cmd and "any" in cmd
    deps, final = api.builds
    assert re.fullmatch(r"envkit/proj/svc-deps:[0-9a-f]{12}", deps["tag"])
    assert deps["buildargs"] == {"BASE_IMAGE": base_tag("bookworm", CORE)}
    names = {m.name for m in api.members[0]}
    assert {"Dockerfile", "requirements.txt", "PyJWT-2.9.0-py3-none-any.whl"} <= names
    assert final["buildargs"] == {"BASE_IMAGE": deps["tag"]} and final["tag"] == tag
    assert builder.tag_for(build) == tag
    make_builder(root, api, tmp_path).ensure(build)
    assert len(fake_pip) == 1 and len(api.builds) == 2  # wheels cached, images present
    (root / "requirements.txt").write_text("websockets>=14\n")
    assert make_builder(root, api, tmp_path).ensure(build) != tag


def test_pinned_requirements_install_exactly_what_was_downloaded(tmp_path: Path) -> None:
    house = _wheels.Wheelhouse(path=tmp_path, digest="x", wheels=(
        "PyJWT-2.9.0-py3-none-any.whl", "websockets-14.1-cp311-cp311-manylinux_2_17_x86_64.whl"))
    assert house.pinned() == "PyJWT==2.9.0\nwebsockets==14.1\n"
    assert _wheels.Target.of(suite="trixie", architecture="aarch64").platforms[0] == (
        "manylinux2014_aarch64")


def test_pip_failure_names_the_file_its_output_and_the_fix(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "requirements.txt").write_text("no-such-package-xyz==1\n")

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            cmd, 1, "", "ERROR: No matching distribution found for no-such-package-xyz==1\n")

    monkeypatch.setattr(_wheels.subprocess, "run", run)
    with pytest.raises(ImageError) as info:
        make_builder(root, with_base(FakeApi()), tmp_path).ensure(
            Build(name="svc", requirements="requirements.txt"))
    text = str(info.value)
    assert str(root / "requirements.txt") in text and "No matching distribution" in text
    assert "fix:" in text and "wheel" in info.value.fix
    assert not list((tmp_path / "cache" / "wheels").glob("*/"))  # nothing half-cached


def test_requirements_need_a_dockerfile_on_base_image(root: Path, tmp_path: Path) -> None:
    (root / "requirements.txt").write_text("x\n")
    (root / "images" / "svc" / "Dockerfile").write_text("FROM debian\n")
    with pytest.raises(ImageError, match="does not use BASE_IMAGE"):
        make_builder(root, with_base(FakeApi()), tmp_path).ensure(
            Build(name="svc", requirements="requirements.txt"))


# --- list / prune -------------------------------------------------------------------------


class ListingApi(FakeApi):
    def __init__(self, listing: list[dict[str, Any]]) -> None:
        super().__init__()
        self.listing = listing

    def images(self, *, filters: dict[str, str]) -> list[dict[str, Any]]:
        return [i for i in self.listing if filters["label"] in (i.get("Labels") or {})]


def _img(ident: str, tag: str, created: int, **labels: str) -> dict[str, Any]:
    return {"Id": ident, "RepoTags": [tag], "Labels": labels, "Size": 10, "Created": created}


BASE_A, BASE_B = "envkit/base:bookworm-aaaaaaaaaaaa", "envkit/base:bookworm-bbbbbbbbbbbb"
LISTING = [
    _img("b1", BASE_A, 1, **{LABEL_PACKAGES: "a"}),
    _img("b2", BASE_B, 1, **{LABEL_PACKAGES: "b"}),
    _img("b3", "envkit/base:bookworm-cccccccccccc", 1, **{LABEL_PACKAGES: "c"}),
    _img("a1", "envkit/alpha/svc:000000000001", 1,
         **{"envkit.image": "svc", LABEL_PROJECT: "alpha", LABEL_BASE: BASE_A}),
    _img("a2", "envkit/alpha/svc-deps:000000000002", 2,
         **{"envkit.image": "svc-deps", LABEL_PROJECT: "alpha", LABEL_BASE: BASE_A}),
    _img("a3", "envkit/alpha/svc-deps:000000000003", 3,
         **{"envkit.image": "svc-deps", LABEL_PROJECT: "alpha", LABEL_BASE: BASE_A}),
    _img("a4", "envkit/alpha/svc:000000000004", 4, **{
        "envkit.image": "svc", LABEL_PROJECT: "alpha",
        LABEL_BASE: "envkit/alpha/svc-deps:000000000002"}),
    _img("z1", "envkit/beta/svc:00000000000f", 1,
         **{"envkit.image": "svc", LABEL_PROJECT: "beta", LABEL_BASE: BASE_B}),
    _img("z2", "envkit/beta/svc:00000000001f", 2,
         **{"envkit.image": "svc", LABEL_PROJECT: "beta", LABEL_BASE: BASE_B}),
]


def test_prune_keeps_other_projects_bases_newest_and_what_kept_images_build_on() -> None:
    api = ListingApi(LISTING)
    removed = prune_images(FakeClient(api), keep={"envkit/alpha/svc:000000000004"},
                           project="alpha")
    # a4 is kept, so its deps layer a2 is too; a3 is the newest deps tag; a1 is stale.
    assert removed == ["envkit/alpha/svc:000000000001"]
    everything = prune_images(FakeClient(ListingApi(LISTING)), keep=set(), project=None)
    assert everything == ["envkit/alpha/svc:000000000001", "envkit/beta/svc:00000000000f",
                          "envkit/base:bookworm-cccccccccccc"]


def test_list_images_of_one_project_shows_its_bases_only() -> None:
    rows = list_images(FakeClient(ListingApi(LISTING)), project="beta")
    assert [r.tag for r in rows] == [BASE_B, "envkit/beta/svc:00000000000f",
                                     "envkit/beta/svc:00000000001f"]
    assert rows[0].name == "base" and rows[1].project == "beta"
    assert len(list_images(FakeClient(ListingApi(LISTING)))) == len(LISTING)


def test_statuses_cover_images_dirs_and_never_build(root: Path, tmp_path: Path) -> None:
    (root / "images" / "broken").mkdir()
    (root / "images" / "broken" / "Dockerfile").write_text("FROM x\n")
    api = FakeApi()
    found = statuses(FakeClient(api), make_builder(root, api, tmp_path))
    assert [s.name for s in found] == ["broken", "svc"]
    assert found[1].tag is None and "not on this engine" in found[1].problem
    assert not api.builds


# --- find_image: the one "present, or pull it" -------------------------------------------


class PullingApi(FakeApi):
    """Pulls succeed into ``known``, fail with ``error``, or hang until ``release`` is set."""

    def __init__(self, images: Mapping[str, dict[str, Any]] | None = None, *,
                 error: Exception | None = None, hang: bool = False) -> None:
        super().__init__(images)
        self.error = error
        self.release = threading.Event()
        if not hang:
            self.release.set()

    def pull(self, ref: str) -> None:
        self.calls.append(f"pull {ref}")
        self.release.wait(10)
        if self.error is not None:
            raise self.error
        self.known[ref] = {"Id": "sha256:" + "f" * 64}


def test_find_image_looks_without_pulling_by_default() -> None:
    api = PullingApi({"a:1": {"Id": "x"}})
    assert images.find_image(api, "a:1") == {"Id": "x"}
    assert images.find_image(api, "b:1") is None
    assert api.calls == ["inspect a:1", "inspect b:1"]


def test_find_image_pulls_when_absent_and_asked() -> None:
    api, said = PullingApi(), []
    info = images.find_image(api, "b:1", pull=True, progress=said.append)
    assert info is not None and api.calls == ["inspect b:1", "pull b:1", "inspect b:1"]
    assert said == ["pulling b:1"]


def test_find_image_reports_a_failed_pull_with_its_cause() -> None:
    api = PullingApi(error=docker.errors.NotFound("pull access denied for b"))
    with pytest.raises(EngineError, match="pull access denied") as info:
        images.find_image(api, "b:1", pull=True, pull_timeout=5)
    assert info.value.action == "pull b:1"


def test_find_image_stops_waiting_for_a_hung_pull() -> None:
    api = PullingApi(hang=True)
    started = time.monotonic()
    assert images.find_image(api, "b:1", pull=True, pull_timeout=0.2) is None
    assert time.monotonic() - started < 2
    api.release.set()


def test_builder_external_base_failure_names_the_fix(root: Path, tmp_path: Path) -> None:
    api = PullingApi(error=docker.errors.NotFound("no such host"))
    with pytest.raises(ImageError, match="pulling it failed: no such host") as info:
        make_builder(root, api, tmp_path).ensure(
            Build(name="svc", args={"BASE_IMAGE": "python:3.12-slim"}))
    assert "docker load" in info.value.fix


def test_prune_removes_a_stale_tag_built_in_the_same_second_as_the_current_one() -> None:
    same = [_img("s1", "envkit/p/svc:000000000001", 5, **{"envkit.image": "svc",
                                                            LABEL_PROJECT: "p"}),
            _img("s2", "envkit/p/svc:000000000002", 5, **{"envkit.image": "svc",
                                                            LABEL_PROJECT: "p"})]
    removed = prune_images(FakeClient(ListingApi(same)), keep={"envkit/p/svc:000000000001"},
                           project="p")
    assert removed == ["envkit/p/svc:000000000002"]

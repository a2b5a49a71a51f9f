"""Pure logic of envkit.images: context hashing, tags, planning, and the build/skip decision.

A hand-written fake of the docker low-level API stands in for the engine, in the manner of
xdist's ``MockNode``: it records calls and answers from a dict of known images.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from envkit import _rootfs, images, mediamtx
from envkit._context import context_files, hash_context
from envkit.errors import EngineError, ImageBuildError, ImageError
from envkit.images import BuildRef, ImageBuilder
from envkit.imageset import list_images, prune_images

BASE_ID = "sha256:" + "b" * 64


class FakeApi:
    """Answers inspect/build/tag/images/remove like the engine, from ``self.known``."""

    def __init__(self, images: Mapping[str, dict[str, Any]] | None = None) -> None:
        self.known: dict[str, dict[str, Any]] = dict(images or {})
        self.calls: list[str] = []
        self.builds: list[dict[str, Any]] = []
        self.build_output: list[dict[str, Any]] = [{"stream": "Step 1/2 : FROM base\n"}]

    def inspect_image(self, ref: str) -> dict[str, Any]:
        self.calls.append(f"inspect {ref}")
        if ref not in self.known:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return self.known[ref]

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(f"build {kwargs['tag']}")
        self.builds.append(kwargs)
        if not any("error" in c for c in self.build_output):
            self.known[kwargs["tag"]] = {"Id": "sha256:" + "c" * 64, "Config": {}}
        return iter(self.build_output)

    def tag(self, image: str, repository: str, tag: str) -> bool:
        self.calls.append(f"tag {image} {repository}:{tag}")
        self.known[f"{repository}:{tag}"] = self.known[image]
        return True

    def remove_image(self, ref: str) -> None:
        self.calls.append(f"remove {ref}")


class FakeClient:
    def __init__(self, api: Any) -> None:
        self.api = api


def base_record(digest: str) -> dict[str, Any]:
    return {"Id": BASE_ID, "Config": {"Labels": {images.LABEL_PACKAGES: digest}}}


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "base").mkdir(parents=True)
    (root / "base" / "packages.txt").write_text("# comment\npython3\nprocps  # inline\n")
    svc = root / "svc"
    svc.mkdir()
    (svc / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY app.py /app/\n")
    (svc / "app.py").write_text("print('hi')\n")
    return root


def make_builder(images_dir: Path, api: FakeApi, tmp_path: Path, **kw: Any) -> ImageBuilder:
    return ImageBuilder(
        client=FakeClient(api), images_dir=images_dir, lock_dir=tmp_path / "locks", **kw
    )


def with_base(api: FakeApi, images_dir: Path) -> FakeApi:
    packages = _rootfs.read_packages(images_dir / "base" / "packages.txt")
    api.known["envkit/base:bookworm"] = base_record(_rootfs.packages_digest(packages))
    return api


def digest(context: Path, args: Mapping[str, str] | None = None, base_id: str = "x") -> str:
    return hash_context(context, context_files(context), args=args or {}, base_id=base_id)


# --- context and hash ---------------------------------------------------------------------


def test_hash_is_stable_and_independent_of_location(images_dir: Path, tmp_path: Path) -> None:
    ctx = images_dir / "svc"
    copy = tmp_path / "elsewhere" / "svc"
    shutil.copytree(ctx, copy)
    assert digest(ctx) == digest(ctx) == digest(copy)
    assert re.fullmatch(r"[0-9a-f]{64}", digest(ctx))


def test_hash_changes_with_content_mode_name_args_and_base(images_dir: Path) -> None:
    ctx = images_dir / "svc"
    before = digest(ctx)
    assert digest(ctx, {"A": "1"}) != before
    assert digest(ctx, {"A": "1"}) != digest(ctx, {"A": "2"})
    assert digest(ctx, base_id="y") != before
    (ctx / "app.py").chmod(0o755)
    after_mode = digest(ctx)
    assert after_mode != before
    (ctx / "app.py").write_text("print('bye')\n")
    assert digest(ctx) != after_mode
    (ctx / "app.py").rename(ctx / "main.py")
    assert digest(ctx) not in (before, after_mode)


def test_caches_and_dockerignored_files_are_left_out(images_dir: Path) -> None:
    ctx = images_dir / "svc"
    before = digest(ctx)
    (ctx / "__pycache__").mkdir()
    (ctx / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0junk")
    (ctx / "stray.pyc").write_bytes(b"\0junk")
    assert digest(ctx) == before
    (ctx / ".dockerignore").write_text("# notes\ndocs\n*.log\n")
    (ctx / "docs").mkdir()
    (ctx / "docs" / "x.md").write_text("x")
    (ctx / "run.log").write_text("x")
    assert context_files(ctx) == (".dockerignore", "Dockerfile", "app.py")


def test_args_cannot_collide_by_concatenation(images_dir: Path) -> None:
    ctx = images_dir / "svc"
    assert digest(ctx, {"A": "1B=2"}) != digest(ctx, {"A": "1", "B": "2"})


# --- tags and planning --------------------------------------------------------------------


def test_tag_format_and_base_arg_injected(images_dir: Path, tmp_path: Path) -> None:
    api = with_base(FakeApi(), images_dir)
    builder = make_builder(images_dir, api, tmp_path)
    tag = builder.tag_for(BuildRef(name="svc"))
    expected = digest(images_dir / "svc", {"BASE_IMAGE": "envkit/base:bookworm"}, BASE_ID)
    assert tag == f"envkit/svc:{expected[:12]}"


def test_missing_dockerfile_names_it_lists_known_and_says_fix(
    images_dir: Path, tmp_path: Path
) -> None:
    builder = make_builder(images_dir, FakeApi(), tmp_path)
    with pytest.raises(ImageError) as info:
        builder.ensure(BuildRef(name="nope"))
    text = str(info.value)
    assert "envkit/nope" in text and "nope/Dockerfile" in text
    assert "images present" in text and "svc" in text
    assert "fix:" in text and "ARG BASE_IMAGE" in text


# --- ensure: skip, build, errors ----------------------------------------------------------


def test_ensure_skips_existing_tag_with_one_inspect_after_base(
    images_dir: Path, tmp_path: Path
) -> None:
    api = with_base(FakeApi(), images_dir)
    builder = make_builder(images_dir, api, tmp_path)
    tag = builder.tag_for(BuildRef(name="svc"))
    api.known[tag] = {"Id": "sha256:" + "d" * 64}
    api.calls.clear()
    assert builder.ensure(BuildRef(name="svc")) == tag
    assert api.calls == [f"inspect {tag}"]


def test_ensure_builds_missing_tag_with_labels_and_args(images_dir: Path, tmp_path: Path) -> None:
    api = with_base(FakeApi(), images_dir)
    lines: list[str] = []
    builder = make_builder(images_dir, api, tmp_path, progress=lines.append)
    tag = builder.ensure(BuildRef(name="svc", args={"X": "1"}))
    (build,) = api.builds
    assert build["tag"] == tag
    assert build["buildargs"] == {"X": "1", "BASE_IMAGE": "envkit/base:bookworm"}
    assert build["labels"][images.LABEL_IMAGE] == "svc"
    assert build["labels"][images.LABEL_HASH].startswith(tag.split(":")[1])
    assert "Step 1/2 : FROM base" in lines
    assert builder.ensure(BuildRef(name="svc", args={"X": "1"})) == tag
    assert len(api.builds) == 1


def test_user_base_image_is_used_without_bootstrapping(images_dir: Path, tmp_path: Path) -> None:
    api = FakeApi({"python:3.12-slim": {"Id": "sha256:" + "e" * 64}})
    builder = make_builder(images_dir, api, tmp_path)
    builder.ensure(BuildRef(name="svc", args={"BASE_IMAGE": "python:3.12-slim"}))
    assert api.builds[0]["buildargs"] == {"BASE_IMAGE": "python:3.12-slim"}
    assert not any("envkit/base" in c for c in api.calls)


def test_failed_build_raises_with_log(images_dir: Path, tmp_path: Path) -> None:
    api = with_base(FakeApi(), images_dir)
    api.build_output = [
        {"stream": "Step 2/3 : RUN false\n"},
        {"stream": " ---> Running in 123\n"},
        {"error": "The command '/bin/sh -c false' returned a non-zero code: 1"},
    ]
    builder = make_builder(images_dir, api, tmp_path)
    with pytest.raises(ImageBuildError) as info:
        builder.ensure(BuildRef(name="svc"))
    assert info.value.build_log == ["Step 2/3 : RUN false", "---> Running in 123"]
    assert "non-zero code" in str(info.value)


# --- base -------------------------------------------------------------------------------


def test_base_rebuilt_only_when_label_differs(
    images_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boots: list[Any] = []

    def fake_bootstrap(api: FakeApi, **kw: Any) -> str:
        boots.append(kw)
        api.known["sha256:new"] = base_record(kw["changes"][0].split("=", 1)[1])
        return "sha256:new"

    monkeypatch.setattr(_rootfs, "bootstrap_and_import", fake_bootstrap)
    api = FakeApi({"envkit/base:bookworm": base_record("stale")})
    assert make_builder(images_dir, api, tmp_path).ensure_base() == "envkit/base:bookworm"
    assert len(boots) == 1 and boots[0]["packages"] == ("procps", "python3")
    assert "tag sha256:new envkit/base:bookworm" in api.calls
    make_builder(images_dir, api, tmp_path).ensure_base()
    assert len(boots) == 1


def test_package_list_parsing_and_digest(tmp_path: Path) -> None:
    path = tmp_path / "packages.txt"
    path.write_text("# header\nb a  # two\n\nc\n")
    assert _rootfs.read_packages(path) == ("a", "b", "c")
    assert _rootfs.packages_digest(["c", "a", "b"]) == _rootfs.packages_digest(["a", "b", "c"])
    with pytest.raises(ImageError, match="no package list"):
        _rootfs.read_packages(tmp_path / "missing.txt")


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


# --- list / prune -----------------------------------------------------------------------


class ListingApi(FakeApi):
    def __init__(self, listing: list[dict[str, Any]]) -> None:
        super().__init__()
        self.listing = listing

    def images(self, **kwargs: Any) -> list[dict[str, Any]]:
        return self.listing


LISTING = [
    {"Id": "i1", "RepoTags": ["envkit/svc:0123456789ab"], "Labels": {"envkit.image": "svc"},
     "Size": 10, "Created": 0},
    {"Id": "i2", "RepoTags": ["envkit/svc:ba9876543210"], "Labels": {"envkit.image": "svc"},
     "Size": 10, "Created": 0},
    {"Id": "i3", "RepoTags": ["envkit/base:bookworm"], "Labels": {"envkit.base.packages": "x"},
     "Size": 10, "Created": 0},
    {"Id": "i4", "RepoTags": ["envkit/other:0123456789ab"], "Labels": None,
     "Size": 10, "Created": 0},
]  # fmt: skip


def test_prune_only_touches_unkept_envkit_hash_tags() -> None:
    api = ListingApi(LISTING)
    removed = prune_images(FakeClient(api), keep={"envkit/svc:ba9876543210"})
    assert removed == ["envkit/svc:0123456789ab"]
    assert api.calls == ["remove envkit/svc:0123456789ab"]


def test_list_images_one_row_per_envkit_tag() -> None:
    rows = list_images(FakeClient(ListingApi(LISTING)))
    assert [r.tag for r in rows] == sorted(t for i in LISTING for t in i["RepoTags"])
    assert rows[0].size == 10 and rows[0].created.year == 1970


# --- find_image: the one "present, or pull it" -----------------------------------------


class PullingApi(FakeApi):
    """Pulls succeed into ``known``, fail with ``error``, or hang until ``release`` is set."""

    def __init__(self, images: Mapping[str, dict[str, Any]] | None = None, *,
                 error: Exception | None = None, hang: bool = False) -> None:
        super().__init__(images)
        self.error = error
        self.release = threading.Event()
        if not hang:
            self.release.set()

    def pull(self, ref: str) -> str:
        self.calls.append(f"pull {ref}")
        self.release.wait(10)
        if self.error is not None:
            raise self.error
        self.known[ref] = {"Id": "sha256:" + "f" * 64}
        return ""


UPSTREAM = mediamtx.UPSTREAM_IMAGE


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


def test_builder_external_base_failure_names_the_fix(images_dir: Path, tmp_path: Path) -> None:
    api = PullingApi(error=docker.errors.NotFound("no such host"))
    with pytest.raises(ImageError, match="pulling it failed: no such host") as info:
        make_builder(images_dir, api, tmp_path).ensure(
            BuildRef(name="svc", args={"BASE_IMAGE": "python:3.12-slim"}))
    assert "docker load" in info.value.fix


def test_mediamtx_choice_uses_find_image() -> None:
    present = mediamtx.choose(FakeClient(PullingApi({UPSTREAM: {"Id": "x"}})), None)
    assert (present.flavour, present.reason) == ("upstream", f"{UPSTREAM} available")
    pulled = mediamtx.choose(FakeClient(PullingApi()), None)
    assert pulled.flavour == "upstream"
    offline = mediamtx.choose(FakeClient(PullingApi(
        error=docker.errors.NotFound("lookup registry-1.docker.io: no such host"))), None)
    assert offline.flavour == "standin" and "no such host" in offline.reason
    hung = PullingApi(hang=True)
    slow = mediamtx.choose(FakeClient(hung), None, pull_timeout=0.1)
    hung.release.set()
    assert (slow.flavour, slow.reason) == ("standin", f"{UPSTREAM} not pulled within 0.1s")


@pytest.mark.parametrize("setting", ["standin", "upstream", "registry.local/mediamtx:1"])
def test_mediamtx_setting_for_round_trips_without_the_engine(setting: str) -> None:
    choice = mediamtx.choose(FakeClient(None), setting)
    again = mediamtx.choose(FakeClient(None), mediamtx.setting_for(choice))
    assert again.image == choice.image


def test_default_upstream_mediamtx_build_matches_the_dockerfile_default() -> None:
    """`envkit images` hashes images/mediamtx with no args; stacks must build that same tag."""
    dockerfile = Path(__file__).parents[2] / "images" / "mediamtx" / "Dockerfile"
    assert f"ARG MEDIAMTX_IMAGE={mediamtx.UPSTREAM_IMAGE}" in dockerfile.read_text()
    assert dict(mediamtx.upstream().args) == {}
    assert dict(mediamtx.upstream("reg.local/mtx:1").args) == {"MEDIAMTX_IMAGE": "reg.local/mtx:1"}
    chosen = mediamtx.Choice(mediamtx.upstream(), "available")
    assert mediamtx.setting_for(chosen) == mediamtx.UPSTREAM_IMAGE

"""Kits: lookups by name, errors that list what exists, and kits found in a project's tree."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from envkit.config import Settings
from envkit.errors import EnvkitError, SpecError
from envkit.kits import Finding, Kit, KitContext, Registry
from envkit.spec import Build, ServiceSpec, StackSpec

IMAGE = Build(name="x")


def one_service(name: str) -> StackSpec:
    return StackSpec(name=name, services=[ServiceSpec(name="svc", image=IMAGE)])


def redis_block(ctx: KitContext, options: Mapping[str, Any]) -> ServiceSpec:
    return ServiceSpec(name=str(options.get("name", "redis")), image=IMAGE)


ALPHA = Kit(name="alpha", stacks={"web": lambda ctx: one_service("web")},
            blocks={"redis": redis_block})
BETA = Kit(name="beta", stacks={"db": lambda ctx: one_service("db")},
           doctor=(lambda ctx: [Finding(name="beta", status="ok", detail="fine")],))
CTX: Any = object()  # the factories above ask nothing of the run


def test_stacks_and_blocks_are_found_by_name_across_kits() -> None:
    registry = Registry([ALPHA, BETA])
    assert registry.stack_names == ["db", "web"] and registry.block_names == ["redis"]
    assert registry.has_stack("db") and not registry.has_stack("redis")
    assert registry.stack("web", CTX).name == "web"
    assert registry.stack("db", CTX).name == "db"
    assert registry.block("redis", CTX, {"name": "cache"}).name == "cache"
    assert [check(CTX) for kit in registry.kits for check in kit.doctor] == [
        [Finding(name="beta", status="ok", detail="fine")]]


def test_an_unknown_stack_lists_the_known_ones() -> None:
    with pytest.raises(EnvkitError) as caught:
        Registry([ALPHA, BETA]).stack("nope", CTX)
    message = str(caught.value)
    assert "'nope'" in message and "db, web" in message
    assert "fix:" in message and ".yml" in message


def test_an_unknown_block_names_the_field_and_the_known_blocks() -> None:
    with pytest.raises(SpecError) as caught:
        Registry([ALPHA, BETA]).block("mysql", CTX, {})
    message = str(caught.value)
    assert "use" in message and "mysql" in message and "redis" in message
    assert "envkit_kits" in message


def test_no_kits_say_none() -> None:
    with pytest.raises(EnvkitError, match=r"kit stacks: none"):
        Registry([]).stack("default", CTX)


@pytest.mark.parametrize("what", ["stacks", "blocks"])
def test_a_name_two_kits_define_is_refused(what: str) -> None:
    other = Kit(name="gamma", **{what: {"web" if what == "stacks" else "redis": ALPHA}})  # type: ignore[arg-type]
    with pytest.raises(EnvkitError) as caught:
        Registry([ALPHA, other])
    message = str(caught.value)
    assert "'alpha'" in message and "'gamma'" in message and "fix:" in message


KIT_MODULE = '''
from envkit.kits import Kit
from envkit.spec import Build, ServiceSpec, StackSpec

def _mine(ctx):
    return StackSpec(name="mine", services=[ServiceSpec(name="svc", image=Build(name="svc"))])

KIT = Kit(name="{name}", stacks={{"mine": _mine}})
NOT_A_KIT = 42
'''


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A project root holding a kit module of a name no other test uses."""
    package = f"teamkit_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "kit.py").write_text(KIT_MODULE.format(name=package))
    yield tmp_path, package
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_a_project_kit_loads_from_the_root_beside_the_installed_ones(
    project: tuple[Path, str]
) -> None:
    root, package = project
    registry = Registry.load(Settings(root=root, kits=(f"{package}.kit:KIT",)))
    names = {kit.name for kit in registry.kits}
    assert package in names
    assert {"demo", "camera"} <= names  # the entry points of the installed wheel
    assert registry.stack("mine", CTX).name == "mine"
    assert {"mine", "demo", "default"} <= set(registry.stack_names)


@pytest.mark.parametrize(("ref", "words"), [
    ("no_colon_here", ["not of the form module:attribute", "myproject.testing.kit:KIT"]),
    ("{package}.missing:KIT", ["does not load", "check the module path"]),
    ("{package}.kit:ABSENT", ["does not load", "ABSENT"]),
    ("{package}.kit:NOT_A_KIT", ["int", "not an envkit.Kit", "module-level envkit.Kit"]),
], ids=["form", "module", "attribute", "type"])
def test_a_bad_kit_reference_says_what_and_how_to_fix(
    project: tuple[Path, str], ref: str, words: list[str]
) -> None:
    root, package = project
    ref = ref.format(package=package)
    with pytest.raises(EnvkitError) as caught:
        Registry.load(Settings(root=root, kits=(ref,)))
    error = caught.value
    assert error.fix, str(error)
    for word in words:
        assert word in str(error)
    assert repr(ref) in str(error)


def test_an_installed_kit_that_does_not_import_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenPoint:
        name, value = "shop", "shop_testing.kit:KIT"

        def load(self) -> object:
            raise ModuleNotFoundError("No module named 'shop_testing'")

    monkeypatch.setattr("envkit.kits.entry_points", lambda group: [BrokenPoint()])
    with pytest.raises(EnvkitError) as err:
        Registry.load(Settings(root=tmp_path))
    message = str(err.value)
    assert "entry point shop = shop_testing.kit:KIT does not load: ModuleNotFoundError" in message
    assert "fix: repair or uninstall the package that declares it" in message

"""Kits: the public extension points through which stacks and service blocks reach envkit.

The core knows no service of its own. Everything a team wants by name (a whole stack such
as the camera kit's ``default``, a building block such as ``mediamtx`` that YAML stack files
``use:``, a ``doctor`` check) comes from a :class:`Kit`. envkit's camera kit is one; a
team's kit uses the same points and is found the same two ways:

- an installed package declares it under the ``envkit.kits`` entry point group;
- a project names a kit in its own tree as ``module:attribute`` (ini ``envkit_kits``, or
  ``ENVKIT_KITS``), importable from the project root.

Kits are loaded on first use (the first stack or ``doctor``), never at import, so a pytest
run that uses no stack pays nothing for them. Fixtures belong to a kit's own pytest plugin
(its ``pytest11`` entry point), as with any pytest plugin.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from envkit.config import Settings
from envkit.errors import EnvkitError, SpecError

if TYPE_CHECKING:
    from envkit._engine import Engine
    from envkit.spec import ServiceSpec, StackSpec

T = TypeVar("T")
ENTRY_POINT_GROUP = "envkit.kits"


class KitContext(Protocol):
    """What a kit's factories may ask of the run (``envkit.Envkit`` implements it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def environ(self) -> Mapping[str, str]: ...

    @property
    def engine(self) -> Engine: ...

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """Compute *make* once per run and process (a kit's per-run choices)."""
        ...


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One ``envkit doctor`` finding.

    :param name: what was checked; :param status: ``ok``, ``warn`` or ``fail``;
    :param detail: what was found; :param fix: what to do about it (empty when ok).
    """

    name: str
    status: str
    detail: str
    fix: str = ""


StackFactory = Callable[[KitContext], "StackSpec"]
BlockFactory = Callable[[KitContext, Mapping[str, Any]], "ServiceSpec"]
DoctorCheck = Callable[[KitContext], Iterable[Finding]]


@dataclass(frozen=True, kw_only=True)
class Kit:
    """A named set of stacks, service blocks and doctor checks.

    :param name: the kit's name, shown in errors and ``doctor``.
    :param stacks: stack name -> factory, for ``--envkit-stack NAME`` and ``envkit up``.
    :param blocks: block name -> factory taking the YAML ``with:`` options, for a stack
        file's ``use: NAME``.
    :param doctor: checks ``envkit doctor`` runs after the core's.
    :param imports: modules its factories import when called (so that loading the kit
        stays cheap); a warm pool imports them before its thread may call a factory
        (see :meth:`Registry.import_modules`).
    """

    name: str
    stacks: Mapping[str, StackFactory] = field(default_factory=dict)
    blocks: Mapping[str, BlockFactory] = field(default_factory=dict)
    doctor: Sequence[DoctorCheck] = ()
    imports: Sequence[str] = ()


class Registry:
    """The kits of one run, with lookups that name what exists when a name is unknown.

    :param kits: the loaded kits; a stack or block name two kits define is refused.
    :raises EnvkitError: when two kits define the same stack or block name.
    """

    def __init__(self, kits: Sequence[Kit]) -> None:
        self.kits = tuple(kits)
        self._stacks = _index(self.kits, "stacks")
        self._blocks = _index(self.kits, "blocks")

    @classmethod
    def load(cls, settings: Settings) -> Registry:
        """Installed kits (entry points) and the settings' ``module:attribute`` kits.

        :raises EnvkitError: for a reference that does not import or is not a :class:`Kit`.
        """
        found: dict[str, Kit] = {}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            origin = f"entry point {point.name} = {point.value}"
            try:
                loaded = point.load()
            except Exception as exc:  # an installed package's import error, whatever it is
                raise EnvkitError(f"{origin} does not load: {type(exc).__name__}: {exc}",
                                  fix="repair or uninstall the package that declares it "
                                  f"(`pip show -f` lists it; group {ENTRY_POINT_GROUP})") from None
            kit = _checked(loaded, origin)
            found.setdefault(kit.name, kit)
        for ref in settings.kits:
            kit = _checked(_import(ref, settings.root), f"kit reference {ref!r}")
            found[kit.name] = kit
        return cls(list(found.values()))

    @property
    def stack_names(self) -> list[str]:
        """Every stack name the kits define."""
        return sorted(self._stacks)

    @property
    def block_names(self) -> list[str]:
        """Every block name the kits define."""
        return sorted(self._blocks)

    def has_stack(self, name: str) -> bool:
        """Whether a kit defines the stack *name*."""
        return name in self._stacks

    def stack(self, name: str, ctx: KitContext) -> StackSpec:
        """The spec of the kit stack *name*.

        :raises EnvkitError: when no kit defines it, listing those that exist.
        """
        if name not in self._stacks:
            raise EnvkitError(
                f"no kit defines a stack {name!r} (kit stacks: "
                f"{', '.join(self.stack_names) or 'none'})",
                fix="pass one of those names, or the path of a .yml stack file",
            )
        factory: StackFactory = self._stacks[name][1]
        return factory(ctx)

    def import_modules(self) -> None:
        """Import every kit's :attr:`Kit.imports` in this thread.

        Before another thread calls the factories while this one goes on importing: two
        threads importing one package at once can deadlock (see
        :func:`envkit.session._import_for_spares`).

        :raises EnvkitError: for a module that does not import, naming its kit.
        """
        for kit in self.kits:
            for module in kit.imports:
                try:
                    importlib.import_module(module)
                except ImportError as exc:
                    raise EnvkitError(f"kit {kit.name!r} names {module!r} in its imports, "
                                      f"which does not import: {exc}",
                                      fix="correct the kit's imports") from None

    def block(self, name: str, ctx: KitContext, options: Mapping[str, Any]) -> ServiceSpec:
        """The service the block *name* makes with *options*.

        :raises SpecError: when no kit defines it, listing the blocks that exist.
        """
        if name not in self._blocks:
            raise SpecError(
                stack=None, service=None, field="use", value=name,
                problem=f"no kit defines this block (blocks: "
                f"{', '.join(self.block_names) or 'none'})",
                fix="use one of those names, or install/name the kit that defines it "
                "(ini envkit_kits, ENVKIT_KITS)",
            )
        factory: BlockFactory = self._blocks[name][1]
        return factory(ctx, options)


def _index(kits: Sequence[Kit], what: str) -> dict[str, tuple[str, Any]]:
    index: dict[str, tuple[str, Any]] = {}
    for kit in kits:
        for name, factory in getattr(kit, what).items():
            if name in index:
                raise EnvkitError(
                    f"kits {index[name][0]!r} and {kit.name!r} both define the {what[:-1]} "
                    f"{name!r}",
                    fix="remove one of the kits from ENVKIT_KITS / envkit_kits, or rename",
                )
            index[name] = (kit.name, factory)
    return index


def _import(ref: str, root: Path) -> object:
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise EnvkitError(f"kit reference {ref!r} is not of the form module:attribute",
                          fix="write e.g. envkit_kits = myproject.testing.kit:KIT")
    # A project's kit lives in its own tree, importable from its root like its conftest.
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise EnvkitError(f"kit reference {ref!r} does not load: {exc}",
                          fix=f"check the module path (relative to {root}) and the name") from None


def _checked(obj: object, origin: str) -> Kit:
    if not isinstance(obj, Kit):
        raise EnvkitError(f"{origin} is of type {type(obj).__name__}, not an envkit.Kit",
                          fix="point it at a module-level envkit.Kit(...) object")
    return obj

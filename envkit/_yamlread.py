"""YAML read with limits, for stack and compose files: a hostile file fails fast and clearly.

PyYAML's safe loader already refuses arbitrary objects, but three shapes still hurt:

- a large file (a pasted log, a binary) costs seconds to parse for nothing;
- deep nesting (``[[[[...]]]]``) overflows the recursive composer with a ``RecursionError``;
- an alias bomb ("billion laughs": anchors whose aliases repeat anchors) is small as text
  but huge once walked, and envkit walks it (interpolation, the schema, the specs); an
  alias inside its own anchor makes a value without end.

So a file may have at most :data:`MAX_BYTES`, nest :data:`MAX_DEPTH` levels and hold
:data:`MAX_NODES` values counted after alias expansion (an alias counts its anchor's values
every time it is used). Hand-written stack and compose files are far below all three.
The limits are checked on the parser's events, in one pass, before any node or Python
object is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from envkit.errors import SpecError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000


class LimitError(yaml.YAMLError):
    """The file exceeds one of the limits; the message says which, and where."""


class _PurePythonLoader(yaml.SafeLoader):
    """The safe loader where libyaml is missing, with a bound on flow nesting.

    Its scanner looks ahead across open brackets (each may start a key), so deep flow
    nesting costs it time quadratic in the depth before the first event comes out;
    libyaml stops at 1000 levels by itself.
    """

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise LimitError(f"nested more than {MAX_DEPTH} levels deep "
                             f"(line {self.get_mark().line + 1})")
        super().fetch_flow_collection_start(TokenClass)


#: libyaml's safe loader when PyYAML has it (about five times faster), else pure Python.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", _PurePythonLoader)


def _check_limits(events: Iterable[yaml.Event]) -> None:
    """Walk the parser's events once: depth, aliases inside their anchor, expanded size.

    :raises LimitError: at the first limit crossed, with its line.
    """
    sizes: dict[str, int] = {}
    frames: list[list[Any]] = [[0, None]]  # per open collection: values so far, its anchor
    for event in events:
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.CollectionStartEvent):
            if len(frames) > MAX_DEPTH:
                raise LimitError(f"nested more than {MAX_DEPTH} levels deep (line {line})")
            frames.append([0, event.anchor])
            continue
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes and any(f[1] == event.anchor for f in frames):
                raise LimitError(f"the alias *{event.anchor} is used inside its own anchor "
                                 f"(line {line}): the value would never end")
            size, anchor = sizes.get(str(event.anchor), 1), None
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.CollectionEndEvent):
            count, anchor = frames.pop()
            size = count + 1
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        frames[-1][0] += size
        if frames[-1][0] > MAX_NODES:
            raise LimitError(f"more than {MAX_NODES} values once YAML aliases are expanded "
                             f"(line {line}: each use of an alias counts its anchor's values "
                             "again)")


def read_text(path: Path) -> str:
    """The file's text, refused past :data:`MAX_BYTES` before it is read whole.

    :raises OSError: when it cannot be read; :raises UnicodeDecodeError: when not UTF-8.
    :raises LimitError: when it is too large.
    """
    with path.open("rb") as stream:
        raw = stream.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise LimitError(f"larger than {MAX_BYTES} bytes")
    return raw.decode("utf-8")


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """The data of *text* and its node tree (whose marks give lines), within the limits.

    :raises yaml.YAMLError: for invalid YAML, :class:`LimitError` for a file past a limit.
    """
    try:
        _check_limits(yaml.parse(text, Loader=_LOADER))
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except RecursionError:  # the limits above should prevent it; never a traceback
        raise LimitError(f"nested more than {MAX_DEPTH} levels deep") from None
    return data, node


def load_file(path: Path) -> tuple[Any, yaml.Node | None]:
    """The data of the stack or compose file *path* and its node tree, within the limits.

    :raises SpecError: when the file cannot be read, is too large or is not YAML, saying
        why and what to do (:func:`fix_for`).
    """
    try:
        return load(read_text(path))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(stack=path.stem, service=None, field="(file)", value=str(path),
                        problem=f"cannot read YAML: {exc}", fix=fix_for(exc)) from None


def fix_for(exc: yaml.YAMLError | OSError | UnicodeDecodeError) -> str:
    """What to do about a file :func:`read_text` or :func:`load` refused."""
    if isinstance(exc, LimitError):
        return ("a stack or compose file is written by hand: split it, or replace repeated "
                "aliases and deep nesting by plain values")
    if isinstance(exc, UnicodeDecodeError):
        return "save the file as UTF-8 text (is it a YAML file at all?)"
    return "check the path and the YAML syntax"

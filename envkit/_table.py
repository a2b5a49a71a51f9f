"""Tables for the CLI: ``rich`` on a terminal, plain aligned text when piped.

Plain output keeps one row per line with columns separated by at least two spaces, so
``envkit ps | grep`` and ``awk`` work; colour and box drawing only reach a human.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO


def render(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, stream: TextIO,
    title: str | None = None,
) -> None:
    """Write *rows* under *headers* to *stream*, richly when it is a terminal.

    :param headers: column names.
    :param rows: cell texts, one sequence per row.
    :param stream: where to write (stdout, normally).
    :param title: a caption above the table.
    """
    if stream.isatty():
        from rich.console import Console  # noqa: PLC0415 - rich only costs when a human looks
        from rich.table import Table  # noqa: PLC0415

        table = Table(*headers, title=title, title_justify="left")
        for row in rows:
            table.add_row(*row)
        Console(file=stream).print(table)
        return
    if title:
        stream.write(title + "\n")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [list(headers), *[list(r) for r in rows]]:
        stream.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        stream.write("\n")
    stream.flush()


def human_age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: a stack's age at a glance; ``?`` when unknown."""
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"


def human_size(size: int) -> str:
    """Bytes as ``691.2 MB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"

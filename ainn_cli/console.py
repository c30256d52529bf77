"""The one way ainn prints a message line on stderr (rich; imported only when there is something to say)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True)
COLOURS = {"error": "red", "warning": "yellow", "note": "yellow"}


def say(message: str, kind: str = "error") -> None:
    """`kind: message` on one line; the message is escaped so names like `take [1].wav` print as they are."""
    err_console.print(f"[{COLOURS.get(kind, 'red')}]{kind}:[/] {escape(message)}", highlight=False, soft_wrap=True)

"""The one way ainn prints a message line or a progress bar on stderr (rich; imported only when there is
something to show)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn

err_console = Console(stderr=True)
COLOURS = {"error": "red", "warning": "yellow", "note": "yellow"}


def say(message: str, kind: str = "error") -> None:
    """`kind: message` on one line; the message is escaped so names like `take [1].wav` print as they are."""
    err_console.print(f"[{COLOURS.get(kind, 'red')}]{kind}:[/] {escape(message)}", highlight=False, soft_wrap=True)


def progress_bar(label: str, *fields: str, disable: bool, transient: bool = False,
                 console: Console | None = err_console) -> Progress:
    """`label  ━━━━━━━━━━  12/40  0:01:10  field...`: a rich Progress whose columns are the label (a rich
    template such as "{task.description}" works), the bar, done/total, time left, then each named task field
    as plain text (a file name's brackets are not markup). `console=None` is rich's own console (stdout)."""
    columns: list[ProgressColumn] = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    columns += [TextColumn(f"{{task.fields[{name}]}}", markup=False) for name in fields]
    return Progress(*columns, console=console, disable=disable, transient=transient)

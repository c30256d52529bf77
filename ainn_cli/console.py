"""The one way ainn prints a message line or a progress bar on stderr (rich; imported only when there is
something to show)."""

from __future__ import annotations

import datetime
import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn


def printable(text: str) -> str:
    """`text` with a file name's undecodable bytes (Python's surrogate escapes: Linux names need not be UTF-8)
    shown as `\\xNN`, which any stream can print."""
    if not any("\udc80" <= char <= "\udcff" for char in text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class Printable:
    """The current sys.stdout or sys.stderr (tests swap them) as rich's file: what it writes goes through
    `printable`, so a strange file name never stops a command with UnicodeEncodeError."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        stream: TextIO = getattr(sys, self.name)
        return stream.write(printable(text))

    def __getattr__(self, attribute: str) -> Any:  # flush, isatty, fileno, encoding: the stream's own
        return getattr(getattr(sys, self.name), attribute)


err_console = Console(file=Printable("stderr"))  # type: ignore[arg-type]  # a text stream in all rich uses
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


class Ticker:
    """Progress of `total` units of work (files, steps, bytes), shown the way stderr can show it:

        a terminal:      label  ━━━━━━━━━━━━  12/40  0:01:10  note       (a rich bar, redrawn in place)
        a pipe or a log: label 12/40 name: note, 0:01:10 left           (one plain line per item, or per `every`)

    The time left counts only work that was done: an item passed with `advance(skipped=True)` (an output that
    exists already) moves the count but not the pace, so a resumed run does not promise the impossible.
    `show` turns the counts into text (e.g. bytes as MB)."""

    def __init__(self, label: str, total: float, *, disable: bool = False, every: float = 1,
                 show: Callable[[float], str] = lambda n: f"{n:g}", console: Console = err_console) -> None:
        self.label, self.total, self.every, self.show, self.console = label, total, every, show, console
        self.disable = disable
        self.plain = not disable and not console.is_terminal
        self.done = 0.0  # units passed, skipped ones included
        self.worked = 0.0  # units that took work (the pace's count)
        self.busy = 0.0  # seconds spent on them
        self.mark = time.perf_counter()  # when the current unit began
        self.printed = -math.inf  # `done` when a plain line was last printed
        columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}", markup=False),
                   TextColumn("{task.fields[left]}"), TextColumn("{task.fields[note]}", markup=False)]
        self.bar = Progress(*columns, console=console, disable=disable or self.plain)
        self.task = self.bar.add_task(label, total=total, count=self.count(), left="", note="")

    def __enter__(self) -> Ticker:
        self.bar.__enter__()
        self.mark = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def naming(self, name: str) -> None:
        """Say on the bar which item is being worked on (plain lines name it when it is done)."""
        self.bar.update(self.task, note=name, refresh=True)

    def advance(self, units: float = 1, name: str = "", note: str = "", skipped: bool = False) -> None:
        """`units` more done (`skipped`: without work, e.g. an output that exists already)."""
        self.update(self.done + units, name, note, skipped)

    def update(self, done: float, name: str = "", note: str = "", skipped: bool = False) -> None:
        """The count is now `done`; the time since the last update was work on it unless `skipped`."""
        now = time.perf_counter()
        if not skipped:
            self.busy += now - self.mark
            self.worked += done - self.done
        self.mark, self.done = now, done
        left = self.left()
        self.bar.update(self.task, completed=done, count=self.count(), left=left,
                        note=" ".join(filter(None, (name, note))))
        if self.plain and (done - self.printed >= self.every or done >= self.total):
            self.printed = done
            what = ": ".join(filter(None, (name, note)))
            line = f"{self.label} {self.count()}{' ' + what if what else ''}{', ' + left + ' left' if left else ''}"
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def count(self) -> str:
        """`12/40` (or, with `show`, e.g. `12.0/208.5 MB`)."""
        return f"{self.show(self.done)}/{self.show(self.total)}"

    def left(self) -> str:
        """Time left at the pace of the work done so far, H:MM:SS ('' before any work or when done)."""
        if self.worked <= 0 or self.done >= self.total:
            return ""
        seconds = self.busy / self.worked * (self.total - self.done)
        return str(datetime.timedelta(seconds=round(seconds)))

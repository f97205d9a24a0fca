"""How a long command tells its story: plain lines, or a live display on a terminal.

``interlock demo`` and ``interlock transfer --wait`` report through one small
:class:`Reporter` and never ask where their output goes. :func:`open_reporter` picks:

* :class:`PlainReporter`: one line per event, exactly the lines scripts and tests read
  (the demo's ``[  2.22s]`` stamps, its ``  ok    `` / ``  FAIL  `` checks, a fixed-width
  balance table). Used when stdout is not a terminal, with ``NO_COLOR`` or ``TERM=dumb``,
  or when the user asks for ``--plain``.
* :class:`RichReporter`: a ``rich`` live display. The step in progress has a spinner and
  its elapsed time; a finished step is printed once, marked ok or FAILED, with its lines;
  the table is a ``rich`` Table.

The reporter's vocabulary:

* ``info``: a line outside any step (setup, a transfer's progress).
* ``step``: a step begins, and the one before it ends; its title is shown.
* ``wait``: like ``step``, but the title is only a spinner's text: a plain reporter shows
  nothing, the lines that follow tell what happened.
* ``detail``: what happened within the step (the proof that crossed, a height).
* ``check``: a checked outcome; one failed check marks its step FAILED.
* ``table``: rows under headers, at the end.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

__all__ = [
    "Column",
    "PlainReporter",
    "Reporter",
    "RichReporter",
    "is_plain_terminal",
    "open_reporter",
]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a reporter's table."""

    header: str
    """Its heading."""
    width: int
    """Its width in plain output (the first column is left-aligned, the others right)."""


class Reporter(Protocol):
    """Where a command's progress goes; see the module docstring."""

    def info(self, text: str) -> None: ...
    def step(self, title: str) -> None: ...
    def wait(self, what: str) -> None: ...
    def detail(self, text: str) -> None: ...
    def check(self, ok: bool, text: str) -> None: ...
    def table(self, columns: Sequence[Column], rows: Sequence[Sequence[str | int]]) -> None: ...
    def close(self, *, interrupted: bool = False) -> None:
        """The end; ``interrupted``: by an error, so the step in progress did not end."""


class PlainReporter:
    """One line per event on ``file``; nothing at all if ``file`` is None (``--json``)."""

    def __init__(self, file: TextIO | None, *, stamp: bool) -> None:
        self.file = file
        self.stamp = stamp
        self.t0 = time.monotonic()

    def _line(self, text: str) -> None:
        if self.file is None:
            return
        if self.stamp:
            text = f"[{time.monotonic() - self.t0:6.2f}s] {text}"
        print(text, file=self.file, flush=True)

    def info(self, text: str) -> None:
        self._line(text)

    def step(self, title: str) -> None:
        self._line(title)

    def wait(self, what: str) -> None:
        pass  # the lines that follow say what came of it

    def detail(self, text: str) -> None:
        self._line(f"   {text}")

    def check(self, ok: bool, text: str) -> None:
        self._line(("  ok    " if ok else "  FAIL  ") + text)

    def table(self, columns: Sequence[Column], rows: Sequence[Sequence[str | int]]) -> None:
        if self.file is None:
            return
        print(file=self.file)
        print(_plain_row(columns, [c.header for c in columns]), file=self.file)
        for row in rows:
            print(_plain_row(columns, row), file=self.file)
        print(file=self.file, flush=True)

    def close(self, *, interrupted: bool = False) -> None:
        pass


def _plain_row(columns: Sequence[Column], row: Sequence[str | int]) -> str:
    cells = [f"{v:,}" if isinstance(v, int) else v for v in row]
    return " ".join(
        f"{cell:<{c.width}}" if i == 0 else f"{cell:>{c.width}}"
        for i, (c, cell) in enumerate(zip(columns, cells, strict=True))
    )


def _shown(text: str) -> str:
    # lines may carry a chain's words: no escape sequence reaches the terminal
    return "".join(c if c.isprintable() else "?" for c in text)


@dataclass
class _Block:
    """A step on the live display: its title, its lines so far, whether a check failed."""

    title: str
    numbered: bool
    """A ``step`` (marked ok/FAILED when it ends) rather than a ``wait``."""
    started: float
    spinner: Spinner
    lines: list[Text] = field(default_factory=list)
    failed: bool = False


class RichReporter:
    """A live display on ``console``: a spinner on the step in progress, each finished
    step printed once with its outcome, its lines and how long it took.

    Every text goes in as a ``rich`` Text, never as markup: a ``[`` in a chain's words
    is shown, not interpreted.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self._block: _Block | None = None
        self._live: Live | None = None
        """Running while a step is: nothing live between steps, not even a blank line."""
        # the live display renders from its own refresh thread
        self._lock = threading.Lock()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.t0:6.2f}s"

    def _render(self) -> RenderableType:
        with self._lock:
            block = self._block
            if block is None:
                return Group()
            took = f"  {time.monotonic() - block.started:.1f} s"
            block.spinner.update(text=Text.assemble(block.title, (took, "dim")))
            return Group(block.spinner, *block.lines)

    def _end_block(self, *, interrupted: bool = False) -> None:
        with self._lock:
            block, self._block = self._block, None
        if self._live is not None:
            self._live.stop()  # transient: the spinner goes before the step is printed
            self._live = None
        if block is None:
            return
        if not block.numbered and not interrupted:  # a wait: the lines that follow tell
            if block.lines:
                self.console.print(Group(*block.lines))
            return
        took = Text(f"  {time.monotonic() - block.started:.2f} s", style="dim")
        if interrupted:
            mark = Text("stopped ", style="bold yellow")
        elif block.failed:
            mark = Text("FAILED  ", style="bold red")
        else:
            mark = Text("ok      ", style="bold green")
        self.console.print(Group(Text.assemble(mark, block.title, took), *block.lines))

    def _begin(self, title: str, *, numbered: bool) -> None:
        self._end_block()
        spinner = Spinner("dots", style="cyan")
        block = _Block(_shown(title), numbered, time.monotonic(), spinner)
        with self._lock:
            self._block = block
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=8,
            transient=True,
        )
        self._live.start()

    def _add(self, line: Text) -> None:
        with self._lock:
            if self._block is not None:
                self._block.lines.append(line)
                return
        self.console.print(line)

    def info(self, text: str) -> None:
        stamp = Text(f"[{self._elapsed()}] ", style="dim")
        self.console.print(Text.assemble(stamp, _shown(text)))

    def step(self, title: str) -> None:
        self._begin(title, numbered=True)

    def wait(self, what: str) -> None:
        self._begin(what, numbered=False)

    def detail(self, text: str) -> None:
        self._add(Text("        " + _shown(text)))

    def check(self, ok: bool, text: str) -> None:
        with self._lock:
            if not ok and self._block is not None:
                self._block.failed = True
        mark = ("  ✓     ", "green") if ok else ("  ✗     ", "bold red")
        self._add(Text.assemble(mark, _shown(text)))

    def table(self, columns: Sequence[Column], rows: Sequence[Sequence[str | int]]) -> None:
        self._end_block()
        self.console.print()
        t = Table()
        for i, c in enumerate(columns):
            t.add_column(Text(_shown(c.header)), justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*(Text(f"{v:,}" if isinstance(v, int) else _shown(v)) for v in row))
        self.console.print(t)

    def close(self, *, interrupted: bool = False) -> None:
        self._end_block(interrupted=interrupted)


def is_plain_terminal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` should get plain lines: not a terminal, ``NO_COLOR`` set (to
    anything but empty, as no-color.org asks) or ``TERM=dumb``."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return True
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


@contextmanager
def open_reporter(
    *, plain: bool = False, stamp: bool = False, quiet: bool = False, out: TextIO | None = None
) -> Iterator[Reporter]:
    """The reporter for ``out`` (stdout): plain lines (stamped with the time since start
    if ``stamp``) when asked or when ``out`` is no terminal, nothing if ``quiet``, else a
    live display. The display is stopped on the way out, before any error line."""
    out = sys.stdout if out is None else out
    report: Reporter
    if quiet:
        report = PlainReporter(None, stamp=stamp)
    elif plain or is_plain_terminal(out):
        report = PlainReporter(out, stamp=stamp)
    else:
        report = RichReporter(Console(file=out))
    try:
        yield report
    except BaseException:
        report.close(interrupted=True)
        raise
    report.close()

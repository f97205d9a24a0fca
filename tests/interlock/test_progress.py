"""The reporters behind ``interlock demo`` and ``transfer --wait``: plain lines for pipes,
a live display for a terminal, and which one a command gets."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from interlock.cmd_transfer import Progress, TransferId, _waiting_for
from interlock.errors import CommandError
from interlock.progress import (
    Column,
    PlainReporter,
    RichReporter,
    is_plain_terminal,
    open_reporter,
)

COLUMNS = [Column("account", 8), Column("a usd", 10), Column("b eur", 12)]
ROWS: list[list[str | int]] = [["alice", 9_600, 10_046], ["bob", 10_150, 0]]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Tty(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def drive(report: PlainReporter | RichReporter) -> None:
    report.info("two ledgers")
    report.step("1. a swap")
    report.detail("locked at us-bank height 11, event 0, event_root 2baa88ca…")
    report.check(True, "swap settled")
    report.step("2. a transfer")
    report.check(False, "nothing minted")
    report.table(COLUMNS, ROWS)
    report.close()


def rich_output() -> str:
    out = io.StringIO()
    drive(RichReporter(Console(file=out, force_terminal=True, width=100)))
    return ANSI.sub("", out.getvalue())


# --- plain: the lines scripts and tests read ----------------------------------------------


def test_plain_lines_are_stamped_indented_and_checked() -> None:
    out = io.StringIO()
    drive(PlainReporter(out, stamp=True))
    lines = out.getvalue().splitlines()
    stamp = r"\[ *\d+\.\d\ds\] "
    assert re.fullmatch(stamp + "two ledgers", lines[0])
    assert re.fullmatch(stamp + "1. a swap", lines[1])
    assert re.fullmatch(stamp + "   locked at us-bank height 11, event 0, .*", lines[2])
    assert re.fullmatch(stamp + "  ok    swap settled", lines[3])
    assert re.fullmatch(stamp + "  FAIL  nothing minted", lines[5])
    # the table: first column left-aligned, the others right, each its width, blank around
    assert lines[6:] == [
        "",
        "account       a usd        b eur",
        "alice         9,600       10,046",
        "bob          10,150            0",
        "",
    ]


def test_plain_wait_prints_nothing_and_no_stamp_without_stamp() -> None:
    out = io.StringIO()
    report = PlainReporter(out, stamp=False)
    report.wait("waiting for the header")
    report.info("header relayed")
    assert out.getvalue() == "header relayed\n"


def test_quiet_prints_nothing() -> None:
    report = PlainReporter(None, stamp=True)
    drive(report)  # no file: every method is a no-op, none raises


# --- rich: the live display ---------------------------------------------------------------


def test_rich_shows_step_outcomes_their_lines_and_the_table() -> None:
    text = rich_output()
    assert re.search(r"ok +1\. a swap +\d+\.\d\d s", text), text
    assert re.search(r"FAILED +2\. a transfer +\d+\.\d\d s", text), text
    assert "event_root 2baa88ca…" in text
    assert re.search(r"✓ +swap settled", text)
    assert re.search(r"✗ +nothing minted", text)
    # a rich Table: box drawing, headers, the numbers grouped
    assert "┃ account ┃" in text
    assert "a usd" in text
    assert "b eur" in text
    assert re.search(r"│ alice +│ +9,600 │ +10,046 │", text), text
    assert re.search(r"│ bob +│ +10,150 │ +0 │", text), text
    # each step printed once when it ended: the spinner's transient frames are erased
    assert text.count("ok      1. a swap") == 1


def test_rich_step_lines_stay_with_their_step() -> None:
    text = rich_output()
    assert text.index("1. a swap") < text.index("swap settled") < text.index("2. a transfer")
    assert text.index("2. a transfer") < text.index("nothing minted") < text.index("account")


def test_rich_shows_hostile_text_literally() -> None:
    """A chain's words are text, never markup or terminal control."""
    out = io.StringIO()
    report = RichReporter(Console(file=out, force_terminal=True, width=100))
    report.step("[bold red]1. evil[/] [link=http://x]y")
    report.detail("[/] unbalanced \x1b[2J\x1b]0;title\x07 cleared")
    report.check(True, "[/bold]")
    report.info("\x1b[31mred\r\n")
    report.table([Column("[b]who", 4)], [["\x1b[5mblink"]])
    report.close()
    raw = out.getvalue()
    for control in ("\x1b[2J", "\x1b]0;", "\x07", "\x1b[31mred", "\x1b[5mblink", "red\r"):
        assert control not in raw, (control, raw)
    text = ANSI.sub("", raw)
    assert "[bold red]1. evil[/] [link=http://x]y" in text
    assert "[/] unbalanced ?[2J?]0;title? cleared" in text
    assert "[/bold]" in text
    assert "?[31mred??" in text
    assert "[b]who" in text


def test_rich_interrupted_step_is_stopped_not_ok() -> None:
    out = io.StringIO()
    report = RichReporter(Console(file=out, force_terminal=True, width=100))
    report.step("1. a swap")
    report.close(interrupted=True)
    text = ANSI.sub("", out.getvalue())
    assert "stopped 1. a swap" in text
    assert "ok" not in text


def test_rich_wait_leaves_only_what_came_of_it() -> None:
    out = io.StringIO()
    report = RichReporter(Console(file=out, force_terminal=True, width=100))
    report.wait("waiting for the header")
    report.info("header relayed")
    report.wait("waiting for the delivery")
    report.info("delivered")
    report.close()
    lines = ANSI.sub("", out.getvalue()).splitlines()
    told = [ln.split("] ", 1)[1] for ln in lines if ln.startswith("[")]
    assert told == ["header relayed", "delivered"]
    # the spinner's lines were live only (erased), never printed as a finished step
    waits = [ln for ln in lines if "waiting for" in ln]
    assert waits
    assert all(re.match(r"[\u2800-\u28ff] waiting for", ln) for ln in waits), waits


# --- which reporter a command gets ----------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "env", "plain"),
    [
        (io.StringIO(), {"TERM": "xterm-256color"}, True),  # a pipe
        (Tty(), {"TERM": "xterm-256color"}, False),
        (Tty(), {"TERM": "xterm-256color", "NO_COLOR": "1"}, True),
        (Tty(), {"TERM": "xterm-256color", "NO_COLOR": ""}, False),  # no-color.org: non-empty
        (Tty(), {"TERM": "dumb"}, True),
        (Tty(), {}, False),
    ],
)
def test_plain_when_piped_no_color_or_dumb(
    stream: io.StringIO, env: dict[str, str], plain: bool
) -> None:
    assert is_plain_terminal(stream, env) is plain


@pytest.fixture
def tty_stdout(monkeypatch: pytest.MonkeyPatch) -> Tty:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    return Tty()


def test_open_reporter_picks_rich_on_a_terminal_unless_plain_or_quiet(tty_stdout: Tty) -> None:
    with open_reporter(out=tty_stdout) as report:
        assert isinstance(report, RichReporter)
    with open_reporter(plain=True, stamp=True, out=tty_stdout) as report:
        assert isinstance(report, PlainReporter)
        report.info("plain on a terminal")
    with open_reporter(quiet=True, out=tty_stdout) as report:
        report.info("nobody hears this")
    assert "plain on a terminal" in tty_stdout.getvalue()
    assert "nobody" not in tty_stdout.getvalue()


def test_open_reporter_stops_the_display_before_the_error(tty_stdout: Tty) -> None:
    def fail_midway() -> None:
        with open_reporter(out=tty_stdout) as report:
            report.step("1. a swap")
            raise CommandError("the chain refused")

    with pytest.raises(CommandError):
        fail_midway()
    raw = tty_stdout.getvalue()
    assert re.search(r"stopped 1\. a swap +\d+\.\d\d s\n$", ANSI.sub("", raw)), raw
    # the live display was stopped (the cursor shown again) before the step was printed
    assert raw.rindex("\x1b[?25h") < raw.index("stopped")


# --- transfer --wait: what the spinner says ---------------------------------------------------


def test_transfer_waits_name_what_comes_next() -> None:
    tid = TransferId("chain-a", "chain-b", 7)
    assert "chain-b's client of chain-a to reach height 12" in _waiting_for(
        Progress.LOCKED, tid, 12
    )
    assert "delivery on chain-b" in _waiting_for(Progress.RELAYED, tid, 12)
    assert "delay on chain-b" in _waiting_for(Progress.QUEUED, tid, 12)
    for refunding in (Progress.EXPIRED, Progress.REFUSED):
        assert "refund on chain-a" in _waiting_for(refunding, tid, 12)

"""``interlock demo``, the README's first command, run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    # a terminal type that would get colour: only the pipe makes the output plain
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm-256color"}
    return subprocess.run(
        [sys.executable, "-m", "interlock.cli", "demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def check_story(out: str) -> None:
    assert out.count("  ok    ") == 11, out
    assert "FAIL" not in out
    assert "demo: every step ended as expected" in out
    for line in (
        "swap settled both legs",
        "carol holds 250 us-bank/usd",
        "refunded alice",
        "the relayer claimed bob's 50 USD",
        "refused by eu-bank: sanctions",
        "eu-bank refused it (sanctions), us-bank refunded alice",
        "auditor decrypts 40; alice's private balance 100 -> 60, carol's 0 -> 40; "
        "escrow 100 = supply 100",
        "private payment settled: the auditor read 40 USD, the chain no amount",
        "net positions alice -10, carol -20, bob +30",
        "gross 240 USD nets to 30 in 2 legs",
        "carol pays bob 20: burn on eu-bank, at eu-bank height",
        "settled across both ledgers",
    ):
        assert line in out, out


def test_demo_on_the_embedded_defaults(tmp_path: Path) -> None:
    r = demo("--data-dir", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr[-3000:]
    check_story(r.stdout)
    # stdout is a pipe: the plain lines, no live display, not one escape code
    assert "\x1b" not in r.stdout
    assert re.search(r"^account +us-bank usd +eu-bank eur +eu-bank us-bank/usd$", r.stdout, re.M)
    # the chains are kept in the given data dir (SQLite)
    assert any((tmp_path / "d").glob("*.sqlite3")), list((tmp_path / "d").iterdir())


def test_demo_over_a_real_broker(mqtt_url: str) -> None:
    r = demo("--bus-url", mqtt_url)
    assert r.returncode == 0, r.stderr[-3000:]
    check_story(r.stdout)


def test_demo_refuses_a_bad_bus_url_in_one_line() -> None:
    r = demo("--bus-url", "http://nope")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr

"""The README's Python examples run as written (so they cannot rot).

A block preceded by the ``not run by tests/test_readme.py`` comment needs a running chain
or broker; the process and broker tests in tests/service and tests/interlock cover what it shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(<!-- not run[^\n]*-->\n)?```python\n(.*?)```", re.DOTALL)


def _runnable_blocks() -> list[tuple[int, str]]:
    text = README.read_text()
    return [
        (text[: m.start()].count("\n") + 1, m.group(2))
        for m in _BLOCK.finditer(text)
        if m.group(1) is None
    ]


def test_the_readme_has_runnable_examples() -> None:
    assert len(_runnable_blocks()) >= 2, "the swap and bridge examples went missing"


@pytest.mark.parametrize(("line", "code"), _runnable_blocks(), ids=lambda v: str(v)[:12])
def test_readme_example_runs(line: int, code: str) -> None:
    exec(compile(code, f"{README}:{line}", "exec"), {"__name__": "__readme__"})

"""The Python examples of the README and of docs/*.md run as written (so they cannot rot).

A block preceded by the ``not run by tests/test_readme.py`` comment needs a running chain
or broker; the process and broker tests in tests/service and tests/interlock cover what it shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# docs/wire.md's examples talk to a broker: tests/service/test_wire_doc.py runs them
PAGES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "wire.md"),
]
_BLOCK = re.compile(r"(<!-- not run[^\n]*-->\n)?```python\n(.*?)```", re.DOTALL)


def _runnable_blocks() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text()
        out += [
            (f"{page.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}", m.group(2))
            for m in _BLOCK.finditer(text)
            if m.group(1) is None
        ]
    return out


def test_the_readme_has_runnable_examples() -> None:
    assert len(_runnable_blocks()) >= 2, "the swap and bridge examples went missing"


@pytest.mark.parametrize(("where", "code"), _runnable_blocks(), ids=lambda v: str(v)[:24])
def test_readme_example_runs(where: str, code: str) -> None:
    exec(compile(code, str(ROOT / where), "exec"), {"__name__": "__readme__"})

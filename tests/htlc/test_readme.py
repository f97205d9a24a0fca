"""The README's swap example (docs/readme/swaps.md) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "readme" / "swaps.md"


def test_the_swap_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "docs/readme/swaps.md lost its python example"
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "__readme__"})

"""The README's bridge example (docs/readme/bridge.md) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "readme" / "bridge.md"


def test_the_bridge_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "docs/readme/bridge.md lost its python example"
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "__readme__"})

"""Fixtures the CLI tests share."""

from __future__ import annotations

import io
from pathlib import Path

import pytest


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A CLI run in process with an empty keystore home, no $INTERLOCK_RPC, no stdin."""
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path))
    monkeypatch.delenv("INTERLOCK_RPC", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

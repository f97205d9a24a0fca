"""The daemon's SQLite state and its data-dir lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relayer.store import DataDirLock, DataDirLocked, RelayerStore


def test_cursor_and_snapshot_commit_together(tmp_path: Path) -> None:
    s = RelayerStore(tmp_path / "r.sqlite3")
    assert s.cursor("w") is None
    s.set_cursor("w", 7, ("w", {"kept": [1, 2]}))
    s.close()
    s = RelayerStore(tmp_path / "r.sqlite3")
    assert s.cursor("w") == 7
    assert s.snapshot("w") == {"kept": [1, 2]}
    assert s.cursors() == {"w": 7}


def test_one_process_per_data_dir(tmp_path: Path) -> None:
    with DataDirLock(tmp_path):
        with pytest.raises(DataDirLocked):
            DataDirLock(tmp_path).acquire()
        # another process is refused too
        code = (
            "import sys; from pathlib import Path\n"
            "from relayer.store import DataDirLock, DataDirLocked\n"
            "try:\n    DataDirLock(Path(sys.argv[1])).acquire()\n"
            "except DataDirLocked:\n    sys.exit(3)\n"
        )
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=30)
        assert r.returncode == 3
    DataDirLock(tmp_path).acquire()  # released with the first holder


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from relayer.store import DataDirLock\n"
        "DataDirLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == b"held"
    with pytest.raises(DataDirLocked):
        DataDirLock(tmp_path).acquire()
    p.kill()
    p.wait(10)
    DataDirLock(tmp_path).acquire()

"""One of each, for a newcomer: one Merkle tree builder (``chains.merkle``), one SQLite
transaction (``chains.sqlite``), one bounded stop (``chains.tasks``). The source
guards fail when a second copy comes back; the behaviour tests pin what the one copy does
(the events messages' audit paths are the kernel's: ``tests/service/test_wire.py``).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from chains.sqlite import connect, transaction
from chains.tasks import stop_within

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chains", "htlc", "bridge", "relayer", "interlock", "netting", "zk")


def _sources() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text()
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
    }


def _where(pattern: str) -> set[str]:
    rx = re.compile(pattern)
    return {name for name, text in _sources().items() if rx.search(text)}


def test_one_merkle_tree_builder() -> None:
    # the RFC 6962 leaf and node prefixes are hashed in one module only
    assert _where(r'sha256\(b"\\x0[01]"') == {"chains/merkle.py"}


def test_one_sqlite_transaction() -> None:
    assert _where(r"BEGIN IMMEDIATE|\"COMMIT\"|\"ROLLBACK\"") == {"chains/sqlite.py"}
    assert _where(r"PRAGMA journal_mode") == {"chains/sqlite.py"}


def test_one_bounded_stop() -> None:
    # waiting on one task with a bound, and cancelling it, is chains.tasks's
    assert _where(r"asyncio\.wait\(\{") == {"chains/tasks.py"}
    assert _where(r"def _consume|add_done_callback\(_consume\)") == set()
    stops = {f"chains/service/{m}.py" for m in ("publisher", "subscriber", "rpc", "rpc_client")}
    assert not _where(r"wait_for\(") & stops


class Crash(BaseException):
    pass


@pytest.mark.parametrize("failure", [ValueError, Crash])
def test_a_transaction_writes_all_or_nothing(tmp_path: Path, failure: type[BaseException]) -> None:
    db = connect(tmp_path / "x.sqlite")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    with transaction(db):
        db.execute("INSERT INTO t VALUES (1)")

    def fails_mid_way() -> None:
        with transaction(db):
            db.execute("INSERT INTO t VALUES (2)")
            raise failure("mid-way")

    def breaks_a_constraint() -> None:
        with transaction(db):
            db.execute("INSERT INTO t VALUES (3)")
            db.execute("INSERT INTO t VALUES (1)")  # a constraint fails: 3 goes too

    with pytest.raises(failure):
        fails_mid_way()
    with pytest.raises(sqlite3.IntegrityError):
        breaks_a_constraint()
    assert not db.in_transaction
    assert [r[0] for r in db.execute("SELECT k FROM t")] == [1]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ValueError, match="synchronous"):
        connect(tmp_path / "y.sqlite", synchronous="SOMETIMES")


async def test_stop_within_never_waits_without_a_bound() -> None:
    async def ends() -> int:
        await asyncio.sleep(0)
        return 1

    assert await stop_within(ends(), 1.0)

    release = asyncio.Event()

    async def ignores_cancel() -> None:  # as a task stuck in a library may
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    stuck = asyncio.ensure_future(ignores_cancel())
    assert not await stop_within(stuck, 0.05)  # cancelled, did not end: returns anyway
    assert not stuck.done()
    left = asyncio.ensure_future(asyncio.sleep(10))
    assert not await stop_within(left, 0.01, cancel=False)  # not cancelled: still running
    assert not left.cancelled()
    left.cancel()
    release.set()
    await asyncio.wait({stuck}, timeout=1)  # let the test's own task end
    assert stuck.done()

    async def fails() -> None:
        raise RuntimeError("boom")

    assert await stop_within(fails(), 1.0)  # ended; its error is consumed, not logged

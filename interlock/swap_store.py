"""The SQLite :class:`~htlc.store.SwapStore`: a party's swaps survive a crash.

One file, WAL journal, ``synchronous=FULL`` by default: a transition the driver persisted
before submitting its transaction is on disk before the transaction exists, which is what
makes a resumed driver neither lose a claim nor act twice. Swaps are stored as their
canonical JSON, with the columns the store's rules need (hashlock uniqueness, version
check, active index).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from chains.errors import StoreError
from htlc.errors import HashlockInUse, StaleSwap, SwapExists, SwapNotFound
from htlc.swap import Swap

__all__ = ["SQLiteSwapStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS swaps (
    swap_id  TEXT PRIMARY KEY,
    hashlock TEXT NOT NULL UNIQUE,
    state    TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    version  INTEGER NOT NULL,
    body     BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS swaps_active ON swaps (terminal);
CREATE TABLE IF NOT EXISTS cursors (chain_id TEXT PRIMARY KEY, height INTEGER NOT NULL);
"""


class SQLiteSwapStore:
    """Swaps and per-chain cursors in one SQLite file."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open swap store {self.path}: {exc}") from None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")  # inside: a failed COMMIT must not leave the tx open
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _row(swap: Swap) -> tuple[str, int, int, bytes, str]:
        return (
            swap.state.value,
            int(swap.is_terminal),
            swap.version,
            orjson.dumps(swap.to_json()),
            swap.swap_id,
        )

    def create(self, swap: Swap) -> None:
        self.create_many([swap])

    def create_many(self, swaps: Sequence[Swap]) -> None:
        with self._tx() as db:
            for swap in swaps:
                if db.execute("SELECT 1 FROM swaps WHERE swap_id=?", (swap.swap_id,)).fetchone():
                    raise SwapExists(swap.swap_id)
                hashlock = swap.terms.hashlock.hex()
                row = db.execute(
                    "SELECT swap_id FROM swaps WHERE hashlock=?", (hashlock,)
                ).fetchone()
                if row is not None:
                    raise HashlockInUse(hashlock, row[0])
                state, terminal, version, body, swap_id = self._row(swap)
                db.execute(
                    "INSERT INTO swaps VALUES (?, ?, ?, ?, ?, ?)",
                    (swap_id, hashlock, state, terminal, version, body),
                )

    def update(self, swap: Swap) -> None:
        self.update_many([swap])

    def update_many(self, swaps: Sequence[Swap]) -> None:
        with self._tx() as db:
            staged: dict[str, Swap] = {}
            for s in swaps:
                prev = staged.get(s.swap_id)
                if prev is not None:
                    stored = prev.version
                else:
                    row = db.execute(
                        "SELECT version FROM swaps WHERE swap_id=?", (s.swap_id,)
                    ).fetchone()
                    if row is None:
                        raise SwapNotFound(s.swap_id)
                    stored = row[0]
                if s.version != stored + 1:
                    raise StaleSwap(s.swap_id, stored, s.version)
                staged[s.swap_id] = s
            db.executemany(
                "UPDATE swaps SET state=?, terminal=?, version=?, body=? WHERE swap_id=?",
                [self._row(s) for s in staged.values()],
            )

    @staticmethod
    def _get(db: sqlite3.Connection, swap_id: str) -> Swap | None:
        row = db.execute("SELECT body FROM swaps WHERE swap_id=?", (swap_id,)).fetchone()
        return None if row is None else Swap.from_json(orjson.loads(row[0]))

    def get(self, swap_id: str) -> Swap | None:
        return self._get(self._db, swap_id)

    def active(self) -> list[Swap]:
        rows = self._db.execute("SELECT body FROM swaps WHERE terminal=0 ORDER BY swap_id")
        return [Swap.from_json(orjson.loads(r[0])) for r in rows]

    def all(self) -> list[Swap]:
        rows = self._db.execute("SELECT body FROM swaps ORDER BY swap_id")
        return [Swap.from_json(orjson.loads(r[0])) for r in rows]

    def get_cursor(self, chain_id: str) -> int | None:
        row = self._db.execute("SELECT height FROM cursors WHERE chain_id=?", (chain_id,))
        found = row.fetchone()
        return None if found is None else int(found[0])

    def set_cursor(self, chain_id: str, height: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (chain_id, height))

    def close(self) -> None:
        self._db.close()

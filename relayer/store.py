"""The daemon's state in SQLite, in its data dir: cursors per worker and small snapshots.

A worker's cursor is the last source height whose work is done (delivered, or provably
not needed); it is written only after the destination committed, so a restart, even
after ``kill -9``, redoes at most the last batch, and the destination refuses what it
already has. One process per data dir: :class:`~chains.service.datadir.DataDirLock`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from chains.encoding import JSONValue
from chains.errors import StoreError
from chains.service.datadir import DataDirLock, DataDirLocked
from chains.sqlite import connect, transaction

__all__ = ["DataDirLock", "DataDirLocked", "RelayerStore"]

# one lock helper for every process that owns a data dir (a chain node, this daemon)


class RelayerStore:
    """Cursors and snapshots; every write is its own committed, fsynced transaction."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = connect(path, synchronous="FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS cursors"
                " (worker TEXT PRIMARY KEY, height INTEGER NOT NULL) WITHOUT ROWID"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS snapshots (name TEXT PRIMARY KEY, value BLOB NOT NULL)"
                " WITHOUT ROWID"
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the relayer store: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def cursor(self, worker: str) -> int | None:
        row = self._db.execute("SELECT height FROM cursors WHERE worker = ?", (worker,)).fetchone()
        return None if row is None else int(row[0])

    def cursors(self) -> dict[str, int]:
        return {w: int(h) for w, h in self._db.execute("SELECT worker, height FROM cursors")}

    def set_cursor(
        self, worker: str, height: int, snapshot: tuple[str, JSONValue] | None = None
    ) -> None:
        """Advance a cursor (and, atomically with it, a snapshot the worker keeps)."""
        try:
            with transaction(self._db) as db:
                db.execute(
                    "INSERT INTO cursors (worker, height) VALUES (?, ?)"
                    " ON CONFLICT(worker) DO UPDATE SET height = excluded.height",
                    (worker, height),
                )
                if snapshot is not None:
                    name, value = snapshot
                    db.execute(
                        "INSERT INTO snapshots (name, value) VALUES (?, ?)"
                        " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                        (name, orjson.dumps(value)),
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"relayer store: cannot write cursor {worker}: {exc}") from None

    def snapshot(self, name: str) -> JSONValue | None:
        row = self._db.execute("SELECT value FROM snapshots WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        try:
            value: JSONValue = orjson.loads(row[0])
        except orjson.JSONDecodeError:
            raise StoreError(f"relayer store: snapshot {name!r} is corrupt") from None
        return value

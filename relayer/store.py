"""The daemon's state in SQLite, in its data dir: cursors per worker and small snapshots.

A worker's cursor is the last source height whose work is done (delivered, or provably
not needed); it is written only after the destination committed, so a restart, even
after ``kill -9``, redoes at most the last batch, and the destination refuses what it
already has. One process per data dir: :class:`DataDirLock` takes an exclusive
``flock`` that the kernel releases when the process dies, so a crashed daemon never
leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Self

import orjson

from chains.encoding import JSONValue
from chains.errors import ConfigError, StoreError

__all__ = ["DataDirLock", "DataDirLocked", "RelayerStore"]


class DataDirLocked(ConfigError):
    """Another process holds the data dir."""

    code = "data_dir_locked"

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path}: another interlock process is using this data dir")


class DataDirLock:
    """An exclusive lock on a data dir for the life of this object (``with`` block)."""

    def __init__(self, data_dir: Path, name: str = "interlock.lock") -> None:
        self.path = data_dir / name
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirLocked(self.path.parent) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class RelayerStore:
    """Cursors and snapshots; every write is its own committed, fsynced transaction."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
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
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO cursors (worker, height) VALUES (?, ?)"
                    " ON CONFLICT(worker) DO UPDATE SET height = excluded.height",
                    (worker, height),
                )
                if snapshot is not None:
                    name, value = snapshot
                    self._db.execute(
                        "INSERT INTO snapshots (name, value) VALUES (?, ?)"
                        " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                        (name, orjson.dumps(value)),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
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

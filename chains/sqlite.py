"""The one way this project opens a SQLite file it owns and writes to it in a transaction.

Every store (the node's blocks and state, the relayer's cursors, a party's swaps) keeps
its data in one SQLite file in WAL mode, written in explicit ``BEGIN IMMEDIATE`` ...
``COMMIT`` transactions (``isolation_level=None``: the ``sqlite3`` module opens none of
its own). :func:`transaction` is that transaction: a write lock taken up front (no
deadlock between two writers that both read first), ``COMMIT`` inside the guarded block
(a failed ``COMMIT`` must not leave the transaction open) and ``ROLLBACK`` on any
exception, ``BaseException`` included (a cancelled task or a simulated crash writes
nothing half).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from chains.errors import StoreError

__all__ = ["SYNCHRONOUS", "connect", "open_store", "transaction"]

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
"""SQLite's ``synchronous`` levels; the stores default to FULL (a power loss keeps every
commit that was answered)."""


def connect(path: str | Path, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are :func:`transaction`'s), usable
    from a worker thread, on a WAL journal with ``synchronous`` (default FULL). Raises
    ``sqlite3.Error`` / ``ValueError``; each store turns them into its own typed error."""
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"unknown synchronous mode {synchronous!r}")
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        db.close()
        raise
    return db


def open_store(
    path: Path, schema: str, what: str, *, synchronous: str = "FULL"
) -> sqlite3.Connection:
    """:func:`connect` to ``path`` (its directory made if missing) with ``schema``
    applied; a failure is one :class:`StoreError` line naming ``what`` and the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(path, synchronous=synchronous)
        try:
            db.executescript(schema)
        except BaseException:
            db.close()
            raise
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open {what} {path}: {exc}") from None
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``with transaction(db) as db: ...``: all of the block's writes, or none of them."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")  # inside: a failed COMMIT must not leave the tx open
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise

"""The SQLite :class:`~htlc.store.SwapStore`: a party's swaps survive a crash.

One file, WAL journal, ``synchronous=FULL`` by default: a transition the driver persisted
before submitting its transaction is on disk before the transaction exists, which is what
makes a resumed driver neither lose a claim nor act twice. Swaps are stored as their
canonical JSON, with the columns the store's rules need (hashlock uniqueness, version
check, active index).

The swap's secret (the preimage) is never in the file in clear: it is sealed with
AES-256-GCM under a key derived from the party's signing key
(:func:`interlock.keys.derive_at_rest_key`), bound to the swap id, in its own column; the
JSON body has ``"secret": null``. A store opened without a key reads swaps without their
secret (enough to list them) and refuses to write one (:class:`SwapKeyNeeded`); a key
that does not open a sealed secret is refused in one line (:class:`WrongSwapKey`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import orjson

from chains.crypto import PrivateKey
from chains.errors import StoreError
from chains.sqlite import SYNCHRONOUS, connect, transaction
from htlc.errors import HashlockInUse, StaleSwap, SwapExists, SwapNotFound
from htlc.swap import Swap
from interlock.errors import SwapKeyNeeded, WrongSwapKey
from interlock.keys import derive_at_rest_key, open_at_rest, seal_at_rest

__all__ = ["SQLiteSwapStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS swaps (
    swap_id  TEXT PRIMARY KEY,
    hashlock TEXT NOT NULL UNIQUE,
    state    TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    version  INTEGER NOT NULL,
    body     BLOB NOT NULL,
    sealed   BLOB
);
CREATE INDEX IF NOT EXISTS swaps_active ON swaps (terminal);
CREATE TABLE IF NOT EXISTS cursors (chain_id TEXT PRIMARY KEY, height INTEGER NOT NULL);
"""

SECRET_PURPOSE = b"interlock/swap-store/secret/v1"
"""HKDF ``info`` of the key that seals swap secrets (no other use shares it)."""


class SQLiteSwapStore:
    """Swaps and per-chain cursors in one SQLite file."""

    def __init__(
        self, path: str | Path, *, key: PrivateKey | None = None, synchronous: str = "FULL"
    ) -> None:
        """``key``: the party's signing key, whose seed seals the swaps' secrets."""
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.path = Path(path)
        self._seal_key = None if key is None else derive_at_rest_key(key, SECRET_PURPOSE)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = connect(self.path, synchronous=synchronous)
            self._db.executescript(_SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(swaps)")}
            if "sealed" not in columns:  # a store from before secrets were sealed
                self._db.execute("ALTER TABLE swaps ADD COLUMN sealed BLOB")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open swap store {self.path}: {exc}") from None

    def _row(self, swap: Swap) -> tuple[str, int, int, bytes, bytes | None, str]:
        """The columns of ``swap``: the body without the secret, and the sealed secret."""
        body = swap.to_json()
        body["secret"] = None
        sealed = None
        if swap.secret is not None:
            if self._seal_key is None:
                raise SwapKeyNeeded(self.path, swap.swap_id)
            sealed = seal_at_rest(self._seal_key, swap.secret, _aad(swap.swap_id))
        return (
            swap.state.value,
            int(swap.is_terminal),
            swap.version,
            orjson.dumps(body),
            sealed,
            swap.swap_id,
        )

    def _load(self, body: bytes, sealed: bytes | None) -> Swap:
        swap = Swap.from_json(orjson.loads(body))
        if sealed is None or self._seal_key is None:
            return swap  # no secret, or a store opened to list swaps
        secret = open_at_rest(self._seal_key, sealed, _aad(swap.swap_id))
        if secret is None:
            raise WrongSwapKey(self.path, swap.swap_id)
        return replace(swap, secret=secret)

    def create(self, swap: Swap) -> None:
        self.create_many([swap])

    def create_many(self, swaps: Sequence[Swap]) -> None:
        with transaction(self._db) as db:
            for swap in swaps:
                if db.execute("SELECT 1 FROM swaps WHERE swap_id=?", (swap.swap_id,)).fetchone():
                    raise SwapExists(swap.swap_id)
                hashlock = swap.terms.hashlock.hex()
                row = db.execute(
                    "SELECT swap_id FROM swaps WHERE hashlock=?", (hashlock,)
                ).fetchone()
                if row is not None:
                    raise HashlockInUse(hashlock, row[0])
                state, terminal, version, body, sealed, swap_id = self._row(swap)
                db.execute(
                    "INSERT INTO swaps VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (swap_id, hashlock, state, terminal, version, body, sealed),
                )

    def update(self, swap: Swap) -> None:
        self.update_many([swap])

    def update_many(self, swaps: Sequence[Swap]) -> None:
        with transaction(self._db) as db:
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
            # a swap read without a key has no secret: keep the sealed one it has
            db.executemany(
                "UPDATE swaps SET state=?, terminal=?, version=?, body=?, "
                "sealed=COALESCE(?, sealed) WHERE swap_id=?",
                [self._row(s) for s in staged.values()],
            )

    def get(self, swap_id: str) -> Swap | None:
        row = self._db.execute(
            "SELECT body, sealed FROM swaps WHERE swap_id=?", (swap_id,)
        ).fetchone()
        return None if row is None else self._load(row[0], row[1])

    def active(self) -> list[Swap]:
        rows = self._db.execute(
            "SELECT body, sealed FROM swaps WHERE terminal=0 ORDER BY swap_id"
        ).fetchall()
        return [self._load(body, sealed) for body, sealed in rows]

    def all(self) -> list[Swap]:
        rows = self._db.execute("SELECT body, sealed FROM swaps ORDER BY swap_id").fetchall()
        return [self._load(body, sealed) for body, sealed in rows]

    def get_cursor(self, chain_id: str) -> int | None:
        row = self._db.execute("SELECT height FROM cursors WHERE chain_id=?", (chain_id,))
        found = row.fetchone()
        return None if found is None else int(found[0])

    def set_cursor(self, chain_id: str, height: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (chain_id, height))

    def close(self) -> None:
        self._db.close()


def _aad(swap_id: str) -> bytes:
    # bound to its swap: a sealed secret moved to another row does not open
    return b"interlock swap secret " + swap_id.encode()

"""The key-value state of a chain and its incremental commitment (``state_root``).

Keys are printable strings namespaced by module (``bank/bal/<addr>/<denom>``); values are
canonical-JSON values and are treated as immutable: always ``set`` a new value, never
mutate one in place.

The root must not cost a rehash of all state per block, so the key space is cut into
2^16 buckets by ``crc32(key)``; a bucket's hash is
``hash_leaf(canonical(sorted [[key, value], ...]))`` and the root is a fixed-depth binary
tree of ``hash_node`` over the 65,536 bucket hashes. A block re-hashes only the buckets it
touched and the 16 nodes above each one. Untouched subtrees are shared default hashes, so
an empty state costs nothing to build.

Transactions are atomic through a journal: ``begin`` / ``commit`` / ``rollback``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from hashlib import sha256
from typing import Any

import orjson

from chains.encoding import canonical
from chains.merkle import hash_leaf, hash_node

__all__ = ["BUCKET_BITS", "State"]

BUCKET_BITS = 16
_NBUCKETS = 1 << BUCKET_BITS
_MASK = _NBUCKETS - 1
_MISSING: Any = object()

# default hash of an all-empty subtree, by depth above the buckets (0 = one bucket)
_DEFAULTS = [hash_leaf(canonical([]))]
for _ in range(BUCKET_BITS):
    _DEFAULTS.append(hash_node(_DEFAULTS[-1], _DEFAULTS[-1]))


def _bucket(key: str) -> int:
    return zlib.crc32(key.encode()) & _MASK


class State:
    """The one mutable store of a chain's state."""

    __slots__ = ("_buckets", "_changed", "_data", "_dirty", "_journal", "_nodes")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = {}
        self._buckets: dict[int, set[str]] = {}  # maintained by root()
        # keys written or deleted since the last root(): bucketed there, once per key per
        # block, rather than on every write (a transfer writes three keys)
        self._dirty: set[str] = set()
        self._nodes: dict[int, bytes] = {}  # heap index (1 = root) -> hash, sparse
        self._journal: list[tuple[str, Any]] | None = None
        self._changed: set[str] = set()
        for k, v in (items or {}).items():
            self.set(k, v)
        self._changed.clear()

    # --- reads ---------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Entries whose key starts with ``prefix``, in key order."""
        for k in sorted(k for k in self._data if k.startswith(prefix)):
            yield k, self._data[k]

    # --- writes --------------------------------------------------------------------
    def set(self, key: str, value: Any) -> None:
        data = self._data
        if self._journal is not None:
            self._journal.append((key, data.get(key, _MISSING)))
        data[key] = value
        self._dirty.add(key)
        self._changed.add(key)

    def delete(self, key: str) -> None:
        data = self._data
        if key not in data:
            return
        if self._journal is not None:
            self._journal.append((key, data[key]))
        del data[key]
        self._dirty.add(key)
        self._changed.add(key)

    # --- transactions ----------------------------------------------------------------
    def begin(self) -> None:
        if self._journal is not None:
            raise RuntimeError("nested state transaction")
        self._journal = []

    def commit(self) -> None:
        self._journal = None

    def validate_pending(self) -> None:
        """Raise :class:`EncodingError` if a value written in the open transaction is not
        JSON (the root could not be built); changes nothing. A chain calls it before
        ``commit`` so a module's bad write fails that transaction, not the block."""
        data = self._data
        for key, _ in self._journal or ():
            value = data.get(key, _MISSING)
            if type(value) is int and -(2**63) <= value < 2**63:
                continue  # balances, nonces: the common case, checked without encoding
            if value is not _MISSING:
                canonical(value)

    def rollback(self) -> None:
        journal, self._journal = self._journal, None
        if journal is None:
            raise RuntimeError("rollback without begin")
        for key, old in reversed(journal):
            if old is _MISSING:
                self.delete(key)
            else:
                self.set(key, old)

    # --- commitment ------------------------------------------------------------------
    def root(self) -> bytes:
        """The state root; re-hashes only what changed since the last call."""
        if self._journal is not None:
            raise RuntimeError("state root inside an open transaction")
        # Hot path (runs once per block over every touched bucket): hash_leaf / hash_node
        # and canonical() are inlined as the same byte strings they produce.
        nodes = self._nodes
        data = self._data
        buckets = self._buckets
        dumps, sort_keys, h = orjson.dumps, orjson.OPT_SORT_KEYS, sha256
        touched: set[int] = set()
        for key in self._dirty:
            b = _bucket(key)
            if key in data:
                buckets.setdefault(b, set()).add(key)
            elif b in buckets:
                buckets[b].discard(key)
            touched.add(b)
        self._dirty.clear()
        level: set[int] = set()
        for b in touched:
            keys = buckets.get(b)
            idx = _NBUCKETS + b
            if keys:
                entries = [[k, data[k]] for k in sorted(keys)]
                nodes[idx] = h(b"\x00" + dumps(entries, option=sort_keys)).digest()
            else:
                nodes.pop(idx, None)
            level.add(idx >> 1)
        depth = 1
        while level:
            dflt = _DEFAULTS[depth - 1]
            get = nodes.get
            for i in level:
                left = get(2 * i, dflt)
                right = get(2 * i + 1, dflt)
                if left is dflt and right is dflt:
                    nodes.pop(i, None)
                else:
                    nodes[i] = h(b"\x01" + left + right).digest()
            level = {i >> 1 for i in level if i > 1}
            depth += 1
        return nodes.get(1, _DEFAULTS[BUCKET_BITS])

    def take_changes(self) -> dict[str, Any]:
        """Keys written since the last call, with their value (``None`` = deleted)."""
        changed, self._changed = self._changed, set()
        return {k: self._data.get(k) for k in changed}

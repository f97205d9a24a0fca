"""The key-value state of a chain and its incremental commitment (``state_root``).

Keys are printable strings namespaced by module (``bank/bal/<addr>/<denom>``); values are
canonical-JSON values and are treated as immutable: always ``set`` a new value, never
mutate one in place.

The root must not cost a rehash of all state per block, so the key space is cut into
2^16 buckets by the first two bytes of ``SHA-256(key)``; a bucket's hash is
``hash_leaf(canonical(sorted [[key, value], ...]))`` and the root is a fixed-depth binary
tree of ``hash_node`` over the 65,536 bucket hashes. A block re-hashes only the buckets it
touched and the 16 nodes above each one. Untouched subtrees are shared default hashes, so
an empty state costs nothing to build.

Why SHA-256 and not ``crc32`` (the layout before): keys are chosen by users (addresses,
lock ids, denoms) and a bucket costs a re-hash of all its entries whenever one is
written. CRC32 is linear, so anyone could make any number of keys land in one bucket at
no cost and make every later write to it expensive for every validator; with SHA-256
each such key costs ~2^16 hash evaluations to find, and a write to state to place. The
change changes every state root: a data dir written with crc32 buckets is refused at
start (its state no longer matches its last header's root), so start it afresh; the
genesis, its hash and every config stay valid.

Transactions are atomic through a journal: ``begin`` / ``commit`` / ``rollback``.

A block may be built in pieces, with other work (RPC reads) in between: between
``begin_block`` and ``end_block`` the state records the value every written key had
before the block, and :meth:`State.committed` is a read-only view of the state as of the
last block, so a read never sees a half-built block.

Reads by prefix or key range cost what they return: the keys are also kept in order in
:class:`SortedKeys` (chunks of a few hundred keys under a bisected index of their last
keys), so ``items(prefix)`` bisects to the first match and stops at the first miss instead
of filtering and sorting every key in state. A key is indexed when it is created and
dropped when it is deleted; writes to an existing key (the common case) do not touch it.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Mapping
from hashlib import sha256
from typing import Any

import orjson

from chains.encoding import canonical
from chains.merkle import hash_leaf, hash_node

__all__ = ["BUCKET_BITS", "CommittedView", "SortedKeys", "State"]

BUCKET_BITS = 16
_NBUCKETS = 1 << BUCKET_BITS
_MASK = _NBUCKETS - 1
_MISSING: Any = object()

# default hash of an all-empty subtree, by depth above the buckets (0 = one bucket)
_DEFAULTS = [hash_leaf(canonical([]))]
for _ in range(BUCKET_BITS):
    _DEFAULTS.append(hash_node(_DEFAULTS[-1], _DEFAULTS[-1]))


def _bucket(key: str) -> int:
    d = sha256(key.encode()).digest()
    return (d[0] << 8 | d[1]) & _MASK


class SortedKeys:
    """A set of strings in order, with O(log n) insert and delete and range scans that
    cost O(log n + what they return). Chunked like ``sortedcontainers.SortedList``: a
    list of sorted chunks and the list of their last keys to bisect."""

    __slots__ = ("_chunks", "_len", "_maxes", "_version")

    _LOAD = 512  # a chunk splits above 2 * _LOAD keys: insort moves at most ~8 KiB

    def __init__(self, keys: Iterable[str] = ()) -> None:
        ordered = sorted(keys)
        load = self._LOAD
        self._chunks: list[list[str]] = [
            ordered[i : i + load] for i in range(0, len(ordered), load)
        ]
        self._maxes: list[str] = [c[-1] for c in self._chunks]
        self._len = len(ordered)
        self._version = 0  # bumped by every add / discard: lets a scan survive them

    def __len__(self) -> int:
        return self._len

    def add(self, key: str) -> None:
        """Insert ``key``, which the caller knows is absent."""
        maxes, chunks = self._maxes, self._chunks
        self._len += 1
        self._version += 1
        if not maxes:
            chunks.append([key])
            maxes.append(key)
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):  # beyond every key: the last chunk takes it
            i -= 1
            chunks[i].append(key)
            maxes[i] = key
        else:
            insort(chunks[i], key)
        chunk = chunks[i]
        if len(chunk) > 2 * self._LOAD:
            half = len(chunk) >> 1
            chunks.insert(i + 1, chunk[half:])
            del chunk[half:]
            maxes.insert(i, chunk[-1])

    def discard(self, key: str) -> None:
        maxes, chunks = self._maxes, self._chunks
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return
        chunk = chunks[i]
        j = bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            return
        del chunk[j]
        self._len -= 1
        self._version += 1
        if chunk:
            maxes[i] = chunk[-1]
        else:
            del chunks[i], maxes[i]

    def range(self, start: str, stop: str | None, prefix: str = "") -> Iterator[str]:
        """Keys ``k`` with ``start <= k < stop`` (no upper bound if ``stop`` is None) that
        start with ``prefix``, ascending, lazily. Keys with one prefix are contiguous, so
        the scan ends at the first that does not match. Adding or discarding keys while
        iterating is allowed: the scan then resumes after the last key it yielded."""
        maxes, chunks = self._maxes, self._chunks
        i = bisect_left(maxes, start)
        j = bisect_left(chunks[i], start) if i < len(chunks) else 0
        version = self._version
        while i < len(chunks):
            chunk = chunks[i]
            if j >= len(chunk):
                i, j = i + 1, 0
                continue
            k = chunk[j]
            if (stop is not None and k >= stop) or not k.startswith(prefix):
                return
            yield k
            if self._version != version:  # the caller changed the set: find our place
                version = self._version
                i = bisect_right(maxes, k)
                j = bisect_right(chunks[i], k) if i < len(chunks) else 0
            else:
                j += 1

    def range_reversed(self, start: str, stop: str | None, prefix: str = "") -> Iterator[str]:
        """The keys of :meth:`range`, descending."""
        chunks = self._chunks
        i, j = self._position_before(stop)
        version = self._version
        while i >= 0:
            if j <= 0:
                i -= 1
                j = len(chunks[i]) if i >= 0 else 0
                continue
            k = chunks[i][j - 1]
            if k < start or not k.startswith(prefix):
                return
            yield k
            if self._version != version:
                version = self._version
                i, j = self._position_before(k)
            else:
                j -= 1

    def _position_before(self, stop: str | None) -> tuple[int, int]:
        """(chunk, offset) such that ``chunks[chunk][offset - 1]`` is the greatest key below
        ``stop`` (chunk -1: none)."""
        chunks = self._chunks
        if stop is not None:
            i = bisect_left(self._maxes, stop)
            if i < len(chunks):
                return i, bisect_left(chunks[i], stop)
        return len(chunks) - 1, (len(chunks[-1]) if chunks else 0)


def _bounds(prefix: str, start: str, stop: str | None) -> tuple[str, str | None]:
    """The key range ``[lo, hi)`` holding exactly the keys with ``prefix`` in
    ``[start, stop)`` (``hi`` None: unbounded)."""
    lo = max(start, prefix)
    hi = _prefix_end(prefix) if prefix else None
    if stop is not None and (hi is None or stop < hi):
        hi = stop
    return lo, hi


def _prefix_end(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: none is)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class State:
    """The one mutable store of a chain's state."""

    __slots__ = (
        "_buckets",
        "_changed",
        "_data",
        "_dirty",
        "_gone",
        "_journal",
        "_keys",
        "_nodes",
        "_undo",
    )

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(items or {})
        self._keys = SortedKeys(self._data)
        self._buckets: dict[int, set[str]] = {}  # maintained by root()
        # keys written or deleted since the last root(): bucketed there, once per key per
        # block, rather than on every write (a transfer writes three keys)
        self._dirty: set[str] = set()
        self._nodes: dict[int, bytes] = {}  # heap index (1 = root) -> hash, sparse
        self._journal: list[tuple[str, Any]] | None = None
        self._changed: set[str] = set()
        self._dirty.update(self._data)
        # while a block is built: each written key's value before the block (_MISSING if
        # it had none), and the keys it had before and has no more
        self._undo: dict[str, Any] | None = None
        self._gone: set[str] = set()

    # --- reads ---------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def items(
        self,
        prefix: str = "",
        *,
        start: str = "",
        stop: str | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[str, Any]]:
        """Entries whose key starts with ``prefix`` and lies in ``[start, stop)``, in key
        order (descending if ``reverse``). Costs O(log n) plus what it yields; the keys
        are read lazily, and writes while iterating are allowed (the scan resumes after
        the last key it yielded)."""
        lo, hi = _bounds(prefix, start, stop)
        scan = self._keys.range_reversed if reverse else self._keys.range
        data = self._data
        for k in scan(lo, hi, prefix):
            yield k, data[k]

    # --- writes --------------------------------------------------------------------
    def set(self, key: str, value: Any) -> None:
        data = self._data
        old = data.get(key, _MISSING)
        if self._journal is not None:
            self._journal.append((key, old))
        if old is _MISSING:
            self._keys.add(key)
        undo = self._undo
        if undo is not None:
            if key not in undo:
                undo[key] = old
            self._gone.discard(key)
        data[key] = value
        self._dirty.add(key)
        self._changed.add(key)

    def delete(self, key: str) -> None:
        data = self._data
        if key not in data:
            return
        if self._journal is not None:
            self._journal.append((key, data[key]))
        undo = self._undo
        if undo is not None:
            if key not in undo:
                undo[key] = data[key]
            if undo[key] is not _MISSING:
                self._gone.add(key)
        del data[key]
        self._keys.discard(key)
        self._dirty.add(key)
        self._changed.add(key)

    # --- blocks built in pieces ------------------------------------------------------
    def begin_block(self) -> None:
        """Start recording pre-block values, so :meth:`committed` can serve reads."""
        if self._undo is not None:
            raise RuntimeError("a block is already being built")
        self._undo = {}

    def end_block(self) -> None:
        """The block is complete: reads of :meth:`committed` see it from now on."""
        self._undo = None
        self._gone = set()

    def committed(self) -> State:
        """The state as of the last complete block: a read-only view while a block is
        being built, else the state itself."""
        return self if self._undo is None else CommittedView(self)

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


class CommittedView(State):
    """Read-only: the state as it was before the block being built. Reads cost what they
    cost on the state, plus a merge with the keys the block deleted (rare)."""

    __slots__ = ("_live",)

    def __init__(self, live: State) -> None:  # no super().__init__: it holds no data
        self._live = live

    def _old(self, key: str) -> Any:
        undo = self._live._undo
        if undo is not None and key in undo:
            return undo[key]
        return self._live._data.get(key, _MISSING)

    def get(self, key: str, default: Any = None) -> Any:
        v = self._old(key)
        return default if v is _MISSING else v

    def __contains__(self, key: str) -> bool:
        return self._old(key) is not _MISSING

    def __len__(self) -> int:
        raise TypeError("a committed view has no cheap length")

    def items(
        self,
        prefix: str = "",
        *,
        start: str = "",
        stop: str | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[str, Any]]:
        live = self._live
        undo = live._undo or {}
        lo, hi = _bounds(prefix, start, stop)
        gone = sorted(
            (k for k in live._gone if lo <= k and (hi is None or k < hi)), reverse=reverse
        )

        def current() -> Iterator[tuple[str, Any]]:
            for k, v in live.items(prefix, start=start, stop=stop, reverse=reverse):
                if k in undo:
                    v = undo[k]
                    if v is _MISSING:
                        continue  # created by the block being built
                yield k, v

        deleted = ((k, undo[k]) for k in gone)
        yield from heapq.merge(current(), deleted, key=lambda kv: kv[0], reverse=reverse)

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise RuntimeError("the committed view of a state is read-only")

    set = delete = begin = commit = rollback = root = take_changes = _read_only
    begin_block = end_block = validate_pending = _read_only

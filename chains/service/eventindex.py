"""The event index: committed events found by type and attribute, newest first.

What CometBFT's kv indexer gives (``tx_search``, event queries by attribute), for the
history a chain's state no longer holds: the bridge prunes a transfer's ``sent`` record
once it settles, but its ``locked``, ``minted`` and ``acknowledged`` events stay in the
blocks. Per committed event the index keeps one row for its type (with the event's
committed bytes, so a search answers without decoding blocks) and one per indexed
attribute value, each mapping to the event's ``(height, index)``, whose RFC 6962 proof
``GET /events/{height}/{index}`` serves.

Which events: the chain's ``[index] types``, patterns in order, the last that matches an
event's type deciding (``*``, ``module.*``, ``module.name``, each negated by a leading
``!``); by default :data:`DEFAULT_TYPES`, every type but ``bank.transfer``. A bank
transfer is the ledger's hot path (one event per transaction at ~10,000/s), its three
rows cost ~11 us, ~12 % of a committed transfer (``bench/ledger.py --index all``), and its
history is the sender's and recipient's to keep; every other module's events are rare.

Indexed attributes (a small fixed set; everything else is only in the blocks):

* addresses: ``sender``, ``recipient``, ``receiver``, ``from``, ``to``, ``address``,
  ``claimer``, when the value is an address (40 lowercase hex digits);
* ids: ``lock_id`` and ``hashlock`` (htlc: a swap's two locks share a hashlock, so the
  claim that reveals a lock's secret is found on either chain), ``client_id`` (light
  clients), ``src_chain``, ``dst_chain`` (bridge), strings of at most :data:`MAX_VALUE`
  characters;
* ``transfer``, derived: ``SRC:DST:NONCE`` for an event with an integer ``nonce`` and a
  ``src_chain`` or ``dst_chain`` (the missing side is this chain), so that every event of
  one bridge transfer on either chain (``locked``, ``minted``, ``expired``, ``refunded``,
  ``acknowledged``...) is found by its transfer id.

Consistency: the rows are written by :meth:`EventIndex.index_block`, which the block
store (:class:`chains.node.SQLiteBlockStore`) calls inside the block's own transaction,
so a ``kill -9`` leaves block and rows together or neither; an index switched on over
existing blocks catches up from its tip when the store opens, and starts over if its tip
is not a block of the store any more. A reorganisation's rewind removes the rows above
the fork in the same transaction.

Bounds on a search: 1..:data:`MAX_TYPES` types, at most one attribute, at most
:data:`MAX_LIMIT` results a page; each type is one range scan of the primary key of at
most ``limit`` rows, so a request reads at most ``MAX_TYPES * limit`` index rows and
``limit`` event rows whatever the chain holds. ``before`` pages backwards.

Errors::

    InterlockError
    └── BadEventQuery     a search the index cannot answer (one line; nothing read)
        └── TypeNotIndexed    an event type this chain's ``[index] types`` leave out
"""

from __future__ import annotations

import heapq
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from chains.errors import InterlockError
from chains.types import Block, Event

__all__ = [
    "ADDRESS_ATTRIBUTES",
    "DEFAULT_TYPES",
    "ID_ATTRIBUTES",
    "INDEXED_ATTRIBUTES",
    "MAX_LIMIT",
    "MAX_TYPES",
    "BadEventQuery",
    "EventIndex",
    "EventQuery",
    "IndexedEvent",
    "TypeNotIndexed",
    "compute_index_rows",
    "is_type_indexed",
    "parse_cursor",
    "validate_query",
    "validate_type_patterns",
]

ADDRESS_ATTRIBUTES = frozenset(
    {"sender", "recipient", "receiver", "from", "to", "address", "claimer"}
)
ID_ATTRIBUTES = frozenset({"lock_id", "hashlock", "client_id", "src_chain", "dst_chain"})
TRANSFER = "transfer"
INDEXED_ATTRIBUTES = ADDRESS_ATTRIBUTES | ID_ATTRIBUTES | {TRANSFER}
MAX_VALUE = 128
"""Longest attribute value indexed (longer ones are only in the blocks)."""
MAX_TYPES = 8
MAX_LIMIT = 100
DEFAULT_LIMIT = 20

ROWS_VERSION = 2
"""Which attributes the rows hold (2: ``hashlock`` added). An index written under another
version is rebuilt when its store opens, as one under other ``types`` is: a search must
never miss a row only because its block was indexed before the attribute was."""

DEFAULT_TYPES = ("*", "!bank.transfer")
"""Every event type but the bank's transfers (see the module docstring)."""
_PATTERN = re.compile(r"!?(\*|[a-z][a-z0-9_]{0,31}\.(\*|[a-z][a-z0-9_]{0,63}))")

_ADDRESS = re.compile(r"[0-9a-f]{40}")
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,63}")
_CURSOR = re.compile(r"(0|[1-9][0-9]{0,17})(?:\.(0|[1-9][0-9]{0,17}))?")


class BadEventQuery(InterlockError):
    """An event search the index refuses; ``field`` names the offending part."""

    code = "bad_request"

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


class TypeNotIndexed(BadEventQuery):
    """The chain does not index this event type (its ``[index] types``)."""

    code = "not_indexed"

    def __init__(self, event_type: str) -> None:
        self.event_type = event_type
        super().__init__("type", f"{event_type} is not indexed on this chain")


@dataclass(frozen=True, slots=True)
class EventQuery:
    """One page of a search, newest first."""

    types: tuple[str, ...]
    """Event types (``module.name``), 1..MAX_TYPES; an event of any of them matches."""
    attr: tuple[str, str] | None = None
    """``(name, value)``: only events whose indexed attribute ``name`` is ``value``."""
    limit: int = DEFAULT_LIMIT
    """Most events answered, 1..MAX_LIMIT."""
    before: tuple[int, int] | None = None
    """Only events strictly before this ``(height, index)`` (the previous page's
    ``next``); ``(h, 0)`` is everything below height ``h``."""


@dataclass(frozen=True, slots=True)
class IndexedEvent:
    """A search result: where the event is, and its committed bytes."""

    height: int
    """Block height."""
    index: int
    """Position in the block's events (the ``event_root`` leaf index)."""
    leaf: bytes
    """``Event.leaf()``: the canonical JSON committed in the header's ``event_root``."""

    @property
    def cursor(self) -> str:
        return f"{self.height}.{self.index}"


def parse_cursor(text: str) -> tuple[int, int]:
    """``H`` (below height H) or ``H.I`` (before event I of height H)."""
    m = _CURSOR.fullmatch(text)
    if m is None:
        raise BadEventQuery("before", f"expected HEIGHT or HEIGHT.INDEX, got {text[:40]!r}")
    return int(m.group(1)), int(m.group(2) or 0)


def validate_query(q: EventQuery) -> None:
    """Refuse a search the index cannot answer within its bounds; changes nothing."""
    if not 1 <= len(q.types) <= MAX_TYPES:
        raise BadEventQuery("type", f"expected 1..{MAX_TYPES} event types")
    for t in q.types:
        if not isinstance(t, str) or not _TYPE.fullmatch(t):
            raise BadEventQuery("type", f"expected module.name, got {str(t)[:40]!r}")
    if len(set(q.types)) != len(q.types):
        raise BadEventQuery("type", "an event type is given twice")
    if q.attr is not None:
        name, value = q.attr
        if name not in INDEXED_ATTRIBUTES:
            shown = ", ".join(sorted(INDEXED_ATTRIBUTES))
            raise BadEventQuery("attr", f"{name[:40]!r} is not indexed (indexed: {shown})")
        if not 1 <= len(value) <= MAX_VALUE or not value.isprintable():
            raise BadEventQuery("attr", f"expected a value of 1..{MAX_VALUE} printable characters")
    if isinstance(q.limit, bool) or not 1 <= q.limit <= MAX_LIMIT:
        raise BadEventQuery("limit", f"expected 1..{MAX_LIMIT}")
    if q.before is not None and (q.before[0] < 0 or q.before[1] < 0):
        raise BadEventQuery("before", "expected a height and an index >= 0")


def validate_type_patterns(patterns: Sequence[str]) -> None:
    """Refuse a malformed ``[index] types`` list (raises ValueError, for the config)."""
    if not 1 <= len(patterns) <= 64:
        raise ValueError("expected 1..64 patterns")
    for p in patterns:
        if not isinstance(p, str) or not _PATTERN.fullmatch(p):
            raise ValueError(f"expected *, module.* or module.name, each maybe !negated: {p!r}")


def is_type_indexed(patterns: Sequence[str], event_type: str) -> bool:
    """Whether ``event_type`` is indexed under ``patterns`` (the last match decides)."""
    module = event_type.split(".", 1)[0]
    decided = False
    for p in patterns:
        negated, body = p.startswith("!"), p.lstrip("!")
        if body == "*" or body == event_type or body == f"{module}.*":
            decided = not negated
    return decided


def _attribute_rows(chain_id: str, event: Event) -> Iterable[tuple[str, str]]:
    attrs = event.attributes
    for name, value in attrs.items():
        if not isinstance(value, str):
            continue
        if name in ADDRESS_ATTRIBUTES:
            if _ADDRESS.fullmatch(value):
                yield name, value
        elif name in ID_ATTRIBUTES and 0 < len(value) <= MAX_VALUE:
            yield name, value
    nonce = attrs.get("nonce")
    src, dst = attrs.get("src_chain", chain_id), attrs.get("dst_chain", chain_id)
    if (
        isinstance(nonce, int)
        and not isinstance(nonce, bool)
        and nonce >= 0
        and ("src_chain" in attrs or "dst_chain" in attrs)
        and isinstance(src, str)
        and isinstance(dst, str)
    ):
        key = f"{src}:{dst}:{nonce}"
        if len(key) <= MAX_VALUE:
            yield TRANSFER, key


def compute_index_rows(
    chain_id: str,
    height: int,
    events: Sequence[Event],
    is_indexed: Callable[[str], bool] = lambda _: True,
) -> tuple[list[tuple[str, int, int, bytes]], list[tuple[str, str, str, int, int]]]:
    """The rows of one block's events: ``(type, height, index, leaf)`` per indexed event
    and ``(type, attr, value, height, index)`` per indexed attribute value."""
    types: list[tuple[str, int, int, bytes]] = []
    attrs: list[tuple[str, str, str, int, int]] = []
    for i, e in enumerate(events):
        if not is_indexed(e.type):
            continue
        types.append((e.type, height, i, e.leaf()))
        for name, value in _attribute_rows(chain_id, e):
            attrs.append((e.type, name, value, height, i))
    return types, attrs


class EventIndex:
    """The index, over the block store's SQLite file (a :class:`chains.node.BlockIndexer`).

    Its writes run in the store's transactions; :meth:`search` reads through the store's
    reading connection (``SQLiteBlockStore.reader``), which sees committed blocks only.
    """

    schema = """
    CREATE TABLE IF NOT EXISTS event_types (type TEXT NOT NULL, height INTEGER NOT NULL,
        idx INTEGER NOT NULL, leaf BLOB NOT NULL, PRIMARY KEY (type, height, idx)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS event_attrs (type TEXT NOT NULL, attr TEXT NOT NULL,
        value TEXT NOT NULL, height INTEGER NOT NULL, idx INTEGER NOT NULL,
        PRIMARY KEY (type, attr, value, height, idx)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS event_index_tip (one INTEGER PRIMARY KEY CHECK (one = 1),
        height INTEGER NOT NULL, hash BLOB NOT NULL, types TEXT NOT NULL);
    """

    def __init__(self, types: Sequence[str] = DEFAULT_TYPES) -> None:
        validate_type_patterns(types)
        self.types = tuple(types)
        """Which event types are indexed (patterns; see the module docstring)."""
        self._types_text = f"{','.join(self.types)};rows={ROWS_VERSION}"
        self._decided: dict[str, bool] = {}

    def is_indexed(self, event_type: str) -> bool:
        """Whether events of ``event_type`` are indexed here."""
        got = self._decided.get(event_type)
        if got is None:
            if len(self._decided) > 4096:  # types are few; a flood of new ones is not cached
                return is_type_indexed(self.types, event_type)
            got = self._decided[event_type] = is_type_indexed(self.types, event_type)
        return got

    # --- writes (inside the block store's transaction) ------------------------------
    def indexed_tip(self, db: sqlite3.Connection) -> tuple[int, bytes] | None:
        row = db.execute("SELECT height, hash, types FROM event_index_tip").fetchone()
        if row is None or row[2] != self._types_text:
            return None  # never indexed, or under other [index] types or rows: index it all again
        return int(row[0]), bytes(row[1])

    def index_block(self, db: sqlite3.Connection, block: Block) -> None:
        h = block.header
        types, attrs = compute_index_rows(h.chain_id, h.height, block.events, self.is_indexed)
        if types:
            db.executemany("INSERT OR REPLACE INTO event_types VALUES (?, ?, ?, ?)", types)
        if attrs:
            db.executemany("INSERT OR REPLACE INTO event_attrs VALUES (?, ?, ?, ?, ?)", attrs)
        db.execute(
            "INSERT OR REPLACE INTO event_index_tip VALUES (1, ?, ?, ?)",
            (h.height, h.hash, self._types_text),
        )

    def rewind(self, db: sqlite3.Connection, height: int, tip: bytes | None) -> None:
        db.execute("DELETE FROM event_types WHERE height > ?", (height,))
        db.execute("DELETE FROM event_attrs WHERE height > ?", (height,))
        if tip is None:
            db.execute("DELETE FROM event_index_tip")
        else:
            db.execute(
                "INSERT OR REPLACE INTO event_index_tip VALUES (1, ?, ?, ?)",
                (height, tip, self._types_text),
            )

    def reset(self, db: sqlite3.Connection) -> None:
        for table in ("event_types", "event_attrs", "event_index_tip"):
            db.execute(f"DELETE FROM {table}")

    # --- reads ----------------------------------------------------------------------
    def search(self, db: sqlite3.Connection, q: EventQuery) -> list[IndexedEvent]:
        """One page of ``q``, newest first (validated first: :class:`BadEventQuery`)."""
        validate_query(q)
        for t in q.types:
            if not self.is_indexed(t):
                raise TypeNotIndexed(t)
        h, i = q.before if q.before is not None else (1 << 62, 0)
        runs: list[list[tuple[int, int, str]]] = []
        for t in q.types:  # one bounded range scan per type, merged newest first
            if q.attr is None:
                rows = db.execute(
                    "SELECT height, idx FROM event_types WHERE type = ? AND (height, idx) < (?, ?)"
                    " ORDER BY height DESC, idx DESC LIMIT ?",
                    (t, h, i, q.limit),
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT height, idx FROM event_attrs WHERE type = ? AND attr = ? AND value = ?"
                    " AND (height, idx) < (?, ?) ORDER BY height DESC, idx DESC LIMIT ?",
                    (t, q.attr[0], q.attr[1], h, i, q.limit),
                ).fetchall()
            runs.append([(-r[0], -r[1], t) for r in rows])
        out: list[IndexedEvent] = []
        for neg_h, neg_i, t in heapq.merge(*runs):
            if len(out) == q.limit:
                break
            row = db.execute(
                "SELECT leaf FROM event_types WHERE type = ? AND height = ? AND idx = ?",
                (t, -neg_h, -neg_i),
            ).fetchone()
            if row is not None:
                out.append(IndexedEvent(-neg_h, -neg_i, bytes(row[0])))
        return out

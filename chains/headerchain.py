"""The header chain an on-chain light client of a PoW or PoS chain keeps: what both share.

A client of a chain that follows work or stake (``chains.powclient``, ``chains.posclient``)
is created from a checkpoint header and then stores every verified header of every
branch, each with its branch's *score* (PoW: cumulative work; PoS: ``chains.pos``'s
fork-choice key), and indexes the best branch by height:

* the best branch is the one with the greatest score; an equal score keeps the incumbent;
* final height = best height - ``finality_depth`` (never below the checkpoint);
* a run whose fork point is below the final height is refused (``ForkBelowFinality``):
  nothing final is ever replaced, since the bridge may already have acted on it;
* a run with a lower score than the best is stored (it may grow) but changes nothing else;
* only final heights of the best branch answer reads (``NotFinal`` above them).

The engine validates a run of headers against its parent and turns it into records;
:func:`process_store_run` then applies the fork choice and stores them.

Storage is batched (per-header keys cost two state keys a header, and each new key a
bucket re-hash and 16 node hashes of the state root: most of an update's time). Heights
are grouped in segments of ``SEGMENT`` heights, one state key per segment::

    <prefix>/next_id                             -> int
    <prefix>/client/<id>                         -> ChainClient object
    <prefix>/seg/<id>/<height // SEGMENT:020d>   -> {"best": {offset: hash hex},
                                                     "records": {hash hex: record}}

(``<prefix>``: ``lightclient/pow`` or ``lightclient/pos``; a record is
``ChainRecord.raw``.)

A run of 48 headers writes one or two keys. A segment holds at most
``MAX_SEGMENT_RECORDS`` records: a run that would exceed it is refused
(``TooManyBranches``) unless it becomes the best branch (so spam side branches can make a
segment's value no larger than that, and never keep the best branch out).

Pure functions of state: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.encoding import JSONValue
from chains.engine import parse_engine
from chains.errors import (
    ChainIdMismatch,
    ClientNotFound,
    ConsensusStateNotFound,
    ForkBelowFinality,
    InvalidArgument,
    InvalidProof,
    InvalidRoot,
    NotFinal,
    TooManyBranches,
    UnknownParent,
)
from chains.merkle import verify_inclusion
from chains.pos import PosParams
from chains.pow import PowParams
from chains.state import State
from chains.types import ZERO_HASH, Event, Header

__all__ = [
    "MAX_HEADERS_PER_UPDATE",
    "MAX_SEGMENT_RECORDS",
    "SEGMENT",
    "ChainClient",
    "ChainRecord",
    "HeaderStore",
    "create_chain_client",
    "get_chain_client",
    "get_final_record",
    "get_run_parent",
    "process_store_run",
    "validate_link",
    "validate_roots",
    "verify_chain_event",
]

MAX_HEADERS_PER_UPDATE = 48
SEGMENT = 64
MAX_SEGMENT_RECORDS = 4 * SEGMENT


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """A verified header as stored: the fork choice's fields parsed, the rest (what
    proofs and the engine need) kept in its stored JSON form and read on demand. A light
    client verifies far more headers than it reads back, so a header costs no decoding
    and no re-encoding of what its own JSON already holds."""

    height: int
    """Its height."""
    hash: bytes
    """``Header.hash``."""
    key: str
    """``hash`` in hex: its key in the segment."""
    prev_hash: bytes
    """Its parent's hash."""
    score: int
    """Its branch's score since the checkpoint."""
    raw: list[Any]
    """Stored form: ``[prev_hash, time, event_root, event_count, state_root, score,
    *extra]`` (hashes in hex, score in hex)."""

    @property
    def time(self) -> int:
        """Its time, Unix ms."""
        t: int = self.raw[1]
        return t

    @property
    def event_root(self) -> bytes:
        """Root that event proofs verify against."""
        return bytes.fromhex(self.raw[2])

    @property
    def event_count(self) -> int:
        """Tree size of ``event_root``."""
        n: int = self.raw[3]
        return n

    @property
    def state_root(self) -> bytes:
        """The tracked chain's state commitment."""
        return bytes.fromhex(self.raw[4])

    @property
    def extra(self) -> tuple[Any, ...]:
        """The engine's own fields (JSON values), e.g. a PoW header's target."""
        return tuple(self.raw[6:])

    @classmethod
    def from_json(cls, height: int, key: str, raw: list[Any]) -> ChainRecord:
        return cls(height, bytes.fromhex(key), key, bytes.fromhex(raw[0]), int(raw[5], 16), raw)

    @classmethod
    def of(
        cls,
        h: Header,
        d: Mapping[str, Any],
        header_hash: bytes,
        score: int,
        extra: tuple[Any, ...],
    ) -> ChainRecord:
        """The record of header ``h`` (``d``: its ``to_json()``, with or without its seal)."""
        raw = [
            d["prev_hash"],
            d["time"],
            d["event_root"],
            d["event_count"],
            d["state_root"],
            f"{score:x}",
            *extra,
        ]
        return cls(h.height, header_hash, header_hash.hex(), h.prev_hash, score, raw)


@dataclass(frozen=True, slots=True)
class ChainClient:
    """What a PoW or PoS client knows about the chain it tracks."""

    chain_id: str
    """Chain id of the tracked chain."""
    params: PowParams | PosParams
    """The tracked chain's engine parameters."""
    checkpoint_height: int
    """Height of the trusted checkpoint (nothing below it is known)."""
    best_height: int
    """Height of the best tip."""
    best_hash: bytes
    """Hash of the best tip."""
    best_score: int
    """Score of the best branch (PoW: its work since the checkpoint)."""

    @property
    def final_height(self) -> int:
        """Highest final height: the best height minus the depth, never below the
        checkpoint (trusted, hence final)."""
        return max(self.checkpoint_height, self.best_height - self.params.finality_depth)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "type": "pos" if isinstance(self.params, PosParams) else "pow",
            "chain_id": self.chain_id,
            "params": self.params.to_json(),
            "checkpoint_height": self.checkpoint_height,
            "best_height": self.best_height,
            "best_hash": self.best_hash.hex(),
            "best_score": f"{self.best_score:x}",
            "final_height": self.final_height,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ChainClient:
        params = parse_engine(d["params"])
        assert isinstance(params, PowParams | PosParams)  # written by create_chain_client
        return cls(
            d["chain_id"],
            params,
            d["checkpoint_height"],
            d["best_height"],
            bytes.fromhex(d["best_hash"]),
            int(d["best_score"], 16),
        )


# --- store access ---------------------------------------------------------------------


def _client_key(prefix: str, cid: str) -> str:
    return f"{prefix}/client/{cid}"


def get_chain_client(state: State, prefix: str, client_id: str) -> ChainClient:
    raw = state.get(_client_key(prefix, client_id))
    if raw is None:
        raise ClientNotFound(client_id)
    return ChainClient.from_json(raw)


def put_chain_client(state: State, prefix: str, client_id: str, client: ChainClient) -> None:
    state.set(_client_key(prefix, client_id), client.to_json())


def get_final_record(
    state: State, prefix: str, client_id: str, client: ChainClient, height: int
) -> ChainRecord:
    """The best chain's record at ``height``, which must be final."""
    if height > client.final_height:
        raise NotFinal(client_id, height, client.final_height)
    store = HeaderStore(state, prefix, client_id)
    h = store.best_hash(height)
    record = None if h is None else store.record(height, h)
    if record is None:
        raise ConsensusStateNotFound(client_id, height)
    return record


class HeaderStore:
    """One update's view of a client's segments: reads load a segment once, writes go to
    a copy (values are immutable), and :meth:`flush` writes each changed segment back
    with one ``state.set``. Nothing reaches the state before ``flush``."""

    __slots__ = ("_dirty", "_prefix", "_segs", "client_id", "state")

    def __init__(self, state: State, prefix: str, client_id: str) -> None:
        self.state, self._prefix, self.client_id = state, prefix, client_id
        self._segs: dict[int, dict[str, dict[str, Any]]] = {}
        self._dirty: set[int] = set()

    def _seg(self, height: int) -> dict[str, dict[str, Any]]:
        n = height // SEGMENT
        seg = self._segs.get(n)
        if seg is None:
            old = self.state.get(f"{self._prefix}/seg/{self.client_id}/{n:020d}")
            seg = (
                {"best": {}, "records": {}}
                if old is None
                else {"best": dict(old["best"]), "records": dict(old["records"])}
            )
            self._segs[n] = seg
        return seg

    def has(self, height: int, key: str) -> bool:
        """Whether the header whose hash in hex is ``key`` is stored at ``height``."""
        return key in self._seg(height)["records"]

    def count(self, height: int) -> int:
        return len(self._seg(height)["records"])

    def record(self, height: int, header_hash: bytes) -> ChainRecord | None:
        raw = self._seg(height)["records"].get(header_hash.hex())
        return None if raw is None else ChainRecord.from_json(height, header_hash.hex(), raw)

    def best_hash(self, height: int) -> bytes | None:
        got = self._seg(height)["best"].get(str(height % SEGMENT))
        return None if got is None else bytes.fromhex(got)

    def put_record(self, r: ChainRecord) -> None:
        self._seg(r.height)["records"][r.key] = r.raw
        self._dirty.add(r.height // SEGMENT)

    def set_best(self, height: int, key: str | None) -> None:
        """Index the header whose hash in hex is ``key`` as the best at ``height`` (None:
        no best header there)."""
        best = self._seg(height)["best"]
        if key is None:
            best.pop(str(height % SEGMENT), None)
        else:
            best[str(height % SEGMENT)] = key
        self._dirty.add(height // SEGMENT)

    def flush(self) -> None:
        for n in sorted(self._dirty):
            self.state.set(f"{self._prefix}/seg/{self.client_id}/{n:020d}", self._segs[n])
        self._dirty = set()


def validate_roots(h: Header) -> None:
    for name in ("tx_root", "event_root", "state_root"):
        if getattr(h, name) == ZERO_HASH:
            raise InvalidRoot(name)


# --- processing -----------------------------------------------------------------------


def create_chain_client(
    state: State, prefix: str, id_prefix: str, client: ChainClient, checkpoint: ChainRecord
) -> str:
    """Store a new client at ``checkpoint`` (already checked by its engine); its id."""
    seq: int = state.get(f"{prefix}/next_id", 0)
    cid = f"{id_prefix}{seq}"
    state.set(f"{prefix}/next_id", seq + 1)
    put_chain_client(state, prefix, cid, client)
    seg = HeaderStore(state, prefix, cid)
    seg.put_record(checkpoint)
    seg.set_best(checkpoint.height, checkpoint.key)
    seg.flush()
    return cid


def check_run_length(headers: Sequence[Header]) -> None:
    if not 0 < len(headers) <= MAX_HEADERS_PER_UPDATE:
        raise InvalidArgument("headers", f"expected 1..{MAX_HEADERS_PER_UPDATE} headers")


def get_run_parent(
    store: HeaderStore, client: ChainClient, headers: Sequence[Header]
) -> ChainRecord:
    """The stored parent of a run of headers, which may not be below the final height
    (``UnknownParent``, ``ForkBelowFinality``, ``InvalidArgument`` for a bad length)."""
    check_run_length(headers)
    first = headers[0]
    parent = store.record(first.height - 1, first.prev_hash)
    if parent is None:
        raise UnknownParent(first.height, first.prev_hash.hex())
    if parent.height < client.final_height:
        raise ForkBelowFinality(parent.height, client.final_height)
    return parent


def validate_link(client: ChainClient, header: Header, parent_hash: bytes) -> None:
    """The header is of the client's chain and names ``parent_hash`` as its parent."""
    if header.chain_id != client.chain_id:
        raise ChainIdMismatch(client.chain_id, header.chain_id)
    if header.prev_hash != parent_hash:
        raise UnknownParent(header.height, header.prev_hash.hex())


def process_store_run(
    store: HeaderStore,
    prefix: str,
    client_id: str,
    client: ChainClient,
    records: Sequence[ChainRecord],
) -> str:
    """Apply the fork choice to a verified, linked run of ``records`` whose first names a
    stored header as parent, and store it (``store``'s state: the client's). Returns
    ``best`` (the run's tip is the new best tip, a reorganisation if it was on another
    branch) or ``side`` (stored, a lower score than the best). Refused, it changes
    nothing."""
    tip = records[-1]
    final = client.final_height
    better = tip.score > client.best_score
    rewrite: list[ChainRecord] = []
    if better and records[0].prev_hash == client.best_hash:
        rewrite = list(records)  # the common case: the run extends the best tip
    elif better:
        # Walk back to where the best chain agrees (reading the run's own records, not
        # yet stored). A stored side branch extended here may fork lower than this run's
        # parent, so the depth rule is checked again at the real fork point.
        run = {r.hash: r for r in records}
        rec: ChainRecord | None = tip
        while rec is not None and store.best_hash(rec.height) != rec.hash:
            if rec.height <= final:
                raise ForkBelowFinality(rec.height - 1, final)
            rewrite.append(rec)
            rec = run.get(rec.prev_hash) or store.record(rec.height - 1, rec.prev_hash)
    for r in records:
        if not store.has(r.height, r.key):
            if not better and store.count(r.height) >= MAX_SEGMENT_RECORDS:
                raise TooManyBranches(client_id, r.height, MAX_SEGMENT_RECORDS)
            store.put_record(r)
    if better:
        for height in range(tip.height + 1, client.best_height + 1):
            store.set_best(height, None)
        for r in rewrite:
            store.set_best(r.height, r.key)
        new = ChainClient(
            client.chain_id,
            client.params,
            client.checkpoint_height,
            tip.height,
            tip.hash,
            tip.score,
        )
        put_chain_client(store.state, prefix, client_id, new)
    store.flush()
    return "best" if better else "side"


def is_duplicate_run(
    store: HeaderStore, headers: Sequence[Header], hashes: Sequence[bytes]
) -> bool:
    """True iff every header is stored already: a no-op, even below the final height
    (several relayers may race)."""
    return all(store.has(h.height, hh.hex()) for h, hh in zip(headers, hashes, strict=True))


def verify_chain_event(
    state: State,
    prefix: str,
    client_id: str,
    height: int,
    event: Event,
    index: int,
    proof: Sequence[bytes],
) -> None:
    """Check that ``event`` is event ``index`` of the tracked chain's block at a final
    ``height`` of the best chain. Raises, never returns False."""
    client = get_chain_client(state, prefix, client_id)
    rec = get_final_record(state, prefix, client_id, client, height)
    if rec.event_root == ZERO_HASH:
        raise InvalidProof("zero event root")
    if not verify_inclusion(event.leaf(), index, rec.event_count, proof, rec.event_root):
        raise InvalidProof(f"event {index} does not verify against root at height {height}")

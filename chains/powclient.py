"""On-chain light client of a proof-of-work chain: a header chain with cumulative work.

A PoW client (id ``pow-<n>``) lives in the host chain's state beside the BFT clients
(``lc-<n>``) and is driven through the same ``lightclient`` module. It is created from
a checkpoint header of the tracked chain, the tracked chain's engine parameters and the
checkpoint's ``anchor_time`` (trust in the checkpoint is social, as a BFT client's
first header is). From there it follows work, not signatures:

* ``update_pow_client`` takes a run of linked headers whose first names a stored header
  as parent. Each must be the parent's height + 1, carry the target the retarget rule
  gives (``chains.pow``), have a time in ``(parent.time, now + max_future_ms]`` and a
  proof-of-work hash below its target. One bad header refuses the whole run.
* Every stored header keeps its branch's cumulative work (counted from the checkpoint).
  The best branch is the one with the most work (a tie keeps the incumbent); a run that
  makes another branch the best rewrites the best-chain index from the fork point.
* Final height = best height - ``finality_depth``. A run whose parent is below the final
  height is refused (``ForkBelowFinality``): nothing at or below a final height is ever
  replaced, since the bridge may already have acted on it. A run with less work than the
  best is stored (it may grow) but changes nothing else.
* Events are proven only at final heights of the best chain (``NotFinal`` otherwise).

State keys::

    lightclient/pow/next_id                     -> int
    lightclient/pow/client/<id>                 -> client object (params, best, checkpoint)
    lightclient/pow/header/<id>/<hash hex>      -> header record
    lightclient/pow/best/<id>/<height:020d>     -> hash hex of the best chain at that height

Bounded input: at most ``MAX_HEADERS_PER_UPDATE`` headers per call.

Pure functions of state, headers and ``now``: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.encoding import JSONValue
from chains.errors import (
    ChainIdMismatch,
    ClientNotFound,
    ConsensusStateNotFound,
    ForkBelowFinality,
    InsufficientWork,
    InvalidArgument,
    InvalidProof,
    InvalidRoot,
    NotFinal,
    UnknownParent,
)
from chains.merkle import verify_inclusion
from chains.pow import (
    PowParams,
    TipInfo,
    compute_next_anchor,
    get_pow_hash,
    get_work,
    is_better_branch,
    target_int,
    validate_pow_header,
)
from chains.state import State
from chains.types import ZERO_HASH, Event, Header

__all__ = [
    "MAX_HEADERS_PER_UPDATE",
    "PowClient",
    "PowRecord",
    "get_best_hash",
    "get_final_record",
    "get_pow_client",
    "get_pow_record",
    "is_pow_client",
    "process_create_pow_client",
    "process_update_pow_client",
    "verify_pow_event",
]

MAX_HEADERS_PER_UPDATE = 48
PREFIX = "pow-"


def is_pow_client(client_id: str) -> bool:
    """True for the id of a PoW client (``pow-<n>``)."""
    return client_id.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class PowRecord:
    """A verified header, reduced to what proofs, the fork choice and retargets need."""

    height: int
    """Its height."""
    hash: bytes
    """``Header.hash``."""
    prev_hash: bytes
    """Its parent's hash."""
    time: int
    """Its time, Unix ms."""
    target: int
    """The target it met."""
    anchor_time: int
    """Its retarget window's anchor time (``chains.pow``)."""
    work: int
    """Cumulative work of its branch since the checkpoint (the checkpoint counts 0)."""
    event_root: bytes
    """Root that event proofs verify against."""
    event_count: int
    """Tree size of ``event_root``."""
    state_root: bytes
    """The tracked chain's state commitment."""

    @property
    def tip(self) -> TipInfo:
        return TipInfo(self.height, self.time, self.target, self.anchor_time)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "height": self.height,
            "hash": self.hash.hex(),
            "prev_hash": self.prev_hash.hex(),
            "time": self.time,
            "target": f"{self.target:064x}",
            "anchor_time": self.anchor_time,
            "work": f"{self.work:x}",
            "event_root": self.event_root.hex(),
            "event_count": self.event_count,
            "state_root": self.state_root.hex(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PowRecord:
        return cls(
            d["height"],
            bytes.fromhex(d["hash"]),
            bytes.fromhex(d["prev_hash"]),
            d["time"],
            int(d["target"], 16),
            d["anchor_time"],
            int(d["work"], 16),
            bytes.fromhex(d["event_root"]),
            d["event_count"],
            bytes.fromhex(d["state_root"]),
        )


@dataclass(frozen=True, slots=True)
class PowClient:
    """What a PoW client knows about the chain it tracks."""

    chain_id: str
    """Chain id of the tracked chain."""
    params: PowParams
    """The tracked chain's engine parameters."""
    checkpoint_height: int
    """Height of the trusted checkpoint (nothing below it is known)."""
    best_height: int
    """Height of the best tip."""
    best_hash: bytes
    """Hash of the best tip."""
    best_work: int
    """Cumulative work of the best branch since the checkpoint."""

    @property
    def final_height(self) -> int:
        """Highest final height: the best height minus the depth, never below the
        checkpoint (trusted, hence final)."""
        return max(self.checkpoint_height, self.best_height - self.params.finality_depth)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "type": "pow",
            "chain_id": self.chain_id,
            "params": self.params.to_json(),
            "checkpoint_height": self.checkpoint_height,
            "best_height": self.best_height,
            "best_hash": self.best_hash.hex(),
            "best_work": f"{self.best_work:x}",
            "final_height": self.final_height,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PowClient:
        return cls(
            d["chain_id"],
            PowParams.from_json(d["params"]),
            d["checkpoint_height"],
            d["best_height"],
            bytes.fromhex(d["best_hash"]),
            int(d["best_work"], 16),
        )


# --- store access ---------------------------------------------------------------------


def _client_key(cid: str) -> str:
    return f"lightclient/pow/client/{cid}"


def _header_key(cid: str, h: bytes) -> str:
    return f"lightclient/pow/header/{cid}/{h.hex()}"


def _best_key(cid: str, height: int) -> str:
    return f"lightclient/pow/best/{cid}/{height:020d}"


def get_pow_client(state: State, client_id: str) -> PowClient:
    raw = state.get(_client_key(client_id))
    if raw is None:
        raise ClientNotFound(client_id)
    return PowClient.from_json(raw)


def get_pow_record(state: State, client_id: str, header_hash: bytes) -> PowRecord | None:
    raw = state.get(_header_key(client_id, header_hash))
    return None if raw is None else PowRecord.from_json(raw)


def get_best_hash(state: State, client_id: str, height: int) -> bytes | None:
    """The best chain's header hash at ``height``, if the client knows one."""
    raw = state.get(_best_key(client_id, height))
    return None if raw is None else bytes.fromhex(raw)


def get_final_record(state: State, client_id: str, height: int) -> PowRecord:
    """The best chain's record at ``height``, which must be final."""
    client = get_pow_client(state, client_id)
    if height > client.final_height:
        raise NotFinal(client_id, height, client.final_height)
    h = get_best_hash(state, client_id, height)
    record = None if h is None else get_pow_record(state, client_id, h)
    if record is None:
        raise ConsensusStateNotFound(client_id, height)
    return record


def _validate_roots(h: Header) -> None:
    for name in ("tx_root", "event_root", "state_root"):
        if getattr(h, name) == ZERO_HASH:
            raise InvalidRoot(name)


# --- processing -----------------------------------------------------------------------


def process_create_pow_client(
    state: State, params: PowParams, checkpoint: Header, anchor_time: int
) -> str:
    """Create a client trusting ``checkpoint`` (whose own work must still meet its
    target under ``params``); returns its id."""
    if not checkpoint.target or checkpoint.nonce is None:
        raise InvalidArgument("checkpoint", "not a proof-of-work header")
    target = target_int(checkpoint.target)
    if target > params.max_target:
        raise InvalidArgument("checkpoint", "target above the chain's max_target")
    pow_hash = get_pow_hash(checkpoint)
    if target_int(pow_hash) >= target:
        raise InsufficientWork(checkpoint.height, pow_hash.hex())
    if not 0 <= anchor_time < checkpoint.time:
        raise InvalidArgument("anchor_time", "must be before the checkpoint's time")
    _validate_roots(checkpoint)
    seq: int = state.get("lightclient/pow/next_id", 0)
    cid = f"{PREFIX}{seq}"
    state.set("lightclient/pow/next_id", seq + 1)
    record = _record(checkpoint, target, anchor_time, 0)
    height = checkpoint.height
    client = PowClient(checkpoint.chain_id, params, height, height, record.hash, 0)
    state.set(_client_key(cid), client.to_json())
    state.set(_header_key(cid, record.hash), record.to_json())
    state.set(_best_key(cid, record.height), record.hash.hex())
    return cid


def _record(h: Header, target: int, anchor_time: int, work: int) -> PowRecord:
    return PowRecord(
        h.height,
        h.hash,
        h.prev_hash,
        h.time,
        target,
        anchor_time,
        work,
        h.event_root,
        h.event_count,
        h.state_root,
    )


def validate_pow_headers(
    state: State, client_id: str, client: PowClient, headers: Sequence[Header], now: int
) -> list[PowRecord]:
    """Verify a run of linked headers from a stored parent; their records, in order.
    Changes nothing."""
    if not 0 < len(headers) <= MAX_HEADERS_PER_UPDATE:
        raise InvalidArgument("headers", f"expected 1..{MAX_HEADERS_PER_UPDATE} headers")
    first = headers[0]
    parent = get_pow_record(state, client_id, first.prev_hash)
    if parent is None:
        raise UnknownParent(first.height, first.prev_hash.hex())
    if parent.height < client.final_height:
        raise ForkBelowFinality(parent.height, client.final_height)
    params = client.params
    out: list[PowRecord] = []
    for h in headers:
        if h.chain_id != client.chain_id:
            raise ChainIdMismatch(client.chain_id, h.chain_id)
        if h.prev_hash != parent.hash:
            raise UnknownParent(h.height, h.prev_hash.hex())
        validate_pow_header(params, parent.tip, h, now)
        _validate_roots(h)
        target = target_int(h.target)
        rec = _record(
            h, target, compute_next_anchor(params, parent.tip), parent.work + get_work(target)
        )
        out.append(rec)
        parent = rec
    return out


def process_update_pow_client(
    state: State, client_id: str, headers: Sequence[Header], now: int
) -> str:
    """Verify and store a run of headers. Returns ``best`` (the run's tip is the new best
    tip, a reorganisation if it was on another branch), ``side`` (stored, less work than
    the best) or ``duplicate`` (every header already stored). Refused, it changes
    nothing."""
    client = get_pow_client(state, client_id)
    if headers and all(state.get(_header_key(client_id, h.hash)) is not None for h in headers):
        return "duplicate"  # several relayers may race: a no-op, even below the final height
    records = validate_pow_headers(state, client_id, client, headers, now)
    new = [r for r in records if state.get(_header_key(client_id, r.hash)) is None]
    tip = records[-1]
    better = is_better_branch(tip.work, client.best_work)
    rewrite: list[PowRecord] = []
    if better:
        # Walk back to where the best chain agrees (reading the run's own records, not
        # yet stored). A stored side branch extended here may fork lower than this run's
        # parent, so the depth rule is checked again at the real fork point.
        run = {r.hash: r for r in records}
        rec: PowRecord | None = tip
        while rec is not None and get_best_hash(state, client_id, rec.height) != rec.hash:
            if rec.height <= client.final_height:
                raise ForkBelowFinality(rec.height - 1, client.final_height)
            rewrite.append(rec)
            rec = run.get(rec.prev_hash) or get_pow_record(state, client_id, rec.prev_hash)
    for r in new:
        state.set(_header_key(client_id, r.hash), r.to_json())
    if not better:
        return "side"
    for height in range(tip.height + 1, client.best_height + 1):
        state.delete(_best_key(client_id, height))
    for r in rewrite:
        state.set(_best_key(client_id, r.height), r.hash.hex())
    best = PowClient(
        client.chain_id, client.params, client.checkpoint_height, tip.height, tip.hash, tip.work
    )
    state.set(_client_key(client_id), best.to_json())
    return "best"


def verify_pow_event(
    state: State,
    client_id: str,
    height: int,
    event: Event,
    index: int,
    proof: Sequence[bytes],
) -> None:
    """Check that ``event`` is event ``index`` of the tracked chain's block at a final
    ``height`` of the best chain. Raises, never returns False."""
    rec = get_final_record(state, client_id, height)
    if rec.event_root == ZERO_HASH:
        raise InvalidProof("zero event root")
    if not verify_inclusion(event.leaf(), index, rec.event_count, proof, rec.event_root):
        raise InvalidProof(f"event {index} does not verify against root at height {height}")

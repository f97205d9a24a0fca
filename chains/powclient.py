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

Storage, the fork choice's mechanics, the depth rule and event proofs are
``chains.headerchain``'s (state keys under ``lightclient/pow``); this module adds the
PoW rules and the score: a branch's cumulative work.

Bounded input: at most ``MAX_HEADERS_PER_UPDATE`` headers per call.

Pure functions of state, headers and ``now``: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from chains.encoding import JSONValue
from chains.errors import (
    InsufficientWork,
    InvalidArgument,
)
from chains.headerchain import (
    MAX_HEADERS_PER_UPDATE,
    ChainClient,
    ChainRecord,
    HeaderStore,
    check_run_length,
    create_chain_client,
    get_chain_client,
    get_run_parent,
    is_duplicate_run,
    process_store_run,
    validate_link,
    validate_roots,
)
from chains.pow import (
    PowParams,
    TipInfo,
    compute_next_anchor,
    get_pow_and_header_hash,
    get_work,
    target_int,
    validate_pow_header,
)
from chains.state import State
from chains.types import Header

__all__ = [
    "MAX_HEADERS_PER_UPDATE",
    "POW_STORE",
    "PowClient",
    "get_pow_client",
    "get_pow_tip",
    "is_pow_client",
    "process_create_pow_client",
    "process_update_pow_client",
    "validate_pow_headers",
]

PREFIX = "pow-"
POW_STORE = "lightclient/pow"
PowClient = ChainClient
"""A PoW client's view: ``best_score`` is its best branch's work since the checkpoint."""


def is_pow_client(client_id: str) -> bool:
    """True for the id of a PoW client (``pow-<n>``)."""
    return client_id.startswith(PREFIX)


def get_pow_client(state: State, client_id: str) -> ChainClient:
    return get_chain_client(state, POW_STORE, client_id)


def get_pow_tip(record: ChainRecord) -> TipInfo:
    """What the retarget rule needs of a stored record (its extra: target, anchor)."""
    return TipInfo(record.height, record.time, int(record.extra[0], 16), record.extra[1])


def _record(
    h: Header, d: dict[str, JSONValue], header_hash: bytes, anchor_time: int, work: int
) -> ChainRecord:
    return ChainRecord.of(h, d, header_hash, work, (d["target"], anchor_time))


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
    pow_hash, header_hash, d = get_pow_and_header_hash(checkpoint)
    if target_int(pow_hash) >= target:
        raise InsufficientWork(checkpoint.height, pow_hash.hex())
    if not 0 <= anchor_time < checkpoint.time:
        raise InvalidArgument("anchor_time", "must be before the checkpoint's time")
    validate_roots(checkpoint)
    record = _record(checkpoint, d, header_hash, anchor_time, 0)
    h = checkpoint.height
    client = ChainClient(checkpoint.chain_id, params, h, h, header_hash, 0)
    return create_chain_client(state, POW_STORE, PREFIX, client, record)


def validate_pow_headers(
    store: HeaderStore,
    client: ChainClient,
    headers: Sequence[Header],
    now: int,
    hashes: Sequence[tuple[bytes, bytes, dict[str, JSONValue]]],
) -> list[ChainRecord]:
    """Verify a run of linked headers from a stored parent (``hashes``: each header's
    ``get_pow_and_header_hash``); their records, in order. Changes nothing."""
    parent = get_run_parent(store, client, headers)
    params = client.params
    assert isinstance(params, PowParams)  # a pow- id names a PoW client
    tip = get_pow_tip(parent)
    out: list[ChainRecord] = []
    work, parent_hash = parent.score, parent.hash
    for h, (pow_hash, header_hash, d) in zip(headers, hashes, strict=True):
        validate_link(client, h, parent_hash)
        validate_pow_header(params, tip, h, now, pow_hash)
        validate_roots(h)
        target = target_int(h.target)
        anchor = compute_next_anchor(params, tip)
        work += get_work(target)
        out.append(_record(h, d, header_hash, anchor, work))
        tip = TipInfo(h.height, h.time, target, anchor)
        parent_hash = header_hash
    return out


def process_update_pow_client(
    state: State, client_id: str, headers: Sequence[Header], now: int
) -> str:
    """Verify and store a run of headers. Returns ``best`` (the run's tip is the new best
    tip, a reorganisation if it was on another branch), ``side`` (stored, less work than
    the best) or ``duplicate`` (every header already stored). Refused, it changes
    nothing."""
    client = get_pow_client(state, client_id)
    check_run_length(headers)
    hashes = [get_pow_and_header_hash(h) for h in headers]
    store = HeaderStore(state, POW_STORE, client_id)
    if is_duplicate_run(store, headers, [hh for _, hh, _ in hashes]):
        return "duplicate"
    records = validate_pow_headers(store, client, headers, now, hashes)
    return process_store_run(store, POW_STORE, client_id, client, records)

"""On-chain light client of a proof-of-stake chain: a header chain judged by stake.

A PoS client (id ``pos-<n>``) lives in the host chain's state beside the BFT (``lc-<n>``)
and PoW (``pow-<n>``) clients and is driven through the same ``lightclient`` module. It
is created from a checkpoint header of the tracked chain, the chain's engine parameters
and the stake table the checkpoint names as ``next_validators_hash`` (trust in the
checkpoint is social, as a BFT client's first header is). From there it follows stake:

* ``update_pos_client`` takes a run of linked headers whose first names a stored header
  as parent, and the stake tables they name that the client does not hold yet. Each
  header must pass ``chains.pos.validate_pos_header`` against its parent and the table
  named by its ``validators_hash`` (which must be its parent's ``next_validators_hash``):
  height, the epoch rule, the time window, the proposer's eligibility by its stake in
  that table, and the proposer's signature (the seal). One bad header refuses the run.
* How the client learns stake changes: only through proven headers. A header's
  ``next_validators_hash`` commits to the table its child is judged by, and may differ
  from its own ``validators_hash`` only at an epoch's last height; the relayer supplies
  the table itself, which the client stores (by hash) once a header that names it is
  accepted. So the client's stake is the chain's stake as its eligible proposers
  attested it, epoch by epoch.
* Fork choice, finality and proofs are ``chains.headerchain``'s with the PoS score
  (``chains.pos.compute_score``: the longest branch, then fewer slots, then the lowest
  tip hash); only final heights (``finality_depth`` below the best tip) answer reads.

State keys (besides ``chains.headerchain``'s under ``lightclient/pos``)::

    lightclient/pos/table/<id>/<table hash hex>  -> stake table (ValidatorSet JSON)

Bounded input: at most ``MAX_HEADERS_PER_UPDATE`` headers and ``MAX_TABLES_PER_UPDATE``
tables per call. Pure functions of state, headers and ``now``: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from chains.encoding import JSONValue
from chains.errors import (
    InvalidArgument,
    ValidatorSetMismatch,
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
from chains.pos import (
    PosParams,
    PosTip,
    compute_score,
    get_pos_and_header_hash,
    validate_pos_header,
)
from chains.state import State
from chains.types import Header, ValidatorSet

__all__ = [
    "MAX_HEADERS_PER_UPDATE",
    "MAX_TABLES_PER_UPDATE",
    "POS_STORE",
    "get_pos_client",
    "get_stake_table",
    "is_pos_client",
    "process_create_pos_client",
    "process_update_pos_client",
]

PREFIX = "pos-"
POS_STORE = "lightclient/pos"
MAX_TABLES_PER_UPDATE = 4


def is_pos_client(client_id: str) -> bool:
    """True for the id of a PoS client (``pos-<n>``)."""
    return client_id.startswith(PREFIX)


def get_pos_client(state: State, client_id: str) -> ChainClient:
    return get_chain_client(state, POS_STORE, client_id)


def _table_key(cid: str, table_hash: bytes) -> str:
    return f"{POS_STORE}/table/{cid}/{table_hash.hex()}"


def get_stake_table(state: State, client_id: str, table_hash: bytes) -> ValidatorSet | None:
    """The stake table the client holds under ``table_hash``, if any."""
    raw = state.get(_table_key(client_id, table_hash))
    return None if raw is None else ValidatorSet.from_json(raw)


def _record(
    h: Header, d: dict[str, JSONValue], header_hash: bytes, slots: int, score: int
) -> ChainRecord:
    """extra: the table the child is judged by, and the slots summed since the checkpoint."""
    return ChainRecord.of(h, d, header_hash, score, (d["next_validators_hash"], slots))


def _tip(record: ChainRecord) -> PosTip:
    return PosTip(record.height, record.time, bytes.fromhex(record.extra[0]))


# --- processing -----------------------------------------------------------------------


def process_create_pos_client(
    state: State, params: PosParams, checkpoint: Header, table: ValidatorSet
) -> str:
    """Create a client trusting ``checkpoint`` and ``table``, the stake table it names as
    ``next_validators_hash``; returns its id."""
    if checkpoint.slot is None or len(checkpoint.seal) != 64:
        raise InvalidArgument("checkpoint", "not a proof-of-stake header")
    if table.hash != checkpoint.next_validators_hash:
        raise ValidatorSetMismatch("checkpoint's next stake table")
    validate_roots(checkpoint)
    _, header_hash, d = get_pos_and_header_hash(checkpoint)
    record = _record(checkpoint, d, header_hash, 0, 0)
    h = checkpoint.height
    client = ChainClient(checkpoint.chain_id, params, h, h, record.hash, 0)
    cid = create_chain_client(state, POS_STORE, PREFIX, client, record)
    state.set(_table_key(cid, table.hash), table.to_json())
    return cid


def validate_pos_headers(
    store: HeaderStore,
    client: ChainClient,
    headers: Sequence[Header],
    tables: Sequence[ValidatorSet],
    now: int,
    hashes: Sequence[tuple[bytes, bytes, dict[str, JSONValue]]],
) -> tuple[list[ChainRecord], list[ValidatorSet]]:
    """Verify a run of linked headers from a stored parent (``hashes``: each header's
    ``get_pos_and_header_hash``); their records in order, and the given tables they used
    that the client does not hold. Changes nothing."""
    if len(tables) > MAX_TABLES_PER_UPDATE:
        raise InvalidArgument("tables", f"expected at most {MAX_TABLES_PER_UPDATE} tables")
    parent = get_run_parent(store, client, headers)
    params = client.params
    assert isinstance(params, PosParams)  # a pos- id names a PoS client
    given = {t.hash: t for t in tables}
    known: dict[bytes, ValidatorSet] = {}
    used: dict[bytes, ValidatorSet] = {}
    cid = store.client_id
    tip, slots, parent_hash = _tip(parent), int(parent.extra[1]), parent.hash
    out: list[ChainRecord] = []
    for h, (pos_hash, header_hash, d) in zip(headers, hashes, strict=True):
        validate_link(client, h, parent_hash)
        vh = h.validators_hash
        table = known.get(vh)
        if table is None:
            table = get_stake_table(store.state, cid, vh)
            if table is None:
                table = given.get(vh)
                if table is None:
                    raise ValidatorSetMismatch(f"stake table {vh.hex()} (neither held nor given)")
                used[vh] = table
            known[vh] = table
        validate_pos_header(params, tip, h, table, now, pos_hash)
        validate_roots(h)
        slots += h.slot or 0
        out.append(_record(h, d, header_hash, slots, compute_score(h.height, slots, pos_hash)))
        tip, parent_hash = PosTip(h.height, h.time, h.next_validators_hash), header_hash
    return out, list(used.values())


def process_update_pos_client(
    state: State,
    client_id: str,
    headers: Sequence[Header],
    tables: Sequence[ValidatorSet],
    now: int,
) -> str:
    """Verify and store a run of headers (and the new stake tables they use). Returns
    ``best``, ``side`` or ``duplicate`` as a PoW client does. Refused, it changes
    nothing."""
    client = get_pos_client(state, client_id)
    check_run_length(headers)
    store = HeaderStore(state, POS_STORE, client_id)
    hashes = [get_pos_and_header_hash(h) for h in headers]
    if is_duplicate_run(store, headers, [hh for _, hh, _ in hashes]):
        return "duplicate"
    records, new_tables = validate_pos_headers(store, client, headers, tables, now, hashes)
    outcome = process_store_run(store, POS_STORE, client_id, client, records)
    for t in new_tables:
        state.set(_table_key(client_id, t.hash), t.to_json())
    return outcome

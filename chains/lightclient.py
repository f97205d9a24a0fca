"""On-chain light clients of other chains (ICS-02 / ICS-07 semantics).

A client of chain B lives in chain A's state. It holds a client state (B's chain id, trust
level, trusting period, max clock drift, latest height, frozen height) and one consensus
state per verified height (time, header hash, roots and counts, next validators hash).

Updating, from a trusted height ``t`` to a header at ``h > t``:

* ``h == t + 1`` (sequential): the header's ``validators_hash`` must equal the trusted
  ``next_validators_hash`` and more than 2/3 of that set must sign.
* ``h > t + 1`` (skipping): more than ``trust_level`` (default 1/3) of the trusted next
  validator set must sign, and more than 2/3 of the header's own set.

Either way the trusted state must be within the trusting period at ``now``, the header
must be of the client's chain, later than the trusted time, not beyond ``now`` plus the
max clock drift, and carry no zero roots. Heights between stored ones may be filled in
(an event at any height can be proven), but never at or below the trusted height.

Misbehaviour (ICS-07 ``CheckForMisbehaviour``), found by an update that passed every
check above, freezes the client; a frozen client refuses updates and proofs for good:

* two valid commits for one height with different headers;
* a header whose time is not strictly between the times of the nearest stored consensus
  states below and above its height (BFT time is monotonic, so valid commits that break
  the order prove the tracked chain's validators signed two histories). This is what
  makes a fill-in safe: it is checked against both neighbours, not only the trusted one.

Submitting the same header twice is a no-op, so several relayers may race.

Bounded state: anyone may create a client of a chain whose validators they control and
feed it signed headers, so a client keeps at most ``MAX_CONSENSUS_STATES`` consensus
states: storing one more deletes the lowest (never the latest). A relayer that still
needs a pruned height submits its header again as a fill-in.

Pruning: each stored update deletes the consensus states whose time is at least the
trusting period before ``now`` (they can no longer serve as trusted states), oldest first,
but never the latest one. A proof against a pruned height fails with
``ConsensusStateNotFound``, as for a height never stored. Stored times increase with height
(the check above), so the expired states are always the lowest heights.

``now`` is always an argument (the host block's time): no clock here.

State keys::

    lightclient/next_id                      -> int
    lightclient/client/<id>                  -> client state object
    lightclient/cons/<id>/<height:020d>      -> consensus state object
    lightclient/count/<id>                   -> how many consensus states are stored

The zero-padded heights sort as numbers, so a header's stored neighbours are found by an
ordered read of the state (``State.items`` with a range, O(log n)) and pruning walks the
lowest keys and stops at the first unexpired one: an update costs O(log n) plus what it
prunes, whatever the number of stored heights. (An earlier layout also kept
``lightclient/heights/<id>``, the whole sorted list, rewritten with every update: O(n)
per update. A client stored with it drops it at its next stored header.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chains.consensus import TWO_THIRDS, verify_commit
from chains.encoding import JSONValue, from_hex
from chains.errors import (
    ChainIdMismatch,
    ClientExpired,
    ClientFrozen,
    ClientNotFound,
    ClientQuotaExceeded,
    ConsensusStateNotFound,
    EncodingError,
    HeaderFromFuture,
    InvalidArgument,
    InvalidConsensusParams,
    InvalidProof,
    InvalidRoot,
    NonIncreasingHeight,
    NonMonotonicTime,
    TrustingPeriodExpired,
    UnknownMethod,
    ValidatorSetMismatch,
)
from chains.headerchain import (
    HeaderStore,
    get_chain_client,
    get_final_record,
    verify_chain_event,
)
from chains.merkle import verify_inclusion
from chains.module import BlockInfo, TxContext, arg_int, arg_str
from chains.pos import PosParams
from chains.posclient import (
    POS_STORE,
    is_pos_client,
    process_create_pos_client,
    process_update_pos_client,
)
from chains.pow import PowParams
from chains.powclient import (
    POW_STORE,
    is_pow_client,
    process_create_pow_client,
    process_update_pow_client,
)
from chains.state import State
from chains.types import ZERO_HASH, Commit, Event, Header, ValidatorSet

__all__ = [
    "ClientState",
    "ConsensusState",
    "HeaderUpdate",
    "LightClientModule",
    "get_client_state",
    "get_consensus_heights",
    "get_consensus_state",
    "process_create_client",
    "process_misbehaviour",
    "process_update_client",
    "validate_header_update",
    "verify_event",
]

T = TypeVar("T")
DEFAULT_TRUST_LEVEL = (1, 3)
MAX_CLIENTS_PER_CREATOR = 16
"""Light clients one account may create (``create_client``, ``create_pow_client``,
``create_pos_client``). A client is state (~1 KiB) that anyone could create for free: it
is rationed as the mempool rations admission, to funded accounts and a share each, so
growing state costs the funding of one account per 16 clients (a Sybil pays for each)."""

MAX_CONSENSUS_STATES = 8_192
MAX_POW_BEST_QUERY = 256


@dataclass(frozen=True, slots=True)
class ClientState:
    """What a light client knows about the chain it tracks."""

    chain_id: str
    """Chain id of the tracked chain."""
    trust_level: tuple[int, int]
    """Fraction of the trusted set that must sign a skipping update (>= 1/3)."""
    trusting_period: int
    """Milliseconds a consensus state stays trusted."""
    max_clock_drift: int
    """Milliseconds a header's time may run ahead of the host's block time."""
    latest_height: int
    """Highest verified height."""
    frozen_height: int
    """0 while active; the height of proven misbehaviour once frozen."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "chain_id": self.chain_id,
            "trust_level": list(self.trust_level),
            "trusting_period": self.trusting_period,
            "max_clock_drift": self.max_clock_drift,
            "latest_height": self.latest_height,
            "frozen_height": self.frozen_height,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ClientState:
        num, den = d["trust_level"]
        return cls(
            d["chain_id"],
            (num, den),
            d["trusting_period"],
            d["max_clock_drift"],
            d["latest_height"],
            d["frozen_height"],
        )


@dataclass(frozen=True, slots=True)
class ConsensusState:
    """A verified header, reduced to what proofs and later updates need."""

    time: int
    """Header time (Unix ms)."""
    header_hash: bytes
    """Hash of the verified header (misbehaviour detection)."""
    event_root: bytes
    """Root that event proofs verify against."""
    event_count: int
    """Tree size of ``event_root``."""
    state_root: bytes
    """The tracked chain's state commitment."""
    next_validators_hash: bytes
    """The set that must sign the next height."""

    @classmethod
    def of(cls, h: Header) -> ConsensusState:
        return cls(
            h.time, h.hash, h.event_root, h.event_count, h.state_root, h.next_validators_hash
        )

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "time": self.time,
            "header_hash": self.header_hash.hex(),
            "event_root": self.event_root.hex(),
            "event_count": self.event_count,
            "state_root": self.state_root.hex(),
            "next_validators_hash": self.next_validators_hash.hex(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ConsensusState:
        return cls(
            d["time"],
            bytes.fromhex(d["header_hash"]),
            bytes.fromhex(d["event_root"]),
            d["event_count"],
            bytes.fromhex(d["state_root"]),
            bytes.fromhex(d["next_validators_hash"]),
        )


@dataclass(frozen=True, slots=True)
class HeaderUpdate:
    """The one message that moves a client: a signed header and the sets to check it."""

    header: Header
    """The new header."""
    commit: Commit
    """Its commit."""
    validators: ValidatorSet
    """The set named by ``header.validators_hash``."""
    trusted_height: int
    """The stored height this update is verified from."""
    trusted_validators: ValidatorSet | None
    """The set named by the trusted state's ``next_validators_hash`` (skipping only)."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "header": self.header.to_json(),
            "commit": self.commit.to_json(),
            "validators": self.validators.to_json(),
            "trusted_height": self.trusted_height,
            "trusted_validators": (
                None if self.trusted_validators is None else self.trusted_validators.to_json()
            ),
        }

    @classmethod
    def from_json(cls, d: object) -> HeaderUpdate:
        if not isinstance(d, Mapping):
            raise EncodingError("header update", "expected an object")
        th = d.get("trusted_height")
        if not isinstance(th, int) or isinstance(th, bool) or th < 1:
            raise EncodingError("header update.trusted_height", "expected a positive integer")
        tv = d.get("trusted_validators")
        return cls(
            Header.from_json(d.get("header")),
            Commit.from_json(d.get("commit")),
            ValidatorSet.from_json(d.get("validators")),
            th,
            None if tv is None else ValidatorSet.from_json(tv),
        )


# --- store access ---------------------------------------------------------------------


def _client_key(client_id: str) -> str:
    return f"lightclient/client/{client_id}"


def _cons_key(client_id: str, height: int) -> str:
    return f"lightclient/cons/{client_id}/{height:020d}"


def _cons_prefix(client_id: str) -> str:
    return f"lightclient/cons/{client_id}/"


def _count_key(client_id: str) -> str:
    return f"lightclient/count/{client_id}"


def _get_count(state: State, client_id: str) -> int:
    n = state.get(_count_key(client_id))
    if n is None:  # a client stored before the count existed: one scan, then kept
        return sum(1 for _ in state.items(_cons_prefix(client_id)))
    return int(n)


def _legacy_heights_key(client_id: str) -> str:
    return f"lightclient/heights/{client_id}"


def get_consensus_heights(state: State, client_id: str) -> list[int]:
    """The heights with a stored consensus state, ascending (padded keys sort by height)."""
    prefix = _cons_prefix(client_id)
    return [int(k[len(prefix) :]) for k, _ in state.items(prefix)]


def _get_neighbours(
    state: State, client_id: str, height: int
) -> tuple[ConsensusState | None, ConsensusState | None]:
    """The stored consensus states nearest below and above ``height``: two ordered reads."""
    prefix, key = _cons_prefix(client_id), _cons_key(client_id, height)
    below = next(state.items(prefix, stop=key, reverse=True), None)
    above = next(state.items(prefix, start=key), None)
    return (
        None if below is None else ConsensusState.from_json(below[1]),
        None if above is None else ConsensusState.from_json(above[1]),
    )


# A PoW or PoS client (``chains.powclient``, ``chains.posclient``) answers these two reads
# too, so the bridge and the relayer use it through the same interface: its latest height
# is its final height, its consensus states exist only at final heights of its best
# chain, and it never expires (work or stake, not a trusting period, is what it trusts).
_CHAIN_NEVER_EXPIRES = 2**62


def get_chain_store(client_id: str) -> str | None:
    """The ``chains.headerchain`` store of a client that follows work or stake, or None
    for a BFT client."""
    if is_pow_client(client_id):
        return POW_STORE
    if is_pos_client(client_id):
        return POS_STORE
    return None


def get_client_state(state: State, client_id: str) -> ClientState:
    store = get_chain_store(client_id)
    if store is not None:
        cc = get_chain_client(state, store, client_id)
        return ClientState(
            cc.chain_id, DEFAULT_TRUST_LEVEL, _CHAIN_NEVER_EXPIRES, 0, cc.final_height, 0
        )
    raw = state.get(_client_key(client_id))
    if raw is None:
        raise ClientNotFound(client_id)
    return ClientState.from_json(raw)


def get_consensus_state(state: State, client_id: str, height: int) -> ConsensusState:
    store = get_chain_store(client_id)
    if store is not None:
        cc = get_chain_client(state, store, client_id)
        r = get_final_record(state, store, client_id, cc, height)
        return ConsensusState(r.time, r.hash, r.event_root, r.event_count, r.state_root, ZERO_HASH)
    raw = state.get(_cons_key(client_id, height))
    if raw is None:
        raise ConsensusStateNotFound(client_id, height)
    return ConsensusState.from_json(raw)


def _check_active(client_id: str, client: ClientState, state: State, now: int) -> None:
    if client.frozen_height:
        raise ClientFrozen(client_id, client.frozen_height)
    latest = get_consensus_state(state, client_id, client.latest_height)
    if latest.time + client.trusting_period <= now:
        raise ClientExpired(client_id)


# --- verification (pure) --------------------------------------------------------------


def _validate_roots(h: Header) -> None:
    for name in ("tx_root", "event_root", "state_root", "validators_hash", "next_validators_hash"):
        if getattr(h, name) == ZERO_HASH:
            raise InvalidRoot(name)


def validate_header_update(
    client: ClientState, trusted: ConsensusState, update: HeaderUpdate, now: int
) -> None:
    """Check ``update`` against a trusted consensus state; changes nothing."""
    h = update.header
    if h.chain_id != client.chain_id:
        raise ChainIdMismatch(client.chain_id, h.chain_id)
    if h.height <= update.trusted_height:
        raise NonIncreasingHeight(update.trusted_height, h.height)
    if trusted.time + client.trusting_period <= now:
        raise TrustingPeriodExpired(trusted.time, now, client.trusting_period)
    if h.time <= trusted.time:
        raise NonMonotonicTime(trusted.time, h.time)
    if h.time > now + client.max_clock_drift:
        raise HeaderFromFuture(h.time, now, client.max_clock_drift)
    _validate_roots(h)
    if update.validators.hash != h.validators_hash:
        raise ValidatorSetMismatch("header")
    if h.height == update.trusted_height + 1:
        if h.validators_hash != trusted.next_validators_hash:
            raise ValidatorSetMismatch("trusted next")
    else:
        tv = update.trusted_validators
        if tv is None or tv.hash != trusted.next_validators_hash:
            raise ValidatorSetMismatch("trusted")
        verify_commit(h, update.commit, tv, client.trust_level, allow_unknown=True)
    verify_commit(h, update.commit, update.validators, TWO_THIRDS)


def process_create_client(
    state: State,
    update: HeaderUpdate,
    trusting_period: int,
    max_clock_drift: int,
    trust_level: tuple[int, int] = DEFAULT_TRUST_LEVEL,
) -> str:
    """Create a client trusting ``update.header`` (trust is social, as in IBC)."""
    num, den = trust_level
    if not (den > 0 and 3 * num >= den and num <= den):
        raise InvalidArgument("trust_level", "must be a fraction in [1/3, 1]")
    if trusting_period <= 0 or max_clock_drift < 0:
        raise InvalidArgument("trusting_period", "must be positive (drift non-negative)")
    h = update.header
    _validate_roots(h)
    if update.validators.hash != h.validators_hash:
        raise ValidatorSetMismatch("header")
    verify_commit(h, update.commit, update.validators, TWO_THIRDS)
    seq: int = state.get("lightclient/next_id", 0)
    client_id = f"lc-{seq}"
    state.set("lightclient/next_id", seq + 1)
    client = ClientState(h.chain_id, (num, den), trusting_period, max_clock_drift, h.height, 0)
    state.set(_client_key(client_id), client.to_json())
    state.set(_cons_key(client_id, h.height), ConsensusState.of(h).to_json())
    state.set(_count_key(client_id), 1)
    return client_id


def process_update_client(state: State, client_id: str, update: HeaderUpdate, now: int) -> str:
    """Verify and store a header. Returns ``stored``, ``duplicate`` or ``frozen``."""
    client = get_client_state(state, client_id)
    if client.frozen_height:
        raise ClientFrozen(client_id, client.frozen_height)
    trusted = get_consensus_state(state, client_id, update.trusted_height)
    validate_header_update(client, trusted, update, now)
    h = update.header
    existing = state.get(_cons_key(client_id, h.height))
    if existing is not None:
        if bytes.fromhex(existing["header_hash"]) == h.hash:
            return "duplicate"
        _freeze(state, client_id, client, h.height)
        return "frozen"
    below, above = _get_neighbours(state, client_id, h.height)
    # BFT time is monotonic: valid commits out of order prove two histories were signed
    if (below is not None and below.time >= h.time) or (above is not None and h.time >= above.time):
        _freeze(state, client_id, client, h.height)
        return "frozen"
    stored = _get_count(state, client_id) + 1
    state.set(_cons_key(client_id, h.height), ConsensusState.of(h).to_json())
    if h.height > client.latest_height:
        client = ClientState(
            client.chain_id,
            client.trust_level,
            client.trusting_period,
            client.max_clock_drift,
            h.height,
            0,
        )
        state.set(_client_key(client_id), client.to_json())
    stored -= _prune_expired(state, client_id, client, now)
    stored -= _prune_lowest(state, client_id, client, stored - MAX_CONSENSUS_STATES)
    state.set(_count_key(client_id), stored)
    state.delete(_legacy_heights_key(client_id))
    return "stored"


def _prune_expired(state: State, client_id: str, client: ClientState, now: int) -> int:
    """Delete expired consensus states, lowest first, never the latest; returns how many.
    Stored times increase with height, so the first unexpired state ends the run."""
    latest = _cons_key(client_id, client.latest_height)
    n = 0
    for key, raw in state.items(_cons_prefix(client_id), stop=latest):
        if raw["time"] + client.trusting_period > now:
            break
        state.delete(key)
        n += 1
    return n


def _prune_lowest(state: State, client_id: str, client: ClientState, excess: int) -> int:
    """Delete the ``excess`` lowest consensus states, never the latest; returns how many."""
    n = 0
    latest = _cons_key(client_id, client.latest_height)
    for key, _ in state.items(_cons_prefix(client_id), stop=latest):
        if n >= excess:
            break
        state.delete(key)
        n += 1
    return n


def _freeze(state: State, client_id: str, client: ClientState, height: int) -> None:
    frozen = ClientState(
        client.chain_id,
        client.trust_level,
        client.trusting_period,
        client.max_clock_drift,
        client.latest_height,
        height,
    )
    state.set(_client_key(client_id), frozen.to_json())


def process_misbehaviour(
    state: State, client_id: str, first: HeaderUpdate | None, second: HeaderUpdate, now: int
) -> None:
    """Freeze the client on two valid commits for one height with different headers.

    ``first=None`` takes the header the client already stored at that height as the
    first half: the evidence is then one update, not two, so the misbehaviour of a set
    whose single update fits in a transaction can always be proven (two full updates
    exceed the 64 KiB limit from about 60 validators)."""
    client = get_client_state(state, client_id)
    if client.frozen_height:
        raise ClientFrozen(client_id, client.frozen_height)
    if first is None:
        stored = get_consensus_state(state, client_id, second.header.height)
        if stored.header_hash == second.header.hash:
            raise InvalidArgument("misbehaviour", "the header is the one stored")
        trusted = get_consensus_state(state, client_id, second.trusted_height)
        validate_header_update(client, trusted, second, now)
        _freeze(state, client_id, client, second.header.height)
        return
    if first.header.height != second.header.height:
        raise InvalidArgument("misbehaviour", "headers are at different heights")
    if first.header.hash == second.header.hash:
        raise InvalidArgument("misbehaviour", "headers are identical")
    for u in (first, second):
        trusted = get_consensus_state(state, client_id, u.trusted_height)
        validate_header_update(client, trusted, u, now)
    _freeze(state, client_id, client, first.header.height)


def verify_event(
    state: State,
    client_id: str,
    height: int,
    event: Event,
    index: int,
    proof: Sequence[bytes],
    now: int,
) -> None:
    """Check that ``event`` is event number ``index`` of the tracked chain's block at
    ``height``, against the stored consensus state. Raises, never returns False."""
    store = get_chain_store(client_id)
    if store is not None:
        verify_chain_event(state, store, client_id, height, event, index, proof)
        return
    client = get_client_state(state, client_id)
    _check_active(client_id, client, state, now)
    cs = get_consensus_state(state, client_id, height)
    if cs.event_root == ZERO_HASH:
        raise InvalidProof("zero event root")
    if not verify_inclusion(event.leaf(), index, cs.event_count, proof, cs.event_root):
        raise InvalidProof(f"event {index} does not verify against root at height {height}")


def decode_proof(value: object, what: str = "proof") -> list[bytes]:
    """A proof from its wire form: a list of at most 64 hex hashes."""
    if not isinstance(value, list) or len(value) > 64:
        raise EncodingError(what, "expected a list of at most 64 hex hashes")
    return [from_hex(p, f"{what}[{i}]", 32) for i, p in enumerate(value)]


# --- the module -----------------------------------------------------------------------


def _ration_create(state: State, creator: str) -> None:
    """Count one more client created by ``creator``; :class:`ClientQuotaExceeded` for an
    account that holds no funds (as the mempool's unfunded senders: free to relay, not to
    grow state) or has created :data:`MAX_CLIENTS_PER_CREATOR` already."""
    if next(state.items(f"bank/bal/{creator}/"), None) is None:
        raise ClientQuotaExceeded(creator, "it holds no funds")
    key = f"lightclient/created/{creator}"
    made: int = state.get(key, 0)
    if made >= MAX_CLIENTS_PER_CREATOR:
        raise ClientQuotaExceeded(creator, f"it created {made}, the most one account may")
    state.set(key, made + 1)


def _list_arg(args: Mapping[str, Any], name: str, parse: Callable[[object], T]) -> list[T]:
    """A list argument of at most 64 items, each parsed by ``parse`` (which raises
    ``EncodingError`` for a malformed one)."""
    raw = args.get(name)
    if not isinstance(raw, list) or len(raw) > 64:
        raise InvalidArgument(name, "expected a list of at most 64 items")
    return [parse(x) for x in raw]


class LightClientModule:
    """Calls: ``create_client``, ``update_client``, ``submit_misbehaviour`` (``first``
    may be null: the stored header at ``second``'s height). Anyone may call them: every
    header is verified, so relayers need no permission."""

    name = "lightclient"

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        return None

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        now = ctx.block.time
        if method in ("create_client", "create_pow_client", "create_pos_client"):
            _ration_create(ctx.state, ctx.sender)  # rolled back with the call if it fails
        try:
            if method == "create_client":
                tl = args.get("trust_level", list(DEFAULT_TRUST_LEVEL))
                if not (
                    isinstance(tl, list)
                    and len(tl) == 2
                    and all(isinstance(x, int) and not isinstance(x, bool) for x in tl)
                ):
                    raise InvalidArgument("trust_level", "expected [numerator, denominator]")
                update = HeaderUpdate.from_json({**args["update"], "trusted_height": 1})
                cid = process_create_client(
                    ctx.state,
                    update,
                    arg_int(args, "trusting_period", 1),
                    arg_int(args, "max_clock_drift", 0),
                    (tl[0], tl[1]),
                )
                h = update.header
                ctx.emit(
                    "client_created", {"client_id": cid, "chain_id": h.chain_id, "height": h.height}
                )
            elif method == "update_client":
                cid = arg_str(args, "client_id", 64)
                update = HeaderUpdate.from_json(args.get("update"))
                outcome = process_update_client(ctx.state, cid, update, now)
                ctx.emit(
                    "client_updated" if outcome != "frozen" else "client_frozen",
                    {"client_id": cid, "height": update.header.height, "outcome": outcome},
                )
            elif method == "create_pow_client":
                checkpoint = Header.from_json(args.get("checkpoint"))
                h_cp = checkpoint.height
                cid = process_create_pow_client(
                    ctx.state,
                    PowParams.from_json(args.get("params")),
                    checkpoint,
                    arg_int(args, "anchor_time", 0),
                )
                ctx.emit(
                    "client_created",
                    {"client_id": cid, "chain_id": checkpoint.chain_id, "height": h_cp},
                )
            elif method == "create_pos_client":
                checkpoint = Header.from_json(args.get("checkpoint"))
                cid = process_create_pos_client(
                    ctx.state,
                    PosParams.from_json(args.get("params")),
                    checkpoint,
                    ValidatorSet.from_json(args.get("table")),
                )
                ctx.emit(
                    "client_created",
                    {
                        "client_id": cid,
                        "chain_id": checkpoint.chain_id,
                        "height": checkpoint.height,
                    },
                )
            elif method in ("update_pow_client", "update_pos_client"):
                cid = arg_str(args, "client_id", 64)
                headers = _list_arg(args, "headers", Header.from_json)
                if method == "update_pow_client":
                    outcome = process_update_pow_client(ctx.state, cid, headers, now)
                    store = POW_STORE
                else:
                    tables = _list_arg(args, "tables", ValidatorSet.from_json)
                    outcome = process_update_pos_client(ctx.state, cid, headers, tables, now)
                    store = POS_STORE
                ctx.emit(
                    "client_updated",
                    {
                        "client_id": cid,
                        "height": headers[-1].height,
                        "outcome": outcome,
                        "final_height": get_chain_client(ctx.state, store, cid).final_height,
                    },
                )
            elif method == "submit_misbehaviour":
                cid = arg_str(args, "client_id", 64)
                raw_first = args.get("first")  # null: the header stored at that height
                first = None if raw_first is None else HeaderUpdate.from_json(raw_first)
                second = HeaderUpdate.from_json(args.get("second"))
                process_misbehaviour(ctx.state, cid, first, second, now)
                ctx.emit("client_frozen", {"client_id": cid, "height": second.header.height})
            else:
                raise UnknownMethod(self.name, method)
        except (KeyError, TypeError) as exc:
            raise InvalidArgument(method, f"malformed arguments ({exc})") from None
        except EncodingError as exc:
            raise InvalidArgument(exc.what, exc.reason) from None
        except InvalidConsensusParams as exc:
            raise InvalidArgument("params", exc.reason) from None

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        return []

    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        cid = arg_str(args, "client_id", 64)
        store = get_chain_store(cid)
        if path == "client":
            if store is not None:  # the common view, plus best and final heights and score
                common = get_client_state(state, cid).to_json()
                return {**common, **get_chain_client(state, store, cid).to_json()}
            return get_client_state(state, cid).to_json()
        if path == "consensus_state":
            return get_consensus_state(state, cid, arg_int(args, "height", 1)).to_json()
        if path == "pow_best" and store is not None:
            # a PoW or PoS client's best chain, heights to hashes: what chains.powplan needs
            cc = get_chain_client(state, store, cid)
            lo = arg_int(args, "from", 0)
            hi = min(arg_int(args, "to", 0), cc.best_height, lo + MAX_POW_BEST_QUERY - 1)
            segments = HeaderStore(state, store, cid)
            out: dict[str, JSONValue] = {}
            for height in range(max(lo, cc.checkpoint_height), hi + 1):
                got = segments.best_hash(height)
                if got is not None:
                    out[str(height)] = got.hex()
            return out
        if path == "consensus_below":
            # the nearest stored height below: what a relayer fills a height in from
            get_client_state(state, cid)
            prefix = _cons_prefix(cid)
            key = _cons_key(cid, arg_int(args, "height", 1))
            below = next(state.items(prefix, stop=key, reverse=True), None)
            if below is None:
                return None
            return {"height": int(below[0][len(prefix) :]), **dict(below[1])}
        raise InvalidArgument("path", f"lightclient has no query {path!r}")

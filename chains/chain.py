"""A chain: genesis, modules, state, and block execution. Pure: time comes in as an argument.

``Chain`` is the one mutable store of a ledger. ``produce_block`` is ``process_block`` for
a proposer: it checks the signers can commit, executes transactions in order, runs every
module's end-block, builds the header, and signs the commit.

Transaction semantics (the contract every client relies on):

* ``check_tx`` refuses before execution (wrong chain, bad signature, bad nonce): such a
  transaction never enters a block and changes nothing.
* An included transaction whose call fails is rolled back entirely, except that the
  sender's nonce advances (so it cannot be replayed); its receipt names the error class.
  There are no fees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from hashlib import sha256
from typing import Any

from chains.crypto import PrivateKey, verify
from chains.encoding import JSONValue, canonical
from chains.engine import Engine, parse_engine
from chains.errors import (
    BadNonce,
    ConfigError,
    InsufficientVotingPower,
    InterlockError,
    InvalidArgument,
    InvalidBlock,
    InvalidSignature,
    StoreError,
    UnknownModule,
    WrongChain,
)
from chains.merkle import hash_leaf, merkle_root_of_hashes
from chains.module import BlockInfo, Module, TxContext, is_chain_id
from chains.pos import PosParams, propose, validate_seal
from chains.pow import (
    PowParams,
    TipInfo,
    compute_next_anchor,
    compute_next_target,
    is_work_valid,
    mine,
)
from chains.pow import target_bytes as _target_bytes
from chains.pow import target_int as _target_int
from chains.state import State
from chains.types import Block, Commit, CommitSig, Event, Header, Receipt, Tx, ValidatorSet
from chains.types import vote_sign_bytes as _vote_sign_bytes
from chains.validators import VALIDATORS_KEY, get_validator_set

__all__ = ["BlockBuilder", "BlockResult", "Chain", "Genesis", "is_signature_valid"]


@dataclass(frozen=True, slots=True)
class Genesis:
    """Everything that defines a chain at height 0."""

    chain_id: str
    """Unique chain id."""
    time: int
    """Genesis time, Unix ms; block 1 is later."""
    validators: ValidatorSet
    """The set that signs block 1."""
    authority: str
    """The governance address."""
    app_state: Mapping[str, Mapping[str, Any]]
    """Per module genesis, keyed by module name."""
    consensus: Engine | None = None
    """The engine's parameters (``chains.engine``); None is BFT (and is not encoded: a
    BFT genesis and its hash are what they were before engines could be chosen)."""

    def to_json(self) -> dict[str, JSONValue]:
        d: dict[str, JSONValue] = {
            "chain_id": self.chain_id,
            "time": self.time,
            "validators": self.validators.to_json(),
            "authority": self.authority,
            "app_state": {k: dict(v) for k, v in self.app_state.items()},
        }
        if self.consensus is not None:
            d["consensus"] = self.consensus.to_json()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Genesis:
        try:
            return cls(
                d["chain_id"],
                d["time"],
                ValidatorSet.from_json(d["validators"]),
                d["authority"],
                d["app_state"],
                parse_engine(d.get("consensus")),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed genesis: {exc}") from None

    @property
    def hash(self) -> bytes:
        return sha256(canonical(self.to_json())).digest()


@dataclass(frozen=True, slots=True)
class BlockResult:
    """A produced block and the transactions that could not be included."""

    block: Block
    """The committed block."""
    validators: ValidatorSet
    """The set that signed it."""
    dropped: tuple[tuple[Tx, InterlockError], ...]
    """Transactions refused at execution (stale nonce, bad signature), with why."""


def is_signature_valid(tx: Tx) -> bool:
    """True iff ``tx`` carries its sender's valid signature. Pure and thread-safe: the
    ed25519 check releases the GIL, so callers may run it in worker threads."""
    return verify(tx.sender, tx.sign_bytes(), tx.signature)


def _nonce_key(addr: str) -> str:
    return f"auth/nonce/{addr}"


# A PoW chain's anchor_time of its last block (see chains.pow): in the state, so that it
# is committed by the state root and survives a restart with the rest of the state.
POW_ANCHOR_KEY = "consensus/anchor_time"
# A PoS chain's engine parameters, for its staking module (``chains.staking``).
POS_PARAMS_KEY = "consensus/params"


class Chain:
    """One ledger. Not thread-safe; the node serializes access."""

    def __init__(self, genesis: Genesis, modules: Sequence[Module]) -> None:
        if not is_chain_id(genesis.chain_id):
            raise ConfigError(
                f"genesis chain id {genesis.chain_id!r} is not a letter then up to 63 of "
                "[A-Za-z0-9._-]"
            )
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.modules: dict[str, Module] = {}
        for m in modules:
            if m.name in self.modules or m.name == "auth":
                raise ConfigError(f"module name {m.name!r} used twice or reserved")
            self.modules[m.name] = m
        self.state = State()
        self.state.set(VALIDATORS_KEY, genesis.validators.to_json())
        if isinstance(genesis.consensus, PosParams):
            # the stake table is the staking module's, never governance's
            if "staking" not in self.modules or "validators" in self.modules:
                raise ConfigError(
                    f"{genesis.chain_id}: a proof-of-stake chain needs the staking module "
                    "and not the validators module"
                )
            self.state.set(POS_PARAMS_KEY, genesis.consensus.to_json())
        for name, m in self.modules.items():
            m.init_genesis(self.state, genesis.app_state.get(name, {}))
        unknown = set(genesis.app_state) - set(self.modules)
        if unknown:
            raise ConfigError(f"genesis has state for unknown modules {sorted(unknown)}")
        self.last_header: Header | None = None
        self.last_validators: ValidatorSet = genesis.validators
        self.validators: ValidatorSet = genesis.validators  # signs the next block
        self.genesis_hash = genesis.hash
        self.genesis_root = self.state.root()

    # --- restore --------------------------------------------------------------------
    @classmethod
    def restore(
        cls,
        genesis: Genesis,
        modules: Sequence[Module],
        items: Mapping[str, Any],
        last_header: Header,
        last_validators: ValidatorSet,
    ) -> Chain:
        """Rebuild from persisted state; refuses state that does not match the header."""
        chain = cls(genesis, modules)
        chain.state = State(items)
        if chain.state.root() != last_header.state_root:
            raise StoreError(
                f"stored state does not match the state root of height {last_header.height}"
                " (tampered, or written by an older state layout: start that data dir afresh)"
            )
        chain.last_header = last_header
        chain.last_validators = last_validators
        chain.validators = get_validator_set(chain.state)
        return chain

    # --- reads ----------------------------------------------------------------------
    @property
    def height(self) -> int:
        return 0 if self.last_header is None else self.last_header.height

    @property
    def last_time(self) -> int:
        return self.genesis.time if self.last_header is None else self.last_header.time

    def next_nonce(self, addr: str) -> int:
        n: int = self.state.committed().get(_nonce_key(addr), 0)
        return n

    def query(self, module: str, path: str, args: Mapping[str, Any]) -> JSONValue:
        if module == "auth" and path == "nonce":
            addr = args.get("address")
            if not isinstance(addr, str):
                raise InvalidArgument("address", "expected an address")
            return self.next_nonce(addr)
        m = self.modules.get(module)
        if m is None:
            raise UnknownModule(module)
        return m.query(self.read_state(), path, args)

    # --- validation -----------------------------------------------------------------
    def check_tx(
        self, tx: Tx, expected_nonce: int | None = None, *, signature_checked: bool = False
    ) -> None:
        """Refuse a transaction that must never enter a block; changes nothing.

        ``signature_checked=True`` is for a caller that already ran
        :func:`is_signature_valid` on this very transaction (e.g. off the event loop)."""
        if tx.chain_id != self.chain_id:
            raise WrongChain(self.chain_id, tx.chain_id)
        want = self.next_nonce(tx.sender_address) if expected_nonce is None else expected_nonce
        if tx.nonce != want:
            raise BadNonce(tx.sender_address, want, tx.nonce)
        if not signature_checked and not is_signature_valid(tx):
            raise InvalidSignature()

    # --- production -----------------------------------------------------------------
    def produce_block(
        self,
        txs: Iterable[Tx],
        time: int,
        signers: Sequence[PrivateKey],
        *,
        verify_signatures: bool = True,
    ) -> BlockResult:
        """Execute ``txs`` into the next block at ``time`` and commit it with ``signers``.

        ``verify_signatures=False`` is for a caller that already ran ``check_tx`` (the
        mempool); nonces and chain ids are always re-checked.
        """
        builder = self.start_block(time, signers)
        builder.execute(txs, verify_signatures=verify_signatures)
        return builder.finish()

    def start_block(self, time: int, signers: Sequence[PrivateKey]) -> BlockBuilder:
        """Begin the next block, to be executed in pieces (``execute``, then ``finish``)
        with other work in between: until it is finished, :meth:`query`,
        :meth:`next_nonce` and :meth:`read_state` answer as of the last block."""
        return BlockBuilder(self, time, signers)

    def process_block(self, block: Block) -> BlockResult:
        """Execute a block sealed elsewhere (a peer's, on a proof-of-work chain) and make
        it the chain's latest: every transaction must pass and the header built from the
        execution must be the block's own, seal and all. Raises :class:`InvalidBlock`;
        refused, the chain is left mid-block: the caller discards it (the node runs this
        on a copy restored from its store)."""
        h = block.header
        if h.height != self.height + 1 or h.time <= self.last_time:
            raise InvalidBlock(h.height, "does not follow the chain's tip")
        builder = BlockBuilder(self, h.time, (), sealed=h)
        builder.execute(block.txs)
        if builder._dropped:
            tx, exc = builder._dropped[0]
            raise InvalidBlock(h.height, f"transaction {tx.hash.hex()[:16]} refused: {exc}")
        result = builder.seal()
        if result.block.header != h:
            raise InvalidBlock(h.height, "its header is not what its transactions produce")
        builder.apply(result)
        return result

    def read_state(self) -> State:
        """The state as of the last complete block (a read-only view while one is being
        built): what every read from outside the chain must use."""
        return self.state.committed()

    def _execute(
        self, block: BlockInfo, tx: Tx, index: int, first_event: int, events: list[Event]
    ) -> Receipt:
        module = self.modules.get(tx.module)
        ctx = TxContext(block, self.state, tx.sender_address, tx.module)
        self.state.begin()
        try:
            if module is None:
                raise UnknownModule(tx.module)
            module.deliver(ctx, tx.method, tx.args)
            self.state.validate_pending()
        except InterlockError as exc:
            self.state.rollback()
            return Receipt(
                tx.hash, block.height, index, False, type(exc).__name__, str(exc), first_event, ()
            )
        except Exception as exc:  # a module bug must not halt the chain; its writes roll back
            self.state.rollback()
            msg = f"internal error in {tx.module}.{tx.method}: {type(exc).__name__}"
            return Receipt(
                tx.hash, block.height, index, False, "InternalError", msg, first_event, ()
            )
        self.state.commit()
        events.extend(ctx.events)
        return Receipt(tx.hash, block.height, index, True, "ok", "", first_event, tuple(ctx.events))


class BlockBuilder:
    """One block of a chain, executed in pieces. ``Chain.produce_block`` is
    ``start_block`` + one ``execute`` + ``finish``; the node calls ``execute`` per chunk
    of transactions and yields to its event loop in between."""

    def __init__(
        self,
        chain: Chain,
        time: int,
        signers: Sequence[PrivateKey],
        *,
        sealed: Header | None = None,
    ) -> None:
        vals = chain.validators
        keys = [k for k in signers if k.public_key in vals.by_key]
        power = sum(vals.by_key[k.public_key] for k in keys)
        engine = chain.genesis.consensus
        self._pow = engine if isinstance(engine, PowParams) else None
        self._pos = engine if isinstance(engine, PosParams) else None
        self._sealed = sealed  # a block sealed elsewhere: its proposer and seal, no search
        self._header: tuple[Header, ValidatorSet] | None = None  # built once (end-block)
        if self._pow is not None:  # a PoW block is sealed by work: the first key mines
            if sealed is None and not signers:
                raise ConfigError(f"{chain.chain_id}: a proof-of-work node needs a miner key")
            keys = list(signers[:1])
        elif self._pos is not None:  # sealed by an eligible staked key (chains.pos)
            if sealed is None and not keys:
                raise ConfigError(f"{chain.chain_id}: a proof-of-stake node needs a staked key")
            time = max(time, chain.last_time + self._pos.min_block_ms)
        elif power * 3 <= vals.total_power * 2:  # check before any state changes
            raise InsufficientVotingPower(power, vals.total_power, "more than 2/3")
        self.chain = chain
        self._keys = keys
        self._vals = vals
        height = chain.height + 1
        self.block = BlockInfo(
            chain.chain_id, height, max(time, chain.last_time + 1), chain.genesis.authority
        )
        self._included: list[Tx] = []
        self._receipts: list[Receipt] = []
        self._events: list[Event] = []
        self._dropped: list[tuple[Tx, InterlockError]] = []
        self._next_vals = vals
        chain.state.begin_block()

    def apply(self, result: BlockResult) -> None:
        """Advance the chain to the sealed block: reads see it from now on."""
        chain = self.chain
        chain.state.end_block()
        chain.last_header = result.block.header
        chain.last_validators = self._vals
        chain.validators = self._next_vals

    def execute(self, txs: Iterable[Tx], *, verify_signatures: bool = True) -> None:
        """Execute ``txs`` in order into the block (refused ones are dropped, not
        included)."""
        chain = self.chain
        state, block = chain.state, self.block
        included, receipts, events, dropped = (
            self._included,
            self._receipts,
            self._events,
            self._dropped,
        )
        chain_id, get = chain.chain_id, state.get
        for tx in txs:  # hot loop: the nonce lookup is next_nonce() inlined
            nonce_key = f"auth/nonce/{tx.sender_address}"
            nonce: int = get(nonce_key, 0)
            try:
                if tx.chain_id != chain_id:
                    raise WrongChain(chain_id, tx.chain_id)
                if tx.nonce != nonce:
                    raise BadNonce(tx.sender_address, nonce, tx.nonce)
                if verify_signatures and not verify(tx.sender, tx.sign_bytes(), tx.signature):
                    raise InvalidSignature()
            except InterlockError as exc:
                dropped.append((tx, exc))
                continue
            receipts.append(chain._execute(block, tx, len(included), len(events), events))
            state.set(nonce_key, nonce + 1)
            included.append(tx)

    def finish(self) -> BlockResult:
        """:meth:`seal`, then :meth:`apply`: the block is the chain's latest."""
        result = self.seal()
        self.apply(result)
        return result

    def _proposer(self, height: int, mined: bool) -> bytes:
        if self._sealed is not None:
            return self._sealed.proposer
        return self._keys[0].public_key if mined else self._vals.proposer(height).public_key

    def _pow_parent(self, params: PowParams) -> TipInfo:
        chain = self.chain
        last = chain.last_header
        return TipInfo(
            chain.height,
            chain.last_time,
            params.initial_target if last is None else _target_int(last.target),
            chain.state.get(POW_ANCHOR_KEY, chain.genesis.time),
        )

    @property
    def needs_mining(self) -> bool:
        """True when :meth:`seal` would search nonces (a PoW block made here): a caller
        that must not spend that time where it is may mine :meth:`build_header`'s header
        elsewhere and pass the result to :meth:`seal`."""
        return self._pow is not None and self._sealed is None

    def _seal_pow(
        self, header: Header, next_vals: ValidatorSet, mined: Header | None
    ) -> BlockResult:
        given = mined if mined is not None else self._sealed  # a nonce found elsewhere
        if given is not None:
            sealed: Header | None = replace(header, nonce=given.nonce)
            if sealed is None or not is_work_valid(sealed):
                raise InvalidBlock(header.height, "its seal does not meet its target")
        else:
            sealed = mine(header)
        if sealed is None:  # unreachable: mine() without a bound searches 2**63 nonces
            raise ConfigError(f"{self.chain.chain_id}: no nonce meets the target")
        return self._sealed_block(sealed, next_vals)

    def _seal_pos(self, params: PosParams, header: Header, next_vals: ValidatorSet) -> BlockResult:
        if self._sealed is None:
            return self._sealed_block(propose(params, header, self._vals, self._keys), next_vals)
        s = self._sealed
        sealed = replace(header, proposer=s.proposer, slot=s.slot, seal=s.seal)
        try:
            validate_seal(params, sealed, self._vals)
        except InterlockError as exc:
            raise InvalidBlock(header.height, str(exc)) from None
        return self._sealed_block(sealed, next_vals)

    def _sealed_block(self, sealed: Header, next_vals: ValidatorSet) -> BlockResult:
        """A block sealed in its header (by work or stake): its commit carries no votes."""
        self._next_vals = next_vals
        return BlockResult(
            Block(
                sealed,
                Commit(sealed.height, sealed.hash, ()),
                tuple(self._included),
                tuple(self._receipts),
                tuple(self._events),
            ),
            self._vals,
            tuple(self._dropped),
        )

    def seal(self, mined: Header | None = None) -> BlockResult:
        """Run every module's end-block, build the header and sign the commit (PoW: mine
        it, or take ``mined``'s nonce, :attr:`needs_mining`); the chain does not advance
        yet (its reads still answer as of the previous block), so the caller may persist
        the block first."""
        header, next_vals = self._header or self._build_header()
        if self._pow is not None:
            return self._seal_pow(header, next_vals, mined)
        if self._pos is not None:
            return self._seal_pos(self._pos, header, next_vals)
        return self._seal_bft(header, next_vals)

    def build_header(self) -> Header:
        """The block's header before its seal (PoW: no nonce yet); runs every module's
        end-block once. :meth:`seal` finishes the block from it."""
        return (self._header or self._build_header())[0]

    def _build_header(self) -> tuple[Header, ValidatorSet]:
        chain, block, events = self.chain, self.block, self._events
        state, vals, height = chain.state, self._vals, block.height
        for name, m in chain.modules.items():
            for ev in m.end_block(block, state):
                if ev.module != name:
                    raise RuntimeError(f"module {name!r} emitted foreign event {ev.type!r}")
                events.append(ev)

        next_vals = get_validator_set(state)
        included = self._included
        target = b""
        if self._pow is not None:
            parent = self._pow_parent(self._pow)
            target = _target_bytes(compute_next_target(self._pow, parent))
            state.set(POW_ANCHOR_KEY, compute_next_anchor(self._pow, parent))
        header = Header(
            chain_id=chain.chain_id,
            height=height,
            time=block.time,
            prev_hash=chain.genesis_hash if chain.last_header is None else chain.last_header.hash,
            tx_root=merkle_root_of_hashes([hash_leaf(tx.wire) for tx in included]),
            tx_count=len(included),
            event_root=merkle_root_of_hashes([hash_leaf(e.leaf()) for e in events]),
            event_count=len(events),
            state_root=state.root(),
            validators_hash=vals.hash,
            next_validators_hash=next_vals.hash,
            proposer=self._proposer(height, bool(target)),
            target=target,
        )
        self._header = header, next_vals
        return self._header

    def _seal_bft(self, header: Header, next_vals: ValidatorSet) -> BlockResult:
        chain, height, included, events = self.chain, header.height, self._included, self._events
        vals = self._vals
        block_hash = header.hash
        msg = _vote_sign_bytes(chain.chain_id, height, block_hash)
        sigs = tuple(
            sorted(
                (CommitSig(k.public_key, k.sign(msg)) for k in self._keys),
                key=lambda s: s.validator,
            )
        )
        self._next_vals = next_vals
        return BlockResult(
            Block(
                header,
                Commit(height, block_hash, sigs),
                tuple(included),
                tuple(self._receipts),
                tuple(events),
            ),
            vals,
            tuple(self._dropped),
        )

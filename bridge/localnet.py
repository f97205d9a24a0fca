"""Chains in one process and a hand-carried relay between them, for tests, docs and bench.

No daemon and no I/O: :class:`LocalNet` produces blocks on demand on a shared simulated
clock and keeps every block, so test code can carry exactly the messages it wants, in
the order it wants, and drop or replay others. It is a thin harness: what to relay is
decided by the pure planner :mod:`bridge.relay`, the same code the relayer daemon runs.

1. ``update_client(src, dst)``: a ``lightclient.update_client`` transaction on ``dst``
   carrying ``src``'s latest signed header (skipping from the client's trusted height).
2. ``pending(src, dst)``: ``select_packets`` over every block of ``src``, minus what
   ``dst``'s ``bridge/pending`` query says is done (a relayer that forgot its cursor
   just scans again). ``collect`` first gives ``dst``'s client the header of every
   height that has such an event (``heights_needed``).
3. ``deliver(dst, items)``: the ``bridge.mint`` / ``release`` / ``refund`` transactions
   of ``pack_deliveries``, signed by the relayer account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.module import BridgeModule
from bridge.relay import (
    MAX_PENDING_QUERY,
    Packet,
    drop_delivered,
    heights_needed,
    pack_deliveries,
    pending_query,
    select_packets,
)
from chains.chain import Chain
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.encoding import JSONValue, sign_bytes
from chains.errors import ConsensusStateNotFound
from chains.lightclient import HeaderUpdate
from chains.module import Module
from chains.types import Block, Receipt, Tx, ValidatorSet
from zk.registry import ComplianceModule

__all__ = ["LocalNet", "Packet", "Pending", "Side"]

BLOCK_MS = 1000
TRUSTING_PERIOD = 14 * 24 * 3600 * 1000
MAX_CLOCK_DRIFT = 10_000


@dataclass(slots=True)
class Side:
    """One chain of the net and what a relayer would read from its node."""

    spec: DevnetChain
    """Its devnet definition (keys, genesis)."""
    chain: Chain
    """The ledger."""
    blocks: dict[int, Block] = field(default_factory=dict)
    """Every produced block by height."""
    signed_by: dict[int, ValidatorSet] = field(default_factory=dict)
    """The set that signed each height."""
    next_sets: dict[int, ValidatorSet] = field(default_factory=dict)
    """The set named by each height's ``next_validators_hash``."""
    pending_nonce: dict[str, int] = field(default_factory=dict)
    """Next nonce per address, counting transactions built but not yet in a block."""
    clients: dict[str, str] = field(default_factory=dict)
    """Remote chain id -> id of this chain's light client of it."""

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id


Pending = Packet
"""The name this harness used before the planner moved to :mod:`bridge.relay`."""


def _bridge_modules() -> Sequence[Module]:
    return [*base_modules(), BridgeModule(), ComplianceModule()]


class LocalNet:
    """Several chains with bridge modules, a shared clock, and a relay carried by hand."""

    def __init__(
        self,
        chain_ids: Sequence[str] = ("chain-a", "chain-b"),
        *,
        validators: int = 4,
        accounts: Sequence[str] = ("alice", "bob", "carol", "dave", "relayer"),
        modules: Callable[[], Sequence[Module]] = _bridge_modules,
        modules_by_chain: Mapping[str, Callable[[], Sequence[Module]]] | None = None,
        seed: str = "interlock-bridge",
    ) -> None:
        self.time = 1_000
        self.sides: dict[str, Side] = {}
        for spec in build_devnet(chain_ids, seed=seed, validators=validators, accounts=accounts):
            factory = (modules_by_chain or {}).get(spec.chain_id, modules)
            self.sides[spec.chain_id] = Side(spec, spec.build(factory))

    # --- producing blocks -------------------------------------------------------------
    def __getitem__(self, chain_id: str) -> Side:
        return self.sides[chain_id]

    def key(self, chain_id: str, name: str) -> PrivateKey:
        return self.sides[chain_id].spec.accounts[name]

    def tx(
        self, chain_id: str, key: PrivateKey, module: str, method: str, args: Mapping[str, Any]
    ) -> Tx:
        """A signed transaction with the sender's next free nonce."""
        side = self.sides[chain_id]
        addr = key.address
        nonce = side.pending_nonce.get(addr, side.chain.next_nonce(addr))
        side.pending_nonce[addr] = nonce + 1
        return Tx.create(key, chain_id, nonce, module, method, args)

    def produce(self, chain_id: str, txs: Sequence[Tx] = ()) -> Block:
        side = self.sides[chain_id]
        self.time += BLOCK_MS
        result = side.chain.produce_block(txs, self.time, side.spec.validator_keys)
        block = result.block
        side.blocks[block.height] = block
        side.signed_by[block.height] = result.validators
        side.next_sets[block.height] = side.chain.validators
        side.pending_nonce.clear()
        return block

    def advance(self, chain_id: str, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.produce(chain_id)

    def call(
        self,
        chain_id: str,
        key: PrivateKey | str,
        module: str,
        method: str,
        args: Mapping[str, Any],
    ) -> Receipt:
        """One transaction in its own block; returns its receipt."""
        if isinstance(key, str):
            key = self.key(chain_id, key)
        block = self.produce(chain_id, [self.tx(chain_id, key, module, method, args)])
        return block.receipts[0]

    # --- light clients and paths ------------------------------------------------------
    def header_update(self, src: str, height: int, trusted_height: int) -> HeaderUpdate:
        s = self.sides[src]
        block = s.blocks[height]
        return HeaderUpdate(
            block.header,
            block.commit,
            s.signed_by[height],
            trusted_height,
            s.next_sets[trusted_height],
        )

    def connect(self, a: str, b: str, **limits: int) -> None:
        """Clients of each chain on the other, and bridge paths both ways (governance)."""
        for src, dst in ((a, b), (b, a)):
            if self.sides[src].chain.height == 0:
                self.produce(src)
            h = self.sides[src].chain.height
            update = self.header_update(src, h, h)
            r = self.call(
                dst,
                "relayer",
                "lightclient",
                "create_client",
                {
                    "update": update.to_json(),
                    "trusting_period": TRUSTING_PERIOD,
                    "max_clock_drift": MAX_CLOCK_DRIFT,
                },
            )
            if not r.ok:
                raise RuntimeError(f"create_client on {dst}: {r.error}")
            client_id = str(r.events[0].attributes["client_id"])
            self.sides[dst].clients[src] = client_id
            args: dict[str, JSONValue] = {"remote_chain": src, "client_id": client_id, **limits}
            r = self.call(dst, "gov", "bridge", "register_path", args)
            if not r.ok:
                raise RuntimeError(f"register_path on {dst}: {r.error}")

    def client_height(self, src: str, dst: str) -> int:
        """Latest height of ``src`` that ``dst``'s client holds."""
        cid = self.sides[dst].clients[src]
        got = self.sides[dst].chain.query("lightclient", "client", {"client_id": cid})
        assert isinstance(got, dict)
        return int(got["latest_height"])

    def has_consensus(self, src: str, dst: str, height: int) -> bool:
        """Whether ``dst``'s client of ``src`` holds ``src``'s header at ``height``."""
        args = {"client_id": self.sides[dst].clients[src], "height": height}
        try:
            self.sides[dst].chain.query("lightclient", "consensus_state", args)
        except ConsensusStateNotFound:
            return False
        return True

    def update_client_tx(self, src: str, dst: str, height: int | None = None) -> Tx | None:
        """The update_client transaction giving ``dst``'s client of ``src`` the header at
        ``height`` (default: ``src``'s latest), or None if it holds it already. Verified
        from the client's latest height, or from the nearest stored height below when
        filling in an older height."""
        target = self.sides[src].chain.height if height is None else height
        if self.has_consensus(src, dst, target):
            return None
        trusted = self.client_height(src, dst)
        if trusted > target:
            trusted = next(h for h in range(target - 1, 0, -1) if self.has_consensus(src, dst, h))
        update = self.header_update(src, target, trusted)
        args = {"client_id": self.sides[dst].clients[src], "update": update.to_json()}
        return self.tx(dst, self.key(dst, "relayer"), "lightclient", "update_client", args)

    def update_client(self, src: str, dst: str, height: int | None = None) -> None:
        tx = self.update_client_tx(src, dst, height)
        if tx is not None:
            r = self.produce(dst, [tx]).receipts[0]
            if not r.ok:
                raise RuntimeError(f"update_client on {dst}: {r.code}: {r.error}")

    # --- packets ----------------------------------------------------------------------
    def pending(
        self,
        src: str,
        dst: str,
        *,
        include_done: bool = False,
        proven_only: bool = True,
    ) -> list[Pending]:
        """Events of ``src`` that ``dst`` has not consumed yet: packets to deliver and
        expiries to refund (``bridge.relay.select_packets``, then ``dst``'s
        ``bridge/pending`` answer). ``proven_only``: only heights whose header ``dst``'s
        client already holds (a proof at any other height cannot verify yet)."""
        s, d = self.sides[src], self.sides[dst]
        out: list[Pending] = []
        for h in range(1, s.chain.height + 1):
            found = select_packets(s.blocks[h], src, dst)
            if found and (not proven_only or self.has_consensus(src, dst, h)):
                out.extend(found)
        if include_done:
            return out
        todo: list[Pending] = []
        for start in range(0, len(out), MAX_PENDING_QUERY):
            chunk = out[start : start + MAX_PENDING_QUERY]
            answer = d.chain.query("bridge", "pending", pending_query(src, chunk))
            todo.extend(drop_delivered(chunk, answer))
        return todo

    def collect(self, src: str, dst: str) -> list[Pending]:
        """Bring ``dst``'s client to ``src``'s latest header and to every height that has
        an undelivered event, then return those events with their proofs."""
        self.update_client(src, dst)
        items = self.pending(src, dst, proven_only=False)
        for h in heights_needed(items):
            self.update_client(src, dst, h)
        return items

    def _sign(self, chain_id: str, key: PrivateKey, method: str, bundles: list[JSONValue]) -> Tx:
        """A bridge transaction over bundles built from kernel types (``EventProof.to_json``
        of decoded, validated values): they are canonical by construction, so the
        client-side ``check_value`` walk of ``Tx.create`` is skipped. The chain's own checks
        are unchanged."""
        side = self.sides[chain_id]
        addr = key.address
        nonce = side.pending_nonce.get(addr, side.chain.next_nonce(addr))
        side.pending_nonce[addr] = nonce + 1
        args: dict[str, JSONValue] = {"bundles": bundles}
        body = {
            "chain_id": chain_id,
            "sender": key.public_key.hex(),
            "nonce": nonce,
            "module": "bridge",
            "method": method,
            "args": args,
        }
        sig = key.sign(sign_bytes("tx", body))
        return Tx(chain_id, key.public_key, nonce, "bridge", method, args, sig)

    def delivery_txs(
        self, dst: str, items: Sequence[Pending], key: PrivateKey | None = None
    ) -> list[Tx]:
        """mint / release / refund transactions for ``items``, each under MAX_TX_BYTES
        (``bridge.relay.pack_deliveries``)."""
        key = key or self.key(dst, "relayer")
        return [self._sign(dst, key, method, b) for method, b in pack_deliveries(items)]

    def deliver(self, dst: str, items: Sequence[Pending]) -> list[Receipt]:
        """Deliver ``items`` on ``dst`` in one block; returns the receipts."""
        txs = self.delivery_txs(dst, items)
        if not txs:
            return []
        return list(self.produce(dst, txs).receipts)

    def relay(self, src: str, dst: str) -> list[Receipt]:
        """Everything pending from ``src`` to ``dst``: headers, then the packets."""
        return self.deliver(dst, self.collect(src, dst))

    def settle(self, a: str, b: str, rounds: int = 3) -> None:
        """Relay both ways until nothing is pending (expiries need a round trip)."""
        for _ in range(rounds):
            for r in [*self.relay(a, b), *self.relay(b, a)]:
                if not r.ok:
                    raise RuntimeError(f"relay failed: {r.code}: {r.error}")

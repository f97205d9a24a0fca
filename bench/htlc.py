"""HTLC benchmark: complete atomic swaps per second between two in-process chains.

What one swap costs here, all of it timed: planning the terms; both parties' state
machines (every input through ``htlc.swap.transition``, every transition written to a
swap store *before* its transaction is built); four real ed25519-signed transactions
(lock on A, lock on B, claim on B, claim on A); the four blocks that execute them on two
real ``Chain``s (signature check, htlc module, bank transfers, event and state roots, a
4-validator commit); and turning every ``htlc.*`` event of those blocks back into engine
inputs (the participant learns the secret from B's ``htlc.claimed`` event). Swaps run in
rounds of ``--batch`` swaps, each round four blocks. Every swap must end REDEEMED for both
parties with every receipt ok, and balances are checked at the end.

``--mode driver`` runs the same swaps through the full stack instead: two
:class:`~htlc.driver.SwapDriver` s (one per party) over ``chains.handle.InProcessChain``
handles of two :class:`~chains.node.Node` s, so each transaction also goes through the
node's mempool admission (signature check there, once) and block store, and each party
scans every block for its events; blocks are produced as soon as both drivers have
polled (no block interval), so the number is the stack's ceiling, not a wall-clock rate.

Run: ``python bench/htlc.py [--mode engine|driver] [--swaps N] [--batch N]
[--store memory|sqlite]``. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chains.bank import get_balance
from chains.chain import Chain
from chains.crypto import PrivateKey
from chains.devnet import DEFAULT_BALANCE, DevnetChain, base_modules, build_devnet
from chains.module import Module
from chains.types import Block, Tx
from htlc.module import HTLCModule
from htlc.store import MemorySwapStore, SwapStore
from htlc.swap import (
    Action,
    ChainParams,
    Input,
    LockObserved,
    Role,
    Safety,
    SafetyPolicy,
    SubmitLock,
    Swap,
    SwapState,
    SwapTerms,
    Tick,
    build_tx,
    new_swap,
    plan_swap,
    transition,
)
from htlc.types import lock_from_event


def modules() -> list[Module]:
    return [*base_modules(), HTLCModule()]


class Party:
    """One party's engine: its swaps, its store, its nonces."""

    def __init__(self, name: str, store: SwapStore, safety: Safety) -> None:
        self.name = name
        self.store = store
        self.safety = safety
        self.swaps: dict[str, Swap] = {}
        self.by_hash: dict[str, str] = {}
        self.dirty: list[Swap] = []
        self.actions: list[Action] = []
        self.transitions = 0

    def open(self, swaps: list[Swap]) -> None:
        self.store.create_many(swaps)
        for swap in swaps:
            self.swaps[swap.swap_id] = swap
            self.by_hash[swap.terms.hashlock.hex()] = swap.swap_id

    def feed(self, swap_id: str, event: Input) -> None:
        step = transition(self.swaps[swap_id], event, self.safety)
        self.swaps[swap_id] = step.swap
        if step.transitioned:
            self.dirty.append(step.swap)
        if step.action is not None:
            self.actions.append(step.action)

    def observe(self, chain_id: str, block: Block) -> None:
        for event in block.events:
            swap_id = self.by_hash.get(event.attributes.get("hashlock"))  # type: ignore[arg-type]
            if swap_id is None:
                continue
            terms = self.swaps[swap_id].terms
            lock = lock_from_event(chain_id, event, (terms.a, terms.b))
            if lock is not None:
                self.feed(swap_id, LockObserved(lock))

    def tick(self, ha: int, hb: int) -> None:
        t = Tick(ha, hb)
        for swap_id, swap in self.swaps.items():
            if not swap.is_terminal:
                self.feed(swap_id, t)

    def act(self, keys: dict[str, PrivateKey], nonces: dict[str, int]) -> dict[str, list[Tx]]:
        """Persist the transitions, then (only then) sign the actions' transactions."""
        self.store.update_many(self.dirty)
        self.transitions += len(self.dirty)
        self.dirty = []
        out: dict[str, list[Tx]] = {}
        for action in self.actions:
            cid = action.terms.chain_id if isinstance(action, SubmitLock) else action.chain_id
            n = nonces[cid]
            nonces[cid] = n + 1
            out.setdefault(cid, []).append(build_tx(action, keys[cid], n))
        self.actions = []
        return out

    def forget_terminal(self) -> None:
        for swap_id in [s for s, v in self.swaps.items() if v.is_terminal]:
            swap = self.swaps.pop(swap_id)
            self.by_hash.pop(swap.terms.hashlock.hex(), None)


CHAIN_SECONDS = [0.0]  # time inside Chain.produce_block (the ledger's share)


def produce(chain: Chain, dev: DevnetChain, txs: list[Tx], clock: list[int]) -> Block:
    clock[0] += 1000
    t = time.perf_counter()
    result = chain.produce_block(txs, clock[0], dev.validator_keys)
    CHAIN_SECONDS[0] += time.perf_counter() - t
    if result.dropped or not all(r.ok for r in result.block.receipts):
        bad = [r.error for r in result.block.receipts if not r.ok][:3]
        raise SystemExit(f"benchmark invariant broken: dropped={len(result.dropped)} {bad}")
    return result.block


def _store_key(name: str) -> PrivateKey:
    """A key to seal the store's secrets with (what it is does not change the cost)."""
    return PrivateKey.from_seed(hashlib.sha256(b"bench store " + name.encode()).digest())


def make_stores(kind: str, tmp: str) -> tuple[SwapStore, SwapStore]:
    if kind == "sqlite":
        from interlock.swap_store import SQLiteSwapStore

        return (
            SQLiteSwapStore(Path(tmp) / "alice.sqlite", key=_store_key("alice")),
            SQLiteSwapStore(Path(tmp) / "bob.sqlite", key=_store_key("bob")),
        )
    return (MemorySwapStore(), MemorySwapStore())


async def run_driver(total: int, batch: int, store_kind: str) -> dict[str, object]:
    """Complete swaps through SwapDriver + InProcessChain + Node (see the module doc)."""
    from chains.handle import InProcessChain
    from chains.node import Node
    from chains.store import MemoryBlockStore
    from htlc.driver import Party as DriverParty
    from htlc.driver import SwapDriver

    da, db = build_devnet(("chain-a", "chain-b"), seed="bench-htlc")
    node_a = Node.open(da.genesis, modules, da.validator_keys, MemoryBlockStore())
    node_b = Node.open(db.genesis, modules, db.validator_keys, MemoryBlockStore())
    safety = Safety(
        ChainParams(da.chain_id, 1000), ChainParams(db.chain_id, 1000), SafetyPolicy(2000, 5000)
    )
    alice = DriverParty(da.accounts["alice"], db.accounts["alice"])
    bob = DriverParty(da.accounts["bob"], db.accounts["bob"])
    with tempfile.TemporaryDirectory() as tmp:
        stores = make_stores(store_kind, tmp)
        handles = (InProcessChain(node_a), InProcessChain(node_b))
        ini = SwapDriver(alice, *handles, stores[0], safety)
        par = SwapDriver(bob, *handles, stores[1], safety)
        done = blocks = 0
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        while done < total:
            n = min(batch, total - done)
            mine: list[tuple[SwapTerms, Role, bytes | None]] = []
            theirs: list[tuple[SwapTerms, Role, bytes | None]] = []
            for i in range(done, done + n):
                secret = hashlib.sha256(b"bench-secret-%d" % i).digest()
                terms = plan_swap(
                    safety,
                    initiator_a=alice.key_a.address,
                    participant_a=bob.key_a.address,
                    participant_b=bob.key_b.address,
                    initiator_b=alice.key_b.address,
                    give=(da.denom, 10),
                    take=(db.denom, 9),
                    hashlock=hashlib.sha256(secret).digest(),
                    height_a=node_a.height,
                    height_b=node_b.height,
                )
                mine.append((terms, Role.INITIATOR, secret))
                theirs.append((terms, Role.PARTICIPANT, None))
            await ini.open_many(mine)
            await par.open_many(theirs)
            while ini.active() or par.active():
                await ini.poll()
                await par.poll()
                for _ in range(3):
                    await asyncio.sleep(0)
                node_a.produce_block()
                node_b.produce_block()
                blocks += 2
                for _ in range(3):
                    await asyncio.sleep(0)
            await ini.poll()
            await par.poll()
            for d in (ini, par):
                if any(s.state is not SwapState.REDEEMED for s in d.swaps.values()):
                    raise SystemExit("benchmark invariant broken: unfinished or failed swaps")
                d.forget_finished()  # keep the in-memory index small, as a daemon would
            done += n
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        txs = ini.counts["submitted"] + par.counts["submitted"]
        for s in stores:
            s.close()
    if txs != 4 * total:
        raise SystemExit(f"benchmark invariant broken: {txs} txs for {total} swaps")
    return {
        "swaps_per_s": round(total / elapsed, 1),
        "txs_per_swap": txs // total,
        "signed_txs_per_s": round(txs / elapsed, 1),
        "swaps": total,
        "batch": batch,
        "blocks": blocks,
        "mode": "driver",
        "store": store_kind,
        "seconds": round(elapsed, 3),
        "swaps_per_cpu_s": round(total / cpu, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("engine", "driver"), default="engine")
    ap.add_argument("--swaps", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=1000, help="swaps per round (4 blocks)")
    ap.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    args = ap.parse_args()
    if args.mode == "driver":
        result = asyncio.run(run_driver(args.swaps, args.batch, args.store))
        print(f"{args.swaps} complete swaps through the driver stack in {result['seconds']} s")
        print(json.dumps(result))
        return

    da, db = build_devnet(("chain-a", "chain-b"), seed="bench-htlc")
    A, B = da.build(modules), db.build(modules)
    clock_a, clock_b = [0], [0]
    safety = Safety(
        ChainParams(A.chain_id, 1000), ChainParams(B.chain_id, 1000), SafetyPolicy(2000, 5000)
    )
    alice_a, alice_b = da.accounts["alice"], db.accounts["alice"]
    bob_a, bob_b = da.accounts["bob"], db.accounts["bob"]
    tmp = tempfile.TemporaryDirectory()
    stores = make_stores(args.store, tmp.name)
    ini = Party("alice", stores[0], safety)
    par = Party("bob", stores[1], safety)
    keys_ini = {A.chain_id: alice_a, B.chain_id: alice_b}
    keys_par = {A.chain_id: bob_a, B.chain_id: bob_b}
    nonces_ini = {A.chain_id: 0, B.chain_id: 0}
    nonces_par = {A.chain_id: 0, B.chain_id: 0}

    done = txs = blocks = 0
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    while done < args.swaps:
        n = min(args.batch, args.swaps - done)
        opened: tuple[list[Swap], list[Swap]] = ([], [])
        for i in range(done, done + n):
            secret = hashlib.sha256(b"bench-secret-%d" % i).digest()
            terms = plan_swap(
                safety,
                initiator_a=alice_a.address,
                participant_a=bob_a.address,
                participant_b=bob_b.address,
                initiator_b=alice_b.address,
                give=(da.denom, 10),
                take=(db.denom, 9),
                hashlock=hashlib.sha256(secret).digest(),
                height_a=A.height,
                height_b=B.height,
            )
            opened[0].append(new_swap(terms, Role.INITIATOR, secret))
            opened[1].append(new_swap(terms, Role.PARTICIPANT))
        ini.open(opened[0])
        par.open(opened[1])
        # 1. the initiators lock on A
        ini.tick(A.height, B.height)
        out = ini.act(keys_ini, nonces_ini)
        blk = produce(A, da, out[A.chain_id], clock_a)
        # 2. the participants audit A's locks and lock on B
        for p in (ini, par):
            p.observe(A.chain_id, blk)
        par.tick(A.height, B.height)
        out = par.act(keys_par, nonces_par)
        blk = produce(B, db, out[B.chain_id], clock_b)
        # 3. the initiators audit B's locks and claim on B (revealing the secrets)
        for p in (ini, par):
            p.observe(B.chain_id, blk)
        ini.tick(A.height, B.height)
        out = ini.act(keys_ini, nonces_ini)
        blk = produce(B, db, out[B.chain_id], clock_b)
        # 4. the participants learn the secrets from B's claim events and claim on A
        for p in (ini, par):
            p.observe(B.chain_id, blk)
        par.tick(A.height, B.height)
        out = par.act(keys_par, nonces_par)
        blk = produce(A, da, out[A.chain_id], clock_a)
        for p in (ini, par):
            p.observe(A.chain_id, blk)
            p.act({}, {})
            if any(s.state is not SwapState.REDEEMED for s in p.swaps.values()):
                raise SystemExit(f"benchmark invariant broken: {p.name} has unfinished swaps")
            p.forget_terminal()
        done += n
        txs += 4 * n
        blocks += 4
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0

    total = args.swaps
    expect = {
        (A, alice_a.address, da.denom): DEFAULT_BALANCE - 10 * total,
        (A, bob_a.address, da.denom): DEFAULT_BALANCE + 10 * total,
        (B, alice_b.address, db.denom): DEFAULT_BALANCE + 9 * total,
        (B, bob_b.address, db.denom): DEFAULT_BALANCE - 9 * total,
    }
    for (chain, addr, denom), want in expect.items():
        if get_balance(chain.state, addr, denom) != want:
            raise SystemExit("benchmark invariant broken: balances")
    for s in stores:
        s.close()
    tmp.cleanup()

    result = {
        "swaps_per_s": round(total / elapsed, 1),
        "txs_per_swap": txs // total,
        "signed_txs_per_s": round(txs / elapsed, 1),
        "swaps": total,
        "batch": args.batch,
        "blocks": blocks,
        "transitions_per_swap": (ini.transitions + par.transitions) / total,
        "mode": "engine",
        "store": args.store,
        "seconds": round(elapsed, 3),
        "swaps_per_cpu_s": round(total / cpu, 1),
        "ledger_share": round(CHAIN_SECONDS[0] / elapsed, 2),
    }
    print(
        f"{total} complete swaps ({txs} signed txs in {blocks} blocks on 2 chains) "
        f"in {elapsed:.2f} s, store={args.store}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

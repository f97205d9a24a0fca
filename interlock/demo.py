"""``interlock demo``: the cross-border payment scenario, end to end, in one command.

Two banks' ledgers run in this process: a US bank (``us-bank``, USD) and a euro-area
bank (``eu-bank``, EUR), each a chain with its own validators, SQLite block store, bus
publisher and light client of the other. The relayer daemon runs beside them, following
both through the bus (in memory by default, ``--bus-url mqtt://...`` for a real broker)
and carrying every proof. The scenario:

1. a US customer (alice) pays a euro-area supplier (carol): she swaps 100 USD for 92 EUR
   with a market maker (bob) by hashed-timelock atomic swap (lock, lock, claim, claim),
   then pays carol in EUR;
2. a USD stablecoin moves to the euro ledger by lock -> mint, and part of it back by
   burn -> release;
3. a transfer whose destination passes its timeout is refunded, automatically;
4. a market maker who goes offline after locking still gets paid: the relayer claims
   for him with the secret the customer revealed on the other ledger;
5. compliance: the euro-area bank's governance sanctions an address; a transfer to it is
   refused on arrival by eu-bank's policy and refunded on us-bank, nothing minted;
6. a private payment: on us-bank (which runs the opt-in ``confidential`` module) alice
   pays carol an amount the chain never sees; the auditor that us-bank's governance
   designated decrypts exactly what moved, and the escrow still matches the supply;
7. end-of-day netting: three banks compute their net positions by secure multi-party
   computation over the bus (no bank sees another's book) and settle only the net
   across the ledgers, the relayer carrying the cross-chain legs.

Each step prints what crossed (the source height, event index and ``event_root`` the
proof was checked against) and how long it took, and the demo ends with a balance table,
through an ``interlock.progress`` reporter: a live display on a terminal, plain lines
otherwise (``--plain``, a pipe, ``NO_COLOR``, ``TERM=dumb``).
It exits 1 if any step's outcome is not the expected one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from chains.crypto import PrivateKey
from chains.errors import InterlockError
from chains.handle import InProcessChain
from chains.node import Node
from chains.service.bus import Bus, open_bus
from chains.service.rpc import RpcServer
from chains.types import Receipt, Tx
from htlc.driver import Party, SwapDriver
from htlc.store import MemorySwapStore
from htlc.swap import ChainParams, Role, Safety, SafetyPolicy, SwapState, plan_swap
from interlock.cmd_devnet import run_chains
from interlock.config import DEFAULT_MODULES, DEFAULT_SEED, parse_devnet_config
from interlock.progress import Column, Reporter, open_reporter
from netting.plan import LegKind, compute_call, plan_settlement, route_settlement
from netting.protocol import RoundSpec, compute_plain_netting
from netting.shell import run_party
from relayer.config import parse_relayer_config
from relayer.connect import connect
from relayer.daemon import Daemon
from zk.confidential import ESCROW
from zk.elgamal import Ciphertext, ElGamalKeypair, decrypt
from zk.wallet import keypair_from_seed, register_args, transfer_args

__all__ = ["demo", "run_demo"]

US, EU = "us-bank", "eu-bank"
STEP_DEADLINE = 60.0
PEOPLE = ["alice", "bob", "carol"]
FUNDS = 10_000
PRIVATE_BOUND = 2**20
"""Private balances the demo decrypts stay below this (baby-step giant-step's range)."""


class DemoFailed(InterlockError):
    """A step of the demo did not end as expected."""


class Demo:
    def __init__(
        self, nodes: Sequence[Node], bus: Bus, data_dir: Path, interval: float, report: Reporter
    ):
        self.nodes = {n.chain_id: n for n in nodes}
        self.chains = {cid: InProcessChain(n) for cid, n in self.nodes.items()}
        self.bus = bus
        self.data_dir = data_dir
        self.interval = interval
        self.key = {n: PrivateKey.derive(DEFAULT_SEED, n) for n in ("alice", "bob", "carol")}
        self.key["eu-gov"] = PrivateKey.derive(DEFAULT_SEED, EU, "gov")
        self.key["us-gov"] = PrivateKey.derive(DEFAULT_SEED, US, "gov")
        self.key["mallory"] = PrivateKey.derive(DEFAULT_SEED, "mallory")  # sanctioned in step 5
        self.failures: list[str] = []
        self.report = report

    # --- plumbing ---------------------------------------------------------------------

    async def send(self, cid: str, who: str, module: str, method: str, args: Any) -> Receipt:
        key = self.key[who]
        h = self.chains[cid]
        nonce = await h.pending_nonce(key.address)
        r = await h.submit(Tx.create(key, cid, nonce, module, method, args))
        if not r.ok:
            raise DemoFailed(f"{cid}: {who}'s {module}.{method} failed: {r.code}: {r.error}")
        return r

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> float:
        start = time.monotonic()
        while not await check():
            if time.monotonic() - start > STEP_DEADLINE:
                raise DemoFailed(f"not within {STEP_DEADLINE:.0f} s: {what}")
            await asyncio.sleep(0.02)
        return time.monotonic() - start

    def expect(self, ok: bool, what: str) -> None:
        self.report.check(ok, what)
        if not ok:
            self.failures.append(what)

    async def balance(self, cid: str, who: str, denom: str) -> int:
        got = await self.chains[cid].query(
            "bank", "balance", {"address": self.key[who].address, "denom": denom}
        )
        return int(got)

    def proof_line(self, cid: str, receipt: Receipt, kind: str) -> str:
        block = self.nodes[cid].get_block(receipt.height)
        index = receipt.first_event + next(
            i for i, e in enumerate(receipt.events) if e.type == kind
        )
        root = block.header.event_root.hex()[:16] if block is not None else "?"
        return f"{cid} height {receipt.height}, event {index}, event_root {root}…"

    # --- the scenario -------------------------------------------------------------------
    async def swap(self) -> None:
        self.report.step("1. cross-border payment: alice (US) swaps 100 USD for 92 EUR with bob")
        us, eu = self.chains[US], self.chains[EU]
        ms = int(self.interval * 1000)
        safety = Safety(
            ChainParams(US, block_interval_ms=ms),
            ChainParams(EU, block_interval_ms=ms),
            SafetyPolicy(reaction_ms=2_000, min_delta_ms=5_000),
        )
        alice = Party(self.key["alice"], self.key["alice"])
        bob = Party(self.key["bob"], self.key["bob"])
        secret = os.urandom(32)
        terms = plan_swap(
            safety,
            initiator_a=alice.key_a.address,
            participant_a=bob.key_a.address,
            participant_b=bob.key_b.address,
            initiator_b=alice.key_b.address,
            give=("usd", 100),
            take=("eur", 92),
            hashlock=hashlib.sha256(secret).digest(),
            height_a=await us.latest_height(),
            height_b=await eu.latest_height(),
        )
        self.report.detail(
            f"quote accepted; timelocks {US} {terms.a.timelock}, {EU} {terms.b.timelock}"
        )
        initiator = SwapDriver(alice, us, eu, MemorySwapStore(), safety)
        participant = SwapDriver(bob, us, eu, MemorySwapStore(), safety)
        await initiator.open(terms, Role.INITIATOR, secret)
        await participant.open(terms, Role.PARTICIPANT)
        eur_before = await self.balance(EU, "alice", "eur")
        start = time.monotonic()

        async def idle() -> None:
            await asyncio.sleep(self.interval / 4)

        async with asyncio.timeout(STEP_DEADLINE):
            await asyncio.gather(initiator.run(idle), participant.run(idle))
        took = time.monotonic() - start
        done = initiator.swaps[terms.swap_id].state is SwapState.REDEEMED
        learnt = participant.swaps[terms.swap_id].secret == secret
        self.expect(
            done and learnt,
            f"swap settled both legs in {took:.2f} s; bob learnt the "
            f"secret from {EU}'s claim event, not from a message",
        )
        got = await self.balance(EU, "alice", "eur") - eur_before
        self.expect(got == 92, f"alice received {got} EUR on {EU}")
        r = await self.send(
            EU,
            "alice",
            "bank",
            "transfer",
            {"to": self.key["carol"].address, "denom": "eur", "amount": 92},
        )
        self.expect(r.ok, f"alice paid carol 92 EUR ({EU} height {r.height})")

    async def stablecoin(self) -> None:
        self.report.step("2. stablecoin: 250 USD from us-bank to carol on eu-bank (lock -> mint)")
        r = await self.send(
            US,
            "alice",
            "bridge",
            "lock",
            {
                "denom": "usd",
                "amount": 250,
                "dest_chain": EU,
                "recipient": self.key["carol"].address,
            },
        )
        nonce = int(r.events[-1].attributes["nonce"])
        self.report.detail(f"locked at {self.proof_line(US, r, 'bridge.locked')}")
        took = await self.until(lambda: self.received(EU, US, nonce), "the mint on eu-bank")
        got = await self.balance(EU, "carol", f"{US}/usd")
        self.expect(
            got == 250,
            f"relayer proved it to {EU}: carol holds {got} {US}/usd ({took:.2f} s after the lock)",
        )
        self.report.detail("and 100 back to alice on us-bank (burn -> release)")
        before = await self.balance(US, "alice", "usd")
        r = await self.send(
            EU,
            "carol",
            "bridge",
            "burn",
            {"denom": f"{US}/usd", "amount": 100, "recipient": self.key["alice"].address},
        )
        burn = int(r.events[-1].attributes["nonce"])
        self.report.detail(f"burned at {self.proof_line(EU, r, 'bridge.burned')}")
        took = await self.until(lambda: self.received(US, EU, burn), "the release on us-bank")
        got = await self.balance(US, "alice", "usd") - before
        self.expect(got == 100, f"released {got} USD to alice on {US} ({took:.2f} s)")

    async def received(self, cid: str, remote: str, nonce: int) -> bool:
        got = await self.chains[cid].query(
            "bridge", "received", {"remote_chain": remote, "nonce": nonce}
        )
        return got is not None

    def delivered(self, cid: str, remote: str, nonce: int) -> Callable[[], Awaitable[bool]]:
        return lambda: self.received(cid, remote, nonce)

    def refunded(self, nonce: int) -> Callable[[], Awaitable[bool]]:
        """Whether us-bank settled its transfer ``nonce`` to eu-bank, which was never
        delivered: a refund prunes the source's record (the steps check the balances)."""

        async def check() -> bool:
            got = await self.chains[US].query(
                "bridge", "sent", {"remote_chain": EU, "nonce": nonce}
            )
            return got is None

        return check

    async def timeout_refund(self) -> None:
        self.report.step("3. a transfer that times out before it arrives is refunded")
        path = await self.chains[US].query("bridge", "path", {"remote_chain": EU})
        client = await self.chains[US].query(
            "lightclient",
            "client",
            {"client_id": path["client_id"]},
        )
        known = int(client["latest_height"])
        before = await self.balance(US, "alice", "usd")
        r = await self.send(
            US,
            "alice",
            "bridge",
            "lock",
            {
                "denom": "usd",
                "amount": 40,
                "dest_chain": EU,
                "recipient": self.key["carol"].address,
                "timeout_height": known + 1,
            },
        )
        nonce = int(r.events[-1].attributes["nonce"])
        self.report.detail(
            f"locked with timeout {EU} height {known + 1}, at "
            f"{self.proof_line(US, r, 'bridge.locked')}"
        )

        took = await self.until(self.refunded(nonce), "the refund on us-bank")
        after = await self.balance(US, "alice", "usd")
        self.expect(
            after == before,
            f"{EU} recorded the expiry, {US} refunded alice ({took:.2f} s); nothing minted",
        )

    async def offline_counterparty(self) -> None:
        self.report.step("4. bob locks his side of a second swap, then goes offline")
        us, eu = self.chains[US], self.chains[EU]
        secret = os.urandom(32)
        hashlock = hashlib.sha256(secret).hexdigest()
        ha, hb = await us.latest_height(), await eu.latest_height()
        r = await self.send(
            US,
            "alice",
            "htlc",
            "lock",
            {
                "receiver": self.key["bob"].address,
                "denom": "usd",
                "amount": 50,
                "hashlock": hashlock,
                "timelock": ha + 600,
            },
        )
        lock_a = str(r.events[-1].attributes["lock_id"])
        r = await self.send(
            EU,
            "bob",
            "htlc",
            "lock",
            {
                "receiver": self.key["alice"].address,
                "denom": "eur",
                "amount": 46,
                "hashlock": hashlock,
                "timelock": hb + 300,
            },
        )
        lock_b = str(r.events[-1].attributes["lock_id"])
        bob_before = await self.balance(US, "bob", "usd")
        r = await self.send(
            EU, "alice", "htlc", "claim", {"lock_id": lock_b, "preimage": secret.hex()}
        )
        self.report.detail(
            f"alice claimed on {EU}, revealing the secret at "
            f"{self.proof_line(EU, r, 'htlc.claimed')}"
        )

        async def claimed() -> bool:
            got = await us.query("htlc", "lock", {"lock_id": lock_a})
            return isinstance(got, dict) and got.get("status") == "claimed"

        took = await self.until(claimed, "the relayer's claim for bob")
        got = await self.balance(US, "bob", "usd") - bob_before
        self.expect(
            got == 50,
            f"the relayer claimed bob's 50 USD on {US} with the revealed "
            f"secret ({took:.2f} s); bob was never online",
        )

    async def compliance_refund(self) -> None:
        self.report.step(
            f"5. compliance: {EU}'s governance puts mallory on its sanctions deny list"
        )
        mallory = self.key["mallory"].address
        await self.send(EU, "eu-gov", "compliance", "deny", {"address": mallory})
        before = await self.balance(US, "alice", "usd")
        r = await self.send(
            US,
            "alice",
            "bridge",
            "lock",
            {"denom": "usd", "amount": 60, "dest_chain": EU, "recipient": mallory},
        )
        nonce = int(r.events[-1].attributes["nonce"])
        self.report.detail(
            f"alice sends mallory 60 USD: locked at {self.proof_line(US, r, 'bridge.locked')}"
        )

        took = await self.until(
            self.refunded(nonce), "the refund of the refused transfer on us-bank"
        )
        refusal = await self.chains[EU].query(
            "bridge", "refusal", {"remote_chain": US, "nonce": nonce}
        )
        rule = refusal.get("rule") if isinstance(refusal, dict) else None
        self.report.detail(f"refused by {EU}: {rule}")
        after = await self.balance(US, "alice", "usd")
        minted = await self.balance(EU, "mallory", f"{US}/usd")
        self.expect(
            rule == "sanctions" and after == before and minted == 0,
            f"{EU} refused it ({rule}), {US} refunded alice ({took:.2f} s); nothing minted",
        )

    async def private_value(self, who: str, keypair: ElGamalKeypair) -> int | None:
        raw = await self.chains[US].query(
            "confidential", "balance", {"address": self.key[who].address, "denom": "usd"}
        )
        return decrypt(
            keypair.secret, Ciphertext.from_bytes(bytes.fromhex(str(raw))), PRIVATE_BOUND
        )

    async def private_payment(self) -> None:
        self.report.step(f"6. private payment: alice pays carol 40 USD on {US}, the amount hidden")
        # the auditor's secret stays with the auditor; governance only registers its key
        auditor = ElGamalKeypair.generate()
        gov = self.key["us-gov"].address
        await self.send(
            US,
            "us-gov",
            "confidential",
            "set_auditor",
            register_args(US, gov, auditor, b"set_auditor"),
        )
        kps = {who: keypair_from_seed(self.key[who].seed) for who in ("alice", "carol")}
        for who, kp in kps.items():
            addr = self.key[who].address
            if await self.chains[US].query("confidential", "key", {"address": addr}) is None:
                await self.send(US, who, "confidential", "register", register_args(US, addr, kp))
        carol_before = await self.private_value("carol", kps["carol"])
        await self.send(US, "alice", "confidential", "deposit", {"denom": "usd", "amount": 100})
        alice_before = await self.private_value("alice", kps["alice"])
        if alice_before is None or carol_before is None:
            raise DemoFailed("a private balance does not decrypt")
        raw = await self.chains[US].query(
            "confidential", "balance", {"address": self.key["alice"].address, "denom": "usd"}
        )
        args = transfer_args(
            US,
            self.key["alice"].address,
            kps["alice"],
            Ciphertext.from_bytes(bytes.fromhex(str(raw))),
            alice_before,
            self.key["carol"].address,
            kps["carol"].public,
            auditor.public,
            "usd",
            40,
        )
        r = await self.send(US, "alice", "confidential", "transfer", args)
        event = next(e for e in r.events if e.type == "confidential.transferred")
        self.report.detail(
            f"on chain at {US} height {r.height}: {sorted(event.attributes)}, "
            "the amount only as ciphertexts"
        )
        seen = decrypt(
            auditor.secret,
            Ciphertext.from_bytes(bytes.fromhex(str(event.attributes["auditor_ct"]))),
            PRIVATE_BOUND,
        )
        alice_after = await self.private_value("alice", kps["alice"])
        carol_after = await self.private_value("carol", kps["carol"])
        supply = await self.chains[US].query("confidential", "supply", {"denom": "usd"})
        escrow = await self.chains[US].query("bank", "balance", {"address": ESCROW, "denom": "usd"})
        self.report.detail(
            f"auditor decrypts {seen}; alice's private balance {alice_before} -> "
            f"{alice_after}, carol's {carol_before} -> {carol_after}; "
            f"escrow {escrow} = supply {supply}"
        )
        self.expect(
            seen == 40
            and "amount" not in event.attributes
            and alice_after == alice_before - 40
            and carol_after == carol_before + 40
            and int(str(escrow)) == int(str(supply)),
            "private payment settled: the auditor read 40 USD, the chain no amount",
        )

    async def netting(self) -> None:
        self.report.step(
            "7. end-of-day netting: three banks settle only their net positions, "
            "computed by MPC over the bus"
        )
        banks = ("alice", "carol", "bob")
        homes = (US, EU, US)  # where each bank holds its USD (carol: bridged, from step 2)
        book = ((0, 40, 30), (50, 0, 60), (10, 50, 0))  # book[i][k]: bank i owes bank k
        denoms = {US: "usd", EU: f"{US}/usd"}
        spec = RoundSpec(
            f"demo-{os.getpid()}-{time.time_ns()}",
            tuple(self.key[b].public_key for b in banks),
            1,
            time.time() + 0.1,
            5.0,
        )
        start = time.monotonic()
        reports = await asyncio.gather(
            *(
                run_party(self.bus, spec, self.key[b], row)
                for b, row in zip(banks, book, strict=True)
            )
        )
        results = [r.result for r in reports]
        if any(r is None for r in results) or len({r.positions for r in results if r}) != 1:
            raise DemoFailed(
                f"the netting round did not agree: {[str(r.failure) for r in reports]}"
            )
        result = results[0]
        assert result is not None  # checked just above
        self.expect(
            result.positions == compute_plain_netting([list(row) for row in book]),
            f"round over the bus in {time.monotonic() - start:.2f} s: each bank saw only "
            f"shares of the others' books; net positions "
            + ", ".join(f"{b} {p:+d}" for b, p in zip(banks, result.positions, strict=True)),
        )
        before = [await self.balance(h, b, denoms[h]) for b, h in zip(banks, homes, strict=True)]
        legs = route_settlement(plan_settlement(result.positions), homes, US)
        self.report.detail(f"gross {result.gross} USD nets to {result.net} in {len(legs)} legs")
        start = time.monotonic()
        for leg in legs:
            payer, payee = banks[leg.transfer.payer], banks[leg.transfer.payee]
            module, method, args = compute_call(leg, self.key[payee].address, US, "usd")
            r = await self.send(leg.chain, payer, module, method, args)
            what = f"{payer} pays {payee} {leg.transfer.amount}: {leg.kind.value} on {leg.chain}"
            if leg.kind is LegKind.TRANSFER:
                self.report.detail(f"{what} (height {r.height})")
                continue
            kind = "bridge.locked" if leg.kind is LegKind.LOCK else "bridge.burned"
            self.report.detail(f"{what}, at {self.proof_line(leg.chain, r, kind)}")
            nonce = int(r.events[-1].attributes["nonce"])
            await self.until(
                self.delivered(leg.to_chain, leg.chain, nonce), f"the delivery on {leg.to_chain}"
            )
        after = [await self.balance(h, b, denoms[h]) for b, h in zip(banks, homes, strict=True)]
        moved = [a - b for a, b in zip(after, before, strict=True)]
        self.expect(
            moved == list(result.positions),
            f"settled across both ledgers in {time.monotonic() - start:.2f} s, the relayer "
            f"carrying the cross-chain legs: {result.gross} gross, {result.net} moved",
        )

    async def table(self) -> None:
        columns = [
            Column("account", 8),
            Column(f"{US} usd", 16),
            Column(f"{EU} eur", 16),
            Column(f"{EU} {US}/usd", 20),
        ]
        rows: list[list[str | int]] = [
            [
                who,
                await self.balance(US, who, "usd"),
                await self.balance(EU, who, "eur"),
                await self.balance(EU, who, f"{US}/usd"),
            ]
            for who in PEOPLE
        ]
        self.report.table(columns, rows)


def demo(args: argparse.Namespace) -> int:
    """``interlock demo``: the exit status (1 if any step's outcome differs)."""
    return asyncio.run(run_demo(args))


async def run_demo(args: argparse.Namespace) -> int:
    if not args.verbose:  # the demo's own lines tell the story; the daemon's log is for -v
        logging.getLogger("interlock").setLevel(logging.ERROR)
    temp = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="interlock-demo-")) if temp else args.data_dir
    try:
        with open_reporter(plain=args.plain, stamp=True) as report:
            code = await _run(data_dir, args.bus_url, args.interval, report)
        # after the live display stopped: the verdict is the last line
        if code:
            print(f"demo: {code} step(s) did not end as expected", file=sys.stderr)
            return 1
        print("demo: every step ended as expected")
        return 0
    finally:
        if temp:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _run(data_dir: Path, bus_url: str, interval: float, report: Reporter) -> int:
    """Run the scenario; the number of steps that did not end as expected."""
    devnet = parse_devnet_config(
        {
            "seed": DEFAULT_SEED,
            "block_interval": interval,
            "chains": [
                {
                    "chain_id": US,
                    "genesis": {"denom": "usd", "accounts": [*PEOPLE, "relayer"], "balance": FUNDS},
                    "modules": [*DEFAULT_MODULES, "confidential"],
                },
                {
                    "chain_id": EU,
                    "genesis": {"denom": "eur", "accounts": [*PEOPLE, "relayer"], "balance": FUNDS},
                },
            ],
        },
        "demo",
    )
    settings = parse_relayer_config(
        {
            "relayer": {"data_dir": str(data_dir / "relayer"), "bus_url": bus_url},
            "api": {"port": 0},
            "chains": [
                {"id": cid, "rpc": ["http://127.0.0.1:1"], "block_interval": interval}
                for cid in (US, EU)
            ],
            "paths": [
                {"src": US, "dst": EU, "relay": ["transfers", "swaps"]},
                {"src": EU, "dst": US, "relay": ["transfers"]},
            ],
        },
        "demo",
    )
    relayer_key = PrivateKey.derive(DEFAULT_SEED, "relayer")
    stop = asyncio.Event()
    started: asyncio.Future[Sequence[Node]] = asyncio.get_running_loop().create_future()

    def ready(nodes: Sequence[Node], _: Sequence[RpcServer]) -> None:
        started.set_result(nodes)

    async with open_bus(bus_url) as bus:
        chains = asyncio.create_task(
            run_chains(
                list(devnet.chains),
                data_dir,
                bus_url,
                stop=stop,
                on_ready=ready,
                bus=bus,
                print_heads=False,
            ),
            name="demo:chains",
        )
        try:
            nodes = await asyncio.wait_for(asyncio.shield(started), STEP_DEADLINE)
            demo = Demo(nodes, bus, data_dir, interval, report)
            report.info(
                f"two ledgers: {US} (USD) and {EU} (EUR), blocks every {interval} s, "
                f"bus {bus_url}, data in {data_dir}"
            )
            await demo.until(_heights(demo.nodes, 1), "the first blocks")
            for src, dst in ((US, EU), (EU, US)):
                gov = PrivateKey.derive(DEFAULT_SEED, dst, "gov")
                line = await connect(demo.chains[src], demo.chains[dst], relayer_key, gov)
                report.info(f"connected: {line}")
            keys = {cid: relayer_key for cid in (US, EU)}
            daemon = Daemon(settings, keys, handles=demo.chains, bus=bus, idle_timeout=0.5)
            relay = asyncio.create_task(
                daemon.run(
                    ready=lambda d: report.info(f"console http://{settings.api_host}:{d.api_port}/")
                ),
                name="demo:relayer",
            )
            try:
                report.info(
                    "relayer daemon started: "
                    + ", ".join(
                        [
                            "transfer:us-bank->eu-bank",
                            "transfer:eu-bank->us-bank",
                            "swap:eu-bank<->us-bank",
                        ]
                    )
                )
                for step in (
                    demo.swap,
                    demo.stablecoin,
                    demo.timeout_refund,
                    demo.offline_counterparty,
                    demo.compliance_refund,
                    demo.private_payment,
                    demo.netting,
                ):
                    try:
                        await step()
                    except DemoFailed as exc:
                        demo.expect(False, str(exc))
                await demo.table()
            finally:
                daemon.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(relay, 15)
            return len(demo.failures)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(chains, 30)


def _heights(nodes: dict[str, Node], at_least: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(n.height >= at_least for n in nodes.values())

    return check

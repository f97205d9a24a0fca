"""Invariants I1–I8 of issue 4, checked after every step of random bridge traffic.

Three chains, A ↔ B ↔ C, so assets also travel two hops (``chain-b/chain-a/usd`` on C).
The rules are what users, relayers, governance and time do, including the hostile or
careless parts: relaying out of order, dropping packets, replaying, a relayer that
forgot what it delivered, letting timeouts pass, pausing, governance cancelling a
queued transfer, governance sanctioning a user (their locks refused at the source,
transfers to them refused on arrival and refunded).

I1 escrow on the source = wrapped supply on the destination + in flight (per path, denom)
I2 each (path, nonce) is consumed at most once
I3 nothing is minted, released or refunded without a matching proven source record
I4 a transfer is refunded XOR delivered
I5 paths and validator sets change only by governance (never here)
I6 outflow per (path, denom, window) <= cap, and nothing flows out while paused
I7 wrapped denoms are one-to-one with (path, source denom); native supply never changes
I8 no balance or supply is ever negative or zero-but-stored; balances sum to supply
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bridge.localnet import LocalNet, Pending
from bridge.module import escrow_address
from chains.bank import get_balances, get_supply
from chains.devnet import DEFAULT_BALANCE
from chains.types import Event
from tests.bridge.conftest import A, B, C, make_net

CAP, WINDOW = 1_500, 20
LIMITS = {"cap": CAP, "window": WINDOW, "delay_threshold": 700, "delay": 3}
PAIRS = [(A, B), (B, A), (B, C), (C, B)]
USERS = ["alice", "bob", "carol"]
OK_DELIVERY = {"ok", "BridgePaused", "RateLimited", "QueueFull"}


def _records(net: LocalNet, chain: str, kind: str, remote: str) -> dict[int, Any]:
    prefix = f"bridge/{kind}/{remote}/"
    return {int(k[len(prefix) :]): v for k, v in net[chain].chain.state.items(prefix)}


class BridgeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = make_net((A, B, C), ((A, B), (B, C)), limits=LIMITS)
        self.paths0 = {c: self.net[c].chain.query("bridge", "paths", {}) for c in (A, B, C)}
        self.vals0 = {c: self.net[c].chain.query("validators", "next", {}) for c in (A, B, C)}
        self.paused: dict[tuple[str, str], bool] = {p: False for p in PAIRS}
        self.scanned = {c: 0 for c in (A, B, C)}
        self.endings: dict[tuple[str, str, int], tuple[str, dict[str, Any]]] = {}
        self.refunds: dict[tuple[str, str, int], dict[str, Any]] = {}
        # what each source sent, from its locked / burned events: its records are pruned
        # once acknowledged or refunded, the events stay
        self.sent: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.acks: set[tuple[str, str, int]] = set()
        self.outflow: Counter[tuple[str, str, str, int]] = Counter()

    # --- rules ----------------------------------------------------------------------
    @initialize()
    def seed_wrapped_assets(self) -> None:
        """Start with wrapped assets in hands, so burns and second hops happen early."""
        for src, dst in ((A, B), (B, C)):
            args = {"denom": self.net[src].spec.denom, "amount": 300, "dest_chain": dst}
            txs = [
                self.net.tx(
                    src,
                    self.net.key(src, u),
                    "bridge",
                    "lock",
                    {**args, "recipient": self.net.key(dst, u).address},
                )
                for u in USERS
            ]
            self.net.produce(src, txs)
            self._deliver(dst, self.net.collect(src, dst), batch=True)

    @rule(
        pair=st.sampled_from(PAIRS),
        user=st.sampled_from(USERS),
        to=st.sampled_from(USERS),
        ttl=st.integers(1, 40),
        data=st.data(),
    )
    def lock(self, pair: tuple[str, str], user: str, to: str, ttl: int, data: Any) -> None:
        """A few locks of what the user holds there: native, or wrapped (which burns if
        it is going home)."""
        src, dst = pair
        txs = []
        for _ in range(data.draw(st.integers(1, 3))):
            held = get_balances(self.net[src].chain.state, self.net.key(src, user).address)
            denom = data.draw(st.sampled_from(sorted(held)))
            amount = data.draw(st.integers(1, min(held[denom], 1_000)))
            args = {
                "denom": denom,
                "amount": amount,
                "dest_chain": dst,
                "recipient": self.net.key(dst, to).address,
                "timeout_height": self.net.client_height(dst, src) + ttl,
            }
            txs.append(self.net.tx(src, self.net.key(src, user), "bridge", "lock", args))
        for r in self.net.produce(src, txs).receipts:
            assert r.code in ("ok", "BridgePaused", "InsufficientFunds", "ComplianceRefused")

    @rule(chain=st.sampled_from([A, B, C]), user=st.sampled_from(USERS), data=st.data())
    def burn(self, chain: str, user: str, data: Any) -> None:
        held = get_balances(self.net[chain].chain.state, self.net.key(chain, user).address)
        wrapped = sorted(d for d in held if "/" in d)
        if not wrapped:
            return
        denom = data.draw(st.sampled_from(wrapped))
        origin = self.net[chain].chain.query("bridge", "wrapped", {"denom": denom})
        assert isinstance(origin, dict)
        home = origin["path"]
        args = {
            "denom": denom,
            "amount": data.draw(st.integers(1, held[denom])),
            "recipient": self.net.key(home, user).address,
            "timeout_height": self.net.client_height(home, chain) + data.draw(st.integers(1, 40)),
        }
        r = self.net.call(chain, user, "bridge", "burn", args)
        # a burn above the origin's outflow cap is refused up front: its release could never pass
        over_cap = r.code == "RateLimited" and args["amount"] > CAP
        assert r.code in ("ok", "BridgePaused", "ComplianceRefused") or over_cap, r.error

    @rule(chain=st.sampled_from([A, B, C]), user=st.sampled_from(USERS), denied=st.booleans())
    def sanction(self, chain: str, user: str, denied: bool) -> None:
        """Governance puts a user on, or takes them off, a chain's deny list: their locks
        there are refused; transfers to them there are refused on arrival and refunded."""
        args = {"address": self.net.key(chain, user).address}
        r = self.net.call(chain, "gov", "compliance", "deny" if denied else "allow", args)
        assert r.ok or (not denied and r.code == "InvalidArgument"), r.error

    @rule(pair=st.sampled_from(PAIRS), batch=st.booleans(), data=st.data())
    def relay(self, pair: tuple[str, str], batch: bool, data: Any) -> None:
        """Relay some of what is pending, in any order (dropping the rest for now)."""
        src, dst = pair
        items = self.net.collect(src, dst)
        if not items:
            return
        chosen = data.draw(st.permutations(items))[: data.draw(st.integers(1, len(items)))]
        self._deliver(dst, chosen, batch)

    @rule(pair=st.sampled_from(PAIRS))
    def relay_headers_only(self, pair: tuple[str, str]) -> None:
        self.net.update_client(*pair)

    @rule(pair=st.sampled_from(PAIRS))
    def refund(self, pair: tuple[str, str]) -> None:
        src, dst = pair
        items = [i for i in self.net.collect(src, dst) if i.action == "refund"]
        self._deliver(dst, items, batch=True)

    @rule(pair=st.sampled_from(PAIRS), data=st.data())
    def replay(self, pair: tuple[str, str], data: Any) -> None:
        """A delivered proof, sent again: always refused, nothing changes."""
        src, dst = pair
        done = self._done(src, dst)
        if not done:
            return
        item = data.draw(st.sampled_from(done))
        (r,) = self.net.deliver(dst, [item])
        assert r.code in ("AlreadyProcessed", "BridgePaused"), r.error

    @rule(
        pair=st.sampled_from(PAIRS),
        field=st.sampled_from(["amount", "recipient", "nonce", "index", "sibling"]),
        data=st.data(),
    )
    def forged_relay(self, pair: tuple[str, str], field: str, data: Any) -> None:
        """A relayer alters a pending proof before sending it: refused, nothing moves."""
        src, dst = pair
        items = self.net.collect(src, dst)
        if not items:
            return
        item = data.draw(st.sampled_from(items))
        p = item.proof
        attrs = dict(p.event.attributes)
        if field == "amount":
            p = replace(p, event=Event(p.event.type, {**attrs, "amount": 10**9}))
        elif field == "recipient":
            p = replace(p, event=Event(p.event.type, {**attrs, "recipient": "f" * 40}))
        elif field == "nonce":
            p = replace(p, event=Event(p.event.type, {**attrs, "nonce": attrs["nonce"] + 1}))
        elif field == "index" and p.tree_size > 1:
            p = replace(p, index=(p.index + 1) % p.tree_size)
        elif p.proof:
            p = replace(p, proof=(bytes(32), *p.proof[1:]))
        else:
            return
        (r,) = self.net.deliver(dst, [Pending(item.action, item.nonce, p)])
        assert r.code in ("InvalidProof", "BridgePaused"), r.error

    @rule(pair=st.sampled_from(PAIRS))
    def forgetful_relayer(self, pair: tuple[str, str]) -> None:
        """A relayer that lost its cursor resends everything it ever saw, one per tx."""
        src, dst = pair
        self.net.collect(src, dst)
        done = {(i.action, i.nonce) for i in self._done(src, dst)}
        items = self.net.pending(src, dst, include_done=True)
        txs = [self.net.delivery_txs(dst, [i])[0] for i in items]
        if not txs:
            return
        receipts = self.net.produce(dst, txs).receipts
        for item, r in zip(items, receipts, strict=True):
            if (item.action, item.nonce) in done:
                assert r.code in ("AlreadyProcessed", "BridgePaused"), r.error
            else:
                assert r.code in OK_DELIVERY, r.error

    @rule(chain=st.sampled_from([A, B, C]), blocks=st.integers(1, 12))
    def advance_past_timeouts(self, chain: str, blocks: int) -> None:
        self.net.advance(chain, blocks)

    @rule(pair=st.sampled_from(PAIRS), paused=st.booleans())
    def pause(self, pair: tuple[str, str], paused: bool) -> None:
        chain, remote = pair[1], pair[0]
        self._scan()  # blocks so far ran under the old flag
        method = "pause" if paused else "unpause"
        r = self.net.call(chain, "gov", "bridge", method, {"remote_chain": remote})
        assert r.ok, r.error
        self.paused[pair] = paused

    @rule(pair=st.sampled_from(PAIRS), data=st.data())
    def governance_cancels_queued(self, pair: tuple[str, str], data: Any) -> None:
        """A large lock is relayed and queued; governance ends a queued transfer as an
        expiry (paused or not), and the source refunds it once the expiry is relayed. A
        second cancel is refused."""
        src, dst = pair
        args = {
            "denom": self.net[src].spec.denom,
            "amount": data.draw(st.integers(LIMITS["delay_threshold"], 1_000)),
            "dest_chain": dst,
            "recipient": self.net.key(dst, "bob").address,
        }
        r = self.net.call(src, "alice", "bridge", "lock", args)  # something to queue
        assert r.code in ("ok", "BridgePaused", "InsufficientFunds", "ComplianceRefused"), r.error
        self._deliver(dst, self.net.collect(src, dst), batch=True)
        queue = self.net[dst].chain.query("bridge", "queue", {})
        assert isinstance(queue, list)
        nonces = [item[2] for item in queue if item[1] == src]
        if not nonces:
            return
        args = {"remote_chain": src, "nonce": data.draw(st.sampled_from(nonces))}
        r = self.net.call(dst, "gov", "bridge", "cancel_queued", args)
        assert r.ok, r.error
        assert [e.type for e in r.events] == ["bridge.expired"]
        r = self.net.call(dst, "gov", "bridge", "cancel_queued", args)
        assert r.code == "NotQueued", r.error

    @rule(pair=st.sampled_from(PAIRS), who=st.sampled_from(["alice", "relayer"]))
    def intruder_rewires(self, pair: tuple[str, str], who: str) -> None:
        chain, remote = pair[1], pair[0]
        for method, args in [
            ("update_path", {"remote_chain": remote, "remote_module": "evil"}),
            ("unpause", {"remote_chain": remote}),
            ("cancel_queued", {"remote_chain": remote, "nonce": 1}),
        ]:
            r = self.net.call(chain, who, "bridge", method, args)
            assert r.code == "Unauthorized"

    # --- helpers --------------------------------------------------------------------
    def _deliver(self, dst: str, items: list[Pending], batch: bool) -> None:
        if not items:
            return
        if batch:
            receipts = self.net.deliver(dst, items)
        else:
            txs = [self.net.delivery_txs(dst, [i])[0] for i in items]
            receipts = list(self.net.produce(dst, txs).receipts)
        for r in receipts:
            assert r.code in OK_DELIVERY, f"{r.code}: {r.error}"

    def _done(self, src: str, dst: str) -> list[Pending]:
        open_ = {(i.action, i.nonce) for i in self.net.pending(src, dst)}
        return [
            i
            for i in self.net.pending(src, dst, include_done=True)
            if (i.action, i.nonce) not in open_
        ]

    def _scan(self) -> None:
        """Fold new blocks' events into the I2 / I3 / I6 ledgers."""
        for chain in (A, B, C):
            side = self.net[chain]
            for h in range(self.scanned[chain] + 1, side.chain.height + 1):
                for ev in side.blocks[h].events:
                    kind = ev.type.removeprefix("bridge.")
                    a = ev.attributes
                    if kind in ("locked", "burned"):  # a resend repeats the same packet
                        key = (chain, str(a["dst_chain"]), int(a["nonce"]))
                        record = {
                            "packet": dict(a),
                            "kind": "escrow" if kind == "locked" else "burn",
                        }
                        assert self.sent.setdefault(key, record) == record, key
                    if kind == "acknowledged":
                        key = (chain, str(a["dst_chain"]), int(a["nonce"]))
                        assert key not in self.acks, key
                        self.acks.add(key)
                    if kind in ("minted", "released", "expired"):
                        key = (chain, str(a["src_chain"]), int(a["nonce"]))
                        # I2: one ending per (path, nonce), delivered XOR expired
                        assert key not in self.endings, (key, self.endings.get(key), kind)
                        self.endings[key] = (kind, dict(a))
                    if kind == "refunded":
                        key = (chain, str(a["dst_chain"]), int(a["nonce"]))
                        assert key not in self.refunds, key
                        self.refunds[key] = dict(a)
                    if kind in ("minted", "released", "refunded"):
                        remote = str(a.get("src_chain", a.get("dst_chain")))
                        # I6: nothing leaves a paused path
                        assert not self.paused[(remote, chain)], (chain, remote, h, ev)
                        self.outflow[(chain, remote, str(a["denom"]), h // WINDOW)] += int(
                            a["amount"]
                        )
            self.scanned[chain] = side.chain.height

    # --- invariants -----------------------------------------------------------------
    @invariant()
    def i1_escrow_equals_wrapped_plus_in_flight(self) -> None:
        net = self.net
        for src, dst in PAIRS:
            s_state, d_state = net[src].chain.state, net[dst].chain.state
            escrow = get_balances(s_state, escrow_address(dst))
            sent_out = _records(net, src, "sent", dst)
            recv_there = _records(net, dst, "recv", src)
            sent_back = _records(net, dst, "sent", src)
            recv_here = _records(net, src, "recv", dst)
            denoms = set(escrow)
            denoms |= {r["packet"]["denom"] for r in sent_out.values() if r["kind"] == "escrow"}
            for denom in denoms:
                in_flight = sum(
                    r["packet"]["amount"]
                    for n, r in sent_out.items()
                    if r["kind"] == "escrow"
                    and r["packet"]["denom"] == denom
                    and r["status"] == "sent"
                    and recv_there.get(n) != "delivered"
                )
                wrapped = f"{src}/{denom}"
                in_flight += sum(
                    r["packet"]["amount"]
                    for n, r in sent_back.items()
                    if r["kind"] == "burn"
                    and r["packet"]["denom"] == wrapped
                    and r["status"] == "sent"
                    and recv_here.get(n) != "delivered"
                )
                supply = get_supply(d_state, wrapped)
                assert escrow.get(denom, 0) == supply + in_flight, (src, dst, denom)

    @invariant()
    def i2_i3_i4_each_transfer_ends_once_and_only_from_a_proven_record(self) -> None:
        self._scan()
        for (chain, remote, nonce), (kind, attrs) in self.endings.items():
            # I3: the source really sent this, and what arrived is what was sent
            sent = self.sent[(remote, chain, nonce)]
            packet = sent["packet"]
            if kind == "expired":
                assert attrs == packet
                continue
            assert sent["kind"] == ("escrow" if kind == "minted" else "burn")
            assert (attrs["amount"], attrs["recipient"]) == (packet["amount"], packet["recipient"])
            assert (remote, chain, nonce) not in self.refunds  # I4: delivered, never refunded
        for (chain, remote, nonce), attrs in self.refunds.items():
            # I4: refunded only what the destination recorded as expired
            assert self.endings[(remote, chain, nonce)][0] == "expired"
            assert attrs["amount"] == self.sent[(chain, remote, nonce)]["packet"]["amount"]
        for chain, remote, nonce in self.acks:
            # acknowledged only what the destination delivered
            assert self.endings[(remote, chain, nonce)][0] in ("minted", "released")
        for (chain, remote, nonce), sent in self.sent.items():
            # a source keeps a record exactly while its transfer is neither acknowledged
            # nor refunded (state holds what is in flight, not the history)
            kept = _records(self.net, chain, "sent", remote).get(nonce)
            settled = (chain, remote, nonce) in self.acks or (chain, remote, nonce) in self.refunds
            assert (kept is None) == settled, (chain, remote, nonce, kept)
            if kept is not None:
                assert kept == {**sent, "status": "sent"}

    @invariant()
    def i5_only_governance_rewires(self) -> None:
        for c in (A, B, C):
            paths = self.net[c].chain.query("bridge", "paths", {})
            strip = [{**p, "paused": False} for p in paths]  # type: ignore[union-attr]
            assert strip == self.paths0[c]
            assert self.net[c].chain.query("validators", "next", {}) == self.vals0[c]

    @invariant()
    def i6_outflow_within_cap(self) -> None:
        self._scan()
        for key, amount in self.outflow.items():
            assert amount <= CAP, (key, amount)

    @invariant()
    def i7_wrapped_one_to_one_and_native_supply_fixed(self) -> None:
        for c in (A, B, C):
            state = self.net[c].chain.state
            for key, origin in state.items("bridge/wrapped/"):
                denom = key.removeprefix("bridge/wrapped/")
                assert denom == f"{origin['path']}/{origin['base']}"
                assert origin["path"] in self.net[c].clients
            native = self.net[c].spec.denom
            accounts = len(self.net[c].spec.accounts)
            assert get_supply(state, native) == DEFAULT_BALANCE * accounts

    @invariant()
    def i8_no_negative_balances(self) -> None:
        for c in (A, B, C):
            state = self.net[c].chain.state
            totals: defaultdict[str, int] = defaultdict(int)
            for key, value in state.items("bank/bal/"):
                assert isinstance(value, int)
                assert value > 0, key
                totals[key.split("/", 3)[3]] += value
            supplies = {k.removeprefix("bank/supply/"): v for k, v in state.items("bank/supply/")}
            assert all(v > 0 for v in supplies.values())
            assert dict(totals) == supplies

    @rule()
    def settle_everything(self) -> None:
        """Unpause, let time pass, relay everything: every transfer must end."""
        for pair, paused in list(self.paused.items()):
            if paused:
                self.pause(pair, False)
        for _ in range(3):
            for src, dst in PAIRS:
                self._deliver(dst, self.net.collect(src, dst), batch=True)
            for chain in (A, B, C):
                self.net.advance(chain, WINDOW // 2)


TestBridgeMachine = BridgeMachine.TestCase
TestBridgeMachine.settings = settings(
    max_examples=15,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

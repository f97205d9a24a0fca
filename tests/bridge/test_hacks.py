"""The historic bridge hacks, replayed against interlock. Each must be refused with a
specific typed error and leave the destination's state exactly as it was.

Every test ends with the same question: did anything get minted? (``_nothing_minted``)
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

import bridge.errors
import bridge.module
from bridge.errors import (
    AlreadyProcessed,
    EscrowMismatch,
    ForeignEvent,
    MalformedBundle,
    MalformedPacket,
    UnknownDenom,
    WrongDestination,
)
from bridge.localnet import LocalNet, Pending
from bridge.module import escrow_address
from chains.bank import get_balance, get_supply
from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.devnet import DEFAULT_BALANCE
from chains.errors import (
    BadNonce,
    ChainIdMismatch,
    ClientExpired,
    ClientFrozen,
    ConsensusStateNotFound,
    DuplicateSigner,
    HeaderFromFuture,
    InsufficientVotingPower,
    InvalidArgument,
    InvalidCommit,
    InvalidProof,
    InvalidRoot,
    TrustingPeriodExpired,
    Unauthorized,
    UnknownSigner,
    ValidatorSetMismatch,
)
from chains.lightclient import HeaderUpdate
from chains.merkle import merkle_root
from chains.types import ZERO_HASH, Commit, CommitSig, Event, EventProof, Header, ValidatorSet
from tests.bridge.conftest import A, B, C, addr, make_net, refused, rogue_modules

ATTACKER = [PrivateKey.derive("attacker", str(i)) for i in range(4)]


# --- helpers ----------------------------------------------------------------------------


def locked(net: LocalNet, amounts: tuple[int, ...] = (5,), src: str = A, dst: str = B) -> list:
    """Lock ``amounts`` on ``src`` in one block; return the pending items on ``dst``."""
    txs = [
        net.tx(
            src,
            net.key(src, "alice"),
            "bridge",
            "lock",
            {
                "denom": net[src].spec.denom,
                "amount": a,
                "dest_chain": dst,
                "recipient": addr(net, dst, "bob"),
            },
        )
        for a in amounts
    ]
    block = net.produce(src, txs)
    assert all(r.ok for r in block.receipts)
    return net.collect(src, dst)


def mint_args(*proofs: EventProof | dict[str, Any]) -> dict[str, Any]:
    return {"bundles": [p if isinstance(p, dict) else p.to_json() for p in proofs]}


def fake_lock(net: LocalNet, amount: int = 10**9, src: str = A, dst: str = B) -> Event:
    return Event(
        "bridge.locked",
        {
            "src_chain": src,
            "dst_chain": dst,
            "nonce": 999,
            "sender": addr(net, src, "alice"),
            "recipient": addr(net, dst, "dave"),
            "denom": net[src].spec.denom,
            "amount": amount,
            "timeout_height": 10**6,
        },
    )


def forged_header(net: LocalNet, src: str, event: Event, **fields: Any) -> Header:
    """The next header of ``src`` as an attacker would like it: one fake event."""
    last = net[src].chain.last_header
    assert last is not None
    base = dict(
        height=last.height + 1,
        time=last.time + 1,
        prev_hash=last.hash,
        event_root=merkle_root([event.leaf()]),
        event_count=1,
    )
    return replace(last, **{**base, **fields})


def update_args(
    net: LocalNet,
    src: str,
    dst: str,
    header: Header,
    commit: Commit,
    validators: ValidatorSet | None = None,
    trusted_validators: ValidatorSet | None = None,
) -> dict[str, Any]:
    trusted = net.client_height(src, dst)
    vals = validators or net[src].chain.validators
    tv = trusted_validators or net[src].next_sets[trusted]
    upd = HeaderUpdate(header, commit, vals, trusted, tv)
    return {"client_id": net[dst].clients[src], "update": upd.to_json()}


def emit_and_prove(net: LocalNet, attrs: dict[str, Any]) -> EventProof:
    """A rogue A bridge commits ``bridge.locked`` with ``attrs``; B's client gets the
    header; the event's genuine proof is returned."""
    r = net.call(A, "alice", "bridge", "emit_raw", {"name": "locked", "attributes": attrs})
    assert r.ok, r.error
    net.update_client(A, B, r.height)
    return net[A].blocks[r.height].prove_event(r.first_event)


def fake_bundle(header: Header, event: Event) -> EventProof:
    return EventProof(header.chain_id, header.height, 0, 1, event, ())


def _nothing_minted(net: LocalNet, chain: str = B, denom: str = "chain-a/usd") -> None:
    assert get_supply(net[chain].chain.state, denom) == 0


# --- Wormhole 2022: a spoofed "verified" signature set ----------------------------------


class TestWormhole:
    def test_forged_signatures_under_real_validator_keys(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        h = forged_header(net, A, ev)
        real = sign_commit(h, net[A].spec.validator_keys)
        # the attacker names the real validators but cannot produce their signatures
        forged = Commit(
            h.height,
            h.hash,
            tuple(CommitSig(s.validator, ATTACKER[0].sign(b"anything")) for s in real.signatures),
        )
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, forged),
            InvalidCommit,
        )
        refused(
            net,
            B,
            "relayer",
            "bridge",
            "mint",
            mint_args(fake_bundle(h, ev)),
            ConsensusStateNotFound,
        )
        _nothing_minted(net)

    def test_duplicated_signer(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        h = forged_header(net, A, ev)
        one = sign_commit(h, net[A].spec.validator_keys[:1]).signatures[0]
        commit = Commit(h.height, h.hash, (one, one, one))
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, commit),
            DuplicateSigner,
        )
        _nothing_minted(net)

    def test_out_of_range_signers(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        h = forged_header(net, A, ev)
        commit = sign_commit(h, [*net[A].spec.validator_keys[:2], *ATTACKER[:2]])
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, commit),
            UnknownSigner,
        )
        _nothing_minted(net)

    def test_spoofed_validator_set(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        fake_set = ValidatorSet.of([(k.public_key, 10) for k in ATTACKER])
        trusted = net.client_height(A, B)
        # sequential (trusted + 1) or skipping, the attacker's set must be the one the
        # client already trusts, and it is not
        for height, tv in ((trusted + 1, None), (trusted + 5, fake_set)):
            h = forged_header(
                net,
                A,
                ev,
                height=height,
                validators_hash=fake_set.hash,
                next_validators_hash=fake_set.hash,
            )
            args = update_args(net, A, B, h, sign_commit(h, ATTACKER), fake_set, tv)
            err = refused(
                net, B, "relayer", "lightclient", "update_client", args, ValidatorSetMismatch
            )
            assert err.which == ("trusted next" if tv is None else "trusted")
        _nothing_minted(net)

    def test_a_bundle_cannot_vouch_for_itself(self, net: LocalNet) -> None:
        (item,) = locked(net)
        bundle = {**item.proof.to_json(), "verified": True}
        refused(net, B, "relayer", "bridge", "mint", mint_args(bundle), MalformedBundle)
        _nothing_minted(net)


# --- Nomad 2022: an unproven message accepted against a zero / default root --------------


class TestNomad:
    def test_never_stored_root(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        proof = EventProof(A, 77, 0, 1, ev, ())
        err = refused(net, B, "relayer", "bridge", "mint", mint_args(proof), ConsensusStateNotFound)
        assert err.height == 77
        _nothing_minted(net)

    def test_unproven_message_at_a_stored_height(self, net: LocalNet) -> None:
        locked(net)
        h = net.client_height(A, B)
        refused(
            net,
            B,
            "relayer",
            "bridge",
            "mint",
            mint_args(EventProof(A, h, 0, 1, fake_lock(net), ())),
            InvalidProof,
        )
        _nothing_minted(net)

    def test_zero_root_header_is_never_stored(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        h = forged_header(net, A, ev, event_root=ZERO_HASH)
        commit = sign_commit(h, net[A].spec.validator_keys)  # even honest signatures
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, commit),
            InvalidRoot,
        )
        _nothing_minted(net)

    def test_a_default_root_in_state_never_verifies(self, net: LocalNet) -> None:
        # Nomad's bug: a trusted root initialised to 0x00. Plant one and try it.
        client = net[B].clients[A]
        key = f"lightclient/cons/{client}/{99:020d}"
        good = net[B].chain.state.get(f"lightclient/cons/{client}/{net.client_height(A, B):020d}")
        net[B].chain.state.set(key, {**good, "event_root": ZERO_HASH.hex(), "event_count": 1})
        ev = fake_lock(net)
        err = refused(
            net,
            B,
            "relayer",
            "bridge",
            "mint",
            mint_args(EventProof(A, 99, 0, 1, ev, ())),
            InvalidProof,
        )
        assert "zero" in err.reason
        _nothing_minted(net)

    def test_height_zero_is_not_a_height(self, net: LocalNet) -> None:
        bundle = EventProof(A, 1, 0, 1, fake_lock(net), ()).to_json() | {"height": 0}
        refused(net, B, "relayer", "bridge", "mint", mint_args(bundle), MalformedBundle)


# --- BNB Bridge 2022: a forged Merkle proof -----------------------------------------------


class TestBNB:
    @pytest.fixture
    def item(self, net: LocalNet) -> Pending:
        return locked(net, (1, 2, 3, 4, 5))[2]

    def test_every_node_mutated(self, net: LocalNet, item: Pending) -> None:
        assert item.proof.proof
        for i, sib in enumerate(item.proof.proof):
            bad = bytes([sib[0] ^ 1]) + sib[1:]
            path = (*item.proof.proof[:i], bad, *item.proof.proof[i + 1 :])
            refused(
                net,
                B,
                "relayer",
                "bridge",
                "mint",
                mint_args(replace(item.proof, proof=path)),
                InvalidProof,
            )
        _nothing_minted(net)

    @pytest.mark.parametrize(
        "change", ["extra", "missing", "index+1", "index-1", "size+1", "size*2", "amount"]
    )
    def test_shape_mutations(self, net: LocalNet, item: Pending, change: str) -> None:
        p = item.proof
        bad = {
            "extra": replace(p, proof=(*p.proof, p.proof[-1])),
            "missing": replace(p, proof=p.proof[:-1]),
            "index+1": replace(p, index=p.index + 1),
            "index-1": replace(p, index=p.index - 1),
            "size+1": replace(p, tree_size=p.tree_size + 1),
            "size*2": replace(p, tree_size=p.tree_size * 2),
            "amount": replace(
                p, event=Event(p.event.type, {**p.event.attributes, "amount": 10**12})
            ),
        }[change]
        refused(net, B, "relayer", "bridge", "mint", mint_args(bad), InvalidProof)
        _nothing_minted(net)

    def test_oversized_proof(self, net: LocalNet, item: Pending) -> None:
        bundle = item.proof.to_json() | {"proof": [ZERO_HASH.hex()] * 65}
        refused(net, B, "relayer", "bridge", "mint", mint_args(bundle), MalformedBundle)


# --- Poly Network 2021: a cross-chain message that rewires the bridge -------------------


class TestPoly:
    def test_governance_cannot_be_reached_by_anyone_else(self, net: LocalNet) -> None:
        # anyone may create a light client (headers are verified), even of a fake
        # "chain-a"; binding a path to it is governance only
        client = net[B].clients[A]
        for method, args in [
            ("update_path", {"remote_chain": A, "client_id": client}),
            ("update_path", {"remote_chain": A, "remote_module": "evil"}),
            ("register_path", {"remote_chain": "chain-x", "client_id": client}),
            ("set_limits", {"remote_chain": A, "cap": 2**62}),
            ("unpause", {}),
        ]:
            refused(net, B, "relayer", "bridge", method, args, Unauthorized)
        refused(
            net,
            B,
            "alice",
            "validators",
            "set_power",
            {"public_key": ATTACKER[0].public_key.hex(), "power": 1000},
            Unauthorized,
        )

    def test_proven_governance_events_are_not_transfers(self, net: LocalNet) -> None:
        # real, provable events of A: its governance adding a path and a validator
        net.call(
            A,
            "gov",
            "validators",
            "set_power",
            {"public_key": ATTACKER[0].public_key.hex(), "power": 1},
        )
        net.call(A, "gov", "bridge", "set_limits", {"remote_chain": B, "cap": 5})
        net.update_client(A, B)
        paths_before = net[B].chain.query("bridge", "paths", {})
        vals_before = net[B].chain.query("validators", "next", {})
        for h in range(1, net[A].chain.height + 1):
            block = net[A].blocks[h]
            for i, ev in enumerate(block.events):
                if ev.type in ("validators.power_changed", "bridge.limits_set"):
                    net.update_client(A, B, h)
                    refused(
                        net,
                        B,
                        "relayer",
                        "bridge",
                        "mint",
                        mint_args(block.prove_event(i)),
                        ForeignEvent,
                    )
        assert net[B].chain.query("bridge", "paths", {}) == paths_before
        assert net[B].chain.query("validators", "next", {}) == vals_before

    def test_a_packet_carrying_a_command_is_refused(self) -> None:
        net = make_net(modules_by_chain={A: rogue_modules})
        attrs = dict(fake_lock(net).attributes)
        attrs |= {"method": "update_path", "client_id": "lc-9", "remote_module": "evil"}
        r = net.call(A, "alice", "bridge", "emit_raw", {"name": "locked", "attributes": attrs})
        assert r.ok
        (item,) = net.collect(A, B)
        err = refused(net, B, "relayer", "bridge", "mint", mint_args(item.proof), MalformedPacket)
        assert "method" in err.reason
        assert (
            net[B].chain.query("bridge", "path", {"remote_chain": A})["client_id"]
            == (net[B].clients[A])
        )
        _nothing_minted(net)


# --- Ronin 2022 / Harmony 2022: too few keys, or keys outside the set --------------------


class TestRoninHarmony:
    @pytest.mark.parametrize("n", [1, 2])
    def test_commit_below_two_thirds(self, net: LocalNet, n: int) -> None:
        ev = fake_lock(net)
        h = forged_header(net, A, ev)
        commit = sign_commit(h, net[A].spec.validator_keys[:n])
        err = refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, commit),
            InsufficientVotingPower,
        )
        assert err.signed == 10 * n
        _nothing_minted(net)

    def test_stolen_minority_skipping_to_an_attacker_set(self, net: LocalNet) -> None:
        # Harmony: 2 of 5 keys. Here 1 of 4 trusted validators plus attacker keys try a
        # skipping update to a set the attacker controls: trust needs > 1/3 of the old set.
        net.advance(A, 3)
        ev = fake_lock(net)
        fake_set = ValidatorSet.of(
            [
                *((k.public_key, 10) for k in ATTACKER),
                (net[A].spec.validator_keys[0].public_key, 10),
            ]
        )
        h = forged_header(
            net,
            A,
            ev,
            height=net[A].chain.height + 5,
            validators_hash=fake_set.hash,
            next_validators_hash=fake_set.hash,
        )
        commit = sign_commit(h, [*ATTACKER, net[A].spec.validator_keys[0]])
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, commit, fake_set),
            InsufficientVotingPower,
        )
        _nothing_minted(net)

    def test_keys_outside_the_set(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        h = forged_header(net, A, ev, height=net.client_height(A, B) + 1)
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, sign_commit(h, ATTACKER)),
            UnknownSigner,
        )


# --- Qubit 2022: a lock event without funds really escrowed -------------------------------


class TestQubit:
    def _lock(self, net: LocalNet, **kw: Any) -> dict[str, Any]:
        return {
            "denom": "usd",
            "amount": 5,
            "dest_chain": B,
            "recipient": addr(net, B, "bob"),
            **kw,
        }

    def test_unknown_denom(self, net: LocalNet) -> None:
        err = refused(
            net, A, "alice", "bridge", "lock", self._lock(net, denom="weth"), UnknownDenom
        )
        assert err.denom == "weth"

    def test_zero_amount(self, net: LocalNet) -> None:
        refused(net, A, "alice", "bridge", "lock", self._lock(net, amount=0), InvalidArgument)

    def test_escrow_must_really_receive_the_amount(
        self, net: LocalNet, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Qubit's deposit() "succeeded" for a token whose transfer did nothing
        monkeypatch.setattr(bridge.module, "apply_transfer", lambda *a, **k: None)
        err = refused(net, A, "alice", "bridge", "lock", self._lock(net), EscrowMismatch)
        assert (err.expected, err.got) == (5, 0)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("amount", 0),
            ("amount", -1),
            ("amount", "5"),
            ("amount", None),
            ("denom", ""),
            ("recipient", "0x00"),
            ("nonce", 0),
            ("timeout_height", 0),
            ("src_chain", "a/b"),
        ],
    )
    def test_a_faulty_source_bridge_cannot_mint_nothing_into_something(
        self, field: str, value: object
    ) -> None:
        net = make_net(modules_by_chain={A: rogue_modules})
        attrs = {**fake_lock(net, 5).attributes, field: value}
        proof = emit_and_prove(net, attrs)
        err = refused(net, B, "relayer", "bridge", "mint", mint_args(proof), MalformedPacket)
        assert err.field == field
        _nothing_minted(net)


# --- replay ---------------------------------------------------------------------------------


class TestReplay:
    def test_same_proof_twice(self, net: LocalNet) -> None:
        (item,) = locked(net)
        assert net.deliver(B, [item])[0].ok
        err = refused(net, B, "relayer", "bridge", "mint", mint_args(item.proof), AlreadyProcessed)
        assert (err.remote_chain, err.nonce, err.status) == (A, 1, "delivered")
        assert get_supply(net[B].chain.state, "chain-a/usd") == 5

    def test_same_proof_twice_in_one_batch(self, net: LocalNet) -> None:
        (item,) = locked(net)
        refused(
            net, B, "relayer", "bridge", "mint", mint_args(item.proof, item.proof), AlreadyProcessed
        )
        _nothing_minted(net)

    def test_same_signed_transaction_twice(self, net: LocalNet) -> None:
        (item,) = locked(net)
        (tx,) = net.delivery_txs(B, [item])
        assert net.produce(B, [tx]).receipts[0].ok
        block = net.produce(B, [tx])
        assert block.txs == ()
        assert get_supply(net[B].chain.state, "chain-a/usd") == 5
        assert isinstance(
            net[B]
            .chain.produce_block([tx], net.time + 5000, net[B].spec.validator_keys)
            .dropped[0][1],
            BadNonce,
        )

    def test_same_proof_on_another_path(self) -> None:
        net = make_net((A, B, C), ((A, B), (C, B)))
        (item,) = locked(net)
        net.advance(C, item.proof.height + 1)
        net.update_client(C, B, item.proof.height)  # B holds C's header at that height
        moved = replace(item.proof, chain_id=C)
        refused(net, B, "relayer", "bridge", "mint", mint_args(moved), InvalidProof)
        _nothing_minted(net)

    def test_same_proof_on_another_chain(self) -> None:
        net = make_net((A, B, C), ((A, B), (A, C)))
        (item,) = locked(net)
        net.update_client(A, C, item.proof.height)
        err = refused(net, C, "relayer", "bridge", "mint", mint_args(item.proof), WrongDestination)
        assert (err.expected, err.got) == (C, B)
        _nothing_minted(net, C)

    def test_a_proof_for_one_call_is_useless_for_another(self, net: LocalNet) -> None:
        known = net.client_height(B, A)
        r = net.call(
            A,
            "alice",
            "bridge",
            "lock",
            {
                "denom": "usd",
                "amount": 9,
                "dest_chain": B,
                "recipient": addr(net, B, "bob"),
                "timeout_height": known + 2,
            },
        )
        assert r.ok
        net.advance(B, 4)
        (expired,) = net.relay(A, B)
        assert expired.events[0].type == "bridge.expired"
        (lock_item,) = net.pending(A, B, include_done=True)
        (refund_item,) = net.collect(B, A)
        refused(net, A, "relayer", "bridge", "mint", mint_args(refund_item.proof), ForeignEvent)
        refused(net, B, "relayer", "bridge", "refund", mint_args(lock_item.proof), ForeignEvent)
        assert net.deliver(A, [refund_item])[0].ok
        refused(
            net, A, "relayer", "bridge", "refund", mint_args(refund_item.proof), AlreadyProcessed
        )


# --- header forgery -----------------------------------------------------------------------


class TestHeaderForgery:
    def test_header_of_another_chain(self) -> None:
        net = make_net((A, B, C), ((A, B), (C, B)))
        net.advance(C, 3)
        block = net[C].blocks[3]
        upd = HeaderUpdate(
            block.header,
            block.commit,
            net[C].signed_by[3],
            net.client_height(A, B),
            net[A].next_sets[net.client_height(A, B)],
        )
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            {"client_id": net[B].clients[A], "update": upd.to_json()},
            ChainIdMismatch,
        )

    def test_frozen_client_refuses_headers_and_proofs(self, net: LocalNet) -> None:
        (item,) = locked(net)
        # A's validators equivocate: a second, different header at a height B stored
        h = net[A].blocks[item.proof.height].header
        twin = replace(h, event_root=merkle_root([fake_lock(net).leaf()]), event_count=1)
        commit = sign_commit(twin, net[A].spec.validator_keys)
        trusted = next(x for x in range(h.height - 1, 0, -1) if net.has_consensus(A, B, x))
        upd = HeaderUpdate(
            twin, commit, net[A].signed_by[h.height], trusted, net[A].next_sets[trusted]
        )
        r = net.call(
            B,
            "relayer",
            "lightclient",
            "update_client",
            {"client_id": net[B].clients[A], "update": upd.to_json()},
        )
        assert r.ok
        assert r.events[0].type == "lightclient.client_frozen"
        refused(net, B, "relayer", "bridge", "mint", mint_args(item.proof), ClientFrozen)
        net.advance(A, 1)
        tx = net.update_client_tx(A, B)
        assert tx is not None
        refused(net, B, "relayer", "lightclient", "update_client", dict(tx.args), ClientFrozen)
        _nothing_minted(net)

    def test_a_frozen_client_holds_the_delay_queue(self) -> None:
        """Beyond the 1/3 model: A's validators sign a forged header with a fake large
        lock; its mint waits out B's delay; a watcher proves the equivocation with A's
        real header at that height. What the forger queued must not execute."""
        net = make_net(limits={"delay_threshold": 500, "delay": 3})
        ev = fake_lock(net)
        trusted = net.client_height(A, B)
        h = forged_header(net, A, ev)
        commit = sign_commit(h, net[A].spec.validator_keys)
        assert net.call(
            B, "relayer", "lightclient", "update_client", update_args(net, A, B, h, commit)
        ).ok
        r = net.call(B, "relayer", "bridge", "mint", mint_args(fake_bundle(h, ev)))
        assert r.ok
        assert r.events[0].type == "bridge.queued"
        real = net.produce(A)  # A's real block at the forged height
        assert real.height == h.height
        upd = HeaderUpdate(
            real.header,
            real.commit,
            net[A].signed_by[h.height],
            trusted,
            net[A].next_sets[trusted],
        )
        r = net.call(
            B,
            "relayer",
            "lightclient",
            "update_client",
            {"client_id": net[B].clients[A], "update": upd.to_json()},
        )
        assert r.events[0].type == "lightclient.client_frozen"
        net.advance(B, 5)
        _nothing_minted(net)
        q = net[B].chain.query("bridge", "received", {"remote_chain": A, "nonce": 999})
        assert q == "queued"

    def test_governance_recovers_a_frozen_path(self, net: LocalNet) -> None:
        (item,) = locked(net)
        h = net[A].blocks[item.proof.height].header
        client = net[B].clients[A]
        key = f"lightclient/client/{client}"
        net[B].chain.state.set(key, {**net[B].chain.state.get(key), "frozen_height": h.height})
        # no new transfers into a path whose refunds could never be proven
        args = {"denom": "eur", "amount": 1, "dest_chain": A, "recipient": addr(net, A, "bob")}
        refused(net, B, "bob", "bridge", "lock", args, ClientFrozen)
        # governance (only) points the path at a fresh client; the transfer completes
        block = net[A].blocks[h.height]
        upd = HeaderUpdate(block.header, block.commit, net[A].signed_by[h.height], 1, None)
        r = net.call(
            B,
            "relayer",
            "lightclient",
            "create_client",
            {"update": upd.to_json(), "trusting_period": 10**9, "max_clock_drift": 10_000},
        )
        assert r.ok, r.error
        fresh = r.events[0].attributes["client_id"]
        refused(
            net,
            B,
            "relayer",
            "bridge",
            "update_path",
            {"remote_chain": A, "client_id": fresh},
            Unauthorized,
        )
        assert net.call(
            B, "gov", "bridge", "update_path", {"remote_chain": A, "client_id": fresh}
        ).ok
        assert net.deliver(B, [item])[0].ok
        assert get_supply(net[B].chain.state, "chain-a/usd") == 5

    def test_expired_trusting_period(self, net: LocalNet) -> None:
        (item,) = locked(net)
        net.time += 15 * 24 * 3600 * 1000
        refused(net, B, "relayer", "bridge", "mint", mint_args(item.proof), ClientExpired)
        net.advance(A, 1)
        tx = net.update_client_tx(A, B)
        assert tx is not None
        refused(
            net, B, "relayer", "lightclient", "update_client", dict(tx.args), TrustingPeriodExpired
        )
        _nothing_minted(net)

    def test_header_from_the_future(self, net: LocalNet) -> None:
        ev = fake_lock(net)
        h = forged_header(net, A, ev, time=net.time + 3_600_000)
        refused(
            net,
            B,
            "relayer",
            "lightclient",
            "update_client",
            update_args(net, A, B, h, sign_commit(h, net[A].spec.validator_keys)),
            HeaderFromFuture,
        )


def test_copy_of_a_bundle_is_independent(net: LocalNet) -> None:
    (item,) = locked(net)
    bundle = copy.deepcopy(item.proof.to_json())
    bundle["event"]["attributes"]["recipient"] = addr(net, B, "dave")
    refused(net, B, "relayer", "bridge", "mint", mint_args(bundle), InvalidProof)
    assert net.deliver(B, [item])[0].ok


# --- denom spoofing: a native token named like a wrapped one ------------------------------


class TestDenomSpoofing:
    """Whether a denom is wrapped is what the bridge recorded when it minted it, never
    what its name looks like."""

    def _plant(self, net: LocalNet, chain: str, who: str, denom: str, amount: int) -> None:
        state = net[chain].chain.state  # as if the chain's genesis had this token
        state.set(f"bank/supply/{denom}", amount)
        state.set(f"bank/bal/{addr(net, chain, who)}/{denom}", amount)

    def test_a_look_alike_native_token_is_escrowed_not_burned(self, net: LocalNet) -> None:
        (pending,) = locked(net, (100,))  # A's escrow now holds 100 usd for B
        # dave's native token on B is *named* like A's wrapped usd
        self._plant(net, B, "dave", "chain-a/usd", 1_000)
        r = net.call(
            B,
            "dave",
            "bridge",
            "lock",
            {
                "denom": "chain-a/usd",
                "amount": 1_000,
                "dest_chain": A,
                "recipient": addr(net, A, "dave"),
            },
        )
        assert r.ok
        assert r.events[0].type == "bridge.locked"  # escrowed on B, not burned
        refused(
            net,
            B,
            "dave",
            "bridge",
            "burn",
            {"denom": "chain-a/usd", "amount": 1, "recipient": addr(net, A, "dave")},
            bridge.errors.NotWrapped,
        )
        net.relay(B, A)
        # A wraps it (twice-prefixed, backed by B's escrow); A's real usd does not move
        assert get_supply(net[A].chain.state, "chain-b/chain-a/usd") == 1_000
        assert get_balance(net[A].chain.state, escrow_address(B), "usd") == 100
        assert get_balance(net[A].chain.state, addr(net, A, "dave"), "usd") == DEFAULT_BALANCE
        # and A's real transfer cannot be minted into the look-alike's name
        refused(
            net,
            B,
            "relayer",
            "bridge",
            "mint",
            mint_args(pending.proof),
            bridge.errors.DenomCollision,
        )

    def test_minting_into_a_native_name_is_refused(self, net: LocalNet) -> None:
        self._plant(net, B, "carol", "chain-a/usd", 7)
        (item,) = locked(net)
        err = refused(
            net, B, "relayer", "bridge", "mint", mint_args(item.proof), bridge.errors.DenomCollision
        )
        assert err.denom == "chain-a/usd"

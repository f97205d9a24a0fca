"""Compliance on bridge paths, enforced on both chains (issue 11).

The source refuses a lock that breaks its own policy (a typed error naming the rule, no
state change). The destination refuses a packet that breaks its policy by recording an
expiry, exactly as a timeout does; the source proves it and refunds. Nothing refused is
ever minted, and nothing is stranded.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from nacl.public import PrivateKey as BoxPrivateKey

from bridge.localnet import BLOCK_MS, LocalNet
from bridge.module import escrow_address
from chains.bank import get_balance, get_supply
from chains.crypto import PrivateKey
from chains.errors import InvalidArgument, Unauthorized
from tests.bridge.conftest import A, B, addr, events_of, refused
from zk.compliance import (
    ComplianceRefused,
    KycAttestation,
    open_travel_rule,
    prove_holder,
    seal_travel_rule,
)
from zk.errors import ProofRejected

PROVIDER = PrivateKey.derive("test", "kyc-provider")
POLICY = {"min_kyc_level": 0, "limit": 10**12, "window_ms": 60_000, "travel_rule_threshold": 10**12}


def gov(net: LocalNet, chain: str, method: str, **args: Any) -> None:
    r = net.call(chain, "gov", "compliance", method, args)
    assert r.ok, r.error


def policy(net: LocalNet, chain: str, remote: str, jurisdiction: str = "*", **rules: int) -> None:
    gov(
        net,
        chain,
        "set_policy",
        remote_chain=remote,
        jurisdiction=jurisdiction,
        **{**POLICY, **rules},
    )


def attestation(
    net: LocalNet,
    chain: str,
    who: str,
    *,
    level: int = 2,
    expiry: int | None = None,
    provider: PrivateKey = PROVIDER,
    jurisdiction: str = "US",
) -> KycAttestation:
    unsigned = KycAttestation(
        addr(net, chain, who),
        jurisdiction,
        level,
        net.time + 60_000 if expiry is None else expiry,
        hashlib.sha256(f"{who}'s passport".encode()).digest(),
        provider.public_key,
        b"",
    )
    return dataclasses.replace(unsigned, signature=provider.sign(unsigned.signed_bytes()))


def attest_args(att: KycAttestation, holder: PrivateKey) -> dict[str, Any]:
    return {
        "attestation": att.to_json(),
        "public_key": holder.public_key.hex(),
        "proof": prove_holder(att, holder.seed).hex(),
    }


def register_kyc(net: LocalNet, chain: str, who: str, **kw: Any) -> KycAttestation:
    att = attestation(net, chain, who, **kw)
    r = net.call(chain, who, "compliance", "attest", attest_args(att, net.key(chain, who)))
    assert r.ok, r.error
    return att


def lock_args(net: LocalNet, amount: int, to: str = "carol", **extra: Any) -> dict[str, Any]:
    return {
        "denom": net[A].spec.denom,
        "amount": amount,
        "dest_chain": B,
        "recipient": addr(net, B, to),
        **extra,
    }


def lock(net: LocalNet, amount: int, to: str = "carol", **extra: Any) -> int:
    r = net.call(A, "alice", "bridge", "lock", lock_args(net, amount, to, **extra))
    assert r.ok, r.error
    (locked,) = (e for e in r.events if e.type == "bridge.locked")
    return int(locked.attributes["nonce"])  # type: ignore[arg-type]


def assert_conserved(net: LocalNet) -> None:
    """I1 on the path A -> B once nothing is in flight: escrow = wrapped supply."""
    denom = net[A].spec.denom
    escrowed = get_balance(net[A].chain.state, escrow_address(B), denom)
    assert escrowed == get_supply(net[B].chain.state, f"{A}/{denom}")


# --- the source refuses what breaks its own policy -------------------------------------


def test_a_sanctioned_recipient_is_refused_at_the_source_with_no_state_change(
    net: LocalNet,
) -> None:
    gov(net, A, "deny", address=addr(net, B, "carol"))
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 10), ComplianceRefused)
    assert err.rule == "sanctions"
    assert "recipient" in err.detail
    r = net.call(A, "alice", "bridge", "lock", lock_args(net, 10))
    assert (r.ok, r.code) == (False, "ComplianceRefused")
    assert "sanctions" in r.error
    gov(net, A, "allow", address=addr(net, B, "carol"))
    assert net.call(A, "alice", "bridge", "lock", lock_args(net, 10)).ok


def test_kyc_level_expiry_and_revoked_provider_refuse_the_lock(net: LocalNet) -> None:
    policy(net, A, B, min_kyc_level=2)
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 10), ComplianceRefused)
    assert err.rule == "kyc.level"  # no attestation
    gov(net, A, "register_provider", pubkey=PROVIDER.public_key.hex(), name="acme kyc")
    register_kyc(net, A, "alice", level=1)
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 10), ComplianceRefused)
    assert err.rule == "kyc.level"
    assert "has 1" in err.detail
    register_kyc(net, A, "alice", level=2, expiry=net.time + 3 * BLOCK_MS)
    lock(net, 10)
    net.advance(A, 2)  # the next block's time is the expiry: no longer live
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 10), ComplianceRefused)
    assert err.rule == "kyc.expired"
    register_kyc(net, A, "alice", level=2)
    lock(net, 10)
    gov(net, A, "revoke_provider", pubkey=PROVIDER.public_key.hex())
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 10), ComplianceRefused)
    assert err.rule == "kyc.provider"


def test_the_policy_of_the_senders_jurisdiction_applies_else_the_default(net: LocalNet) -> None:
    gov(net, A, "register_provider", pubkey=PROVIDER.public_key.hex(), name="acme kyc")
    policy(net, A, B, "*", min_kyc_level=3)
    policy(net, A, B, "US", min_kyc_level=1)
    register_kyc(net, A, "alice", level=1, jurisdiction="US")
    lock(net, 10)  # US: level 1 is enough
    register_kyc(net, A, "alice", level=2, jurisdiction="DE")
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 10), ComplianceRefused)
    assert err.rule == "kyc.level"  # DE has no policy of its own: the path's default


def test_amount_limit_at_its_edges_over_a_sliding_window(net: LocalNet) -> None:
    policy(net, A, B, limit=100, window_ms=5 * BLOCK_MS)
    lock(net, 60)  # at time t
    lock(net, 40)  # t + 1 block: exactly at the limit
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 1), ComplianceRefused)
    assert err.rule == "aml.limit"
    net.advance(A, 2)  # next block at t + 4 blocks: the 60 is still inside the window
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 1), ComplianceRefused)
    assert err.rule == "aml.limit"
    net.advance(A, 1)  # next block at t + 5 blocks: the 60 has left, the 40 has not
    lock(net, 60)  # t + 5 blocks: 40 + 60
    lock(net, 40)  # t + 6 blocks: the first 40 has left; 60 + 40, at the limit again
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 1), ComplianceRefused)
    assert err.rule == "aml.limit"
    # another sender has a window of her own
    r = net.call(A, "bob", "bridge", "lock", lock_args(net, 100))
    assert r.ok, r.error


def test_travel_rule_data_is_required_from_the_threshold(net: LocalNet) -> None:
    policy(net, A, B, travel_rule_threshold=500)
    lock(net, 499)
    err = refused(net, A, "alice", "bridge", "lock", lock_args(net, 500), ComplianceRefused)
    assert err.rule == "travel_rule"
    lock(net, 500, travel_rule="ab" * 40)


# --- the destination refuses: a provable rejection, refunded at the source ----------------


def test_a_sanctioned_recipient_is_refused_at_the_destination_and_refunded(net: LocalNet) -> None:
    denom = net[A].spec.denom
    alice = addr(net, A, "alice")
    before = get_balance(net[A].chain.state, alice, denom)
    gov(net, B, "deny", address=addr(net, B, "carol"))
    bad = lock(net, 70, to="carol")
    good = lock(net, 30, to="bob")
    (r,) = net.deliver(B, net.collect(A, B))  # one mint call carries both packets
    assert r.ok, r.error
    assert [e.type for e in r.events] == [
        "bridge.refused",
        "bridge.expired",
        "bridge.minted",
    ]
    assert r.events[0].attributes["rule"] == "sanctions"
    assert r.events[0].attributes["nonce"] == bad
    wrapped = f"{A}/{denom}"
    assert get_balance(net[B].chain.state, addr(net, B, "carol"), wrapped) == 0
    assert get_balance(net[B].chain.state, addr(net, B, "bob"), wrapped) == 30
    assert net[B].chain.query("bridge", "received", {"remote_chain": A, "nonce": bad}) == "expired"
    refusal = net[B].chain.query("bridge", "refusal", {"remote_chain": A, "nonce": bad})
    assert isinstance(refusal, dict)
    assert refusal["rule"] == "sanctions"
    assert net[B].chain.query("bridge", "refusal", {"remote_chain": A, "nonce": good}) is None
    # the same proof again: consumed, refused, nothing moves
    assert net.deliver(B, net.pending(A, B, include_done=True))[0].code == "AlreadyProcessed"
    # the relay planner carries the expiry back; the source refunds alice (and the good
    # transfer's mint comes back as its acknowledgement)
    r, ack = net.relay(B, A)
    assert r.ok, r.error
    assert [e.type for e in r.events] == ["bridge.refunded"]
    assert [e.type for e in ack.events] == ["bridge.acknowledged"]
    # both settled: the source's records are pruned
    for n in (bad, good):
        assert net[A].chain.query("bridge", "sent", {"remote_chain": B, "nonce": n}) is None
    assert get_balance(net[A].chain.state, alice, denom) == before - 30
    assert_conserved(net)
    assert net.pending(A, B) == []
    assert net.pending(B, A) == []


def test_destination_kyc_and_limits_refuse_on_arrival(net: LocalNet) -> None:
    gov(net, B, "register_provider", pubkey=PROVIDER.public_key.hex(), name="eu kyc")
    policy(net, B, A, min_kyc_level=2, limit=100, window_ms=60_000)
    register_kyc(net, B, "bob", level=2)
    refused_ = [lock(net, 10, to="carol"), lock(net, 101, to="bob")]  # no KYC; over the limit
    ok = [lock(net, 60, to="bob"), lock(net, 40, to="bob")]  # exactly at the limit
    over = lock(net, 1, to="bob")
    net.deliver(B, net.collect(A, B))
    rules = {
        int(e.attributes["nonce"]): e.attributes["rule"]
        for e in events_of(net, B, "bridge.refused")
    }
    assert rules == {refused_[0]: "kyc.level", refused_[1]: "aml.limit", over: "aml.limit"}
    minted = {int(e.attributes["nonce"]) for e in events_of(net, B, "bridge.minted")}
    assert minted == set(ok)
    net.settle(A, B)
    for n in [*refused_, over]:  # refunded: pruned, and a second refund is refused
        assert net[A].chain.query("bridge", "sent", {"remote_chain": B, "nonce": n}) is None
    refunded = [int(e.attributes["nonce"]) for e in events_of(net, A, "bridge.refunded")]
    assert sorted(refunded) == sorted([*refused_, over])
    assert_conserved(net)


def test_travel_rule_on_arrival_and_the_officer_reads_it(net: LocalNet) -> None:
    officer = BoxPrivateKey.generate()
    gov(net, B, "set_travel_key", pubkey=bytes(officer.public_key).hex())
    policy(net, B, A, travel_rule_threshold=100)
    without = lock(net, 150, to="carol")  # the source has no policy: it lets it go
    key = bytes.fromhex(str(net[B].chain.query("compliance", "travel_key", {})))
    data = b"originator: alice, 1 Main St, US; beneficiary: carol, DE"
    sealed = seal_travel_rule(data, key)
    r = net.call(A, "alice", "bridge", "lock", lock_args(net, 150, travel_rule=sealed.hex()))
    assert r.ok, r.error
    locked, travel = r.events
    assert travel.type == "bridge.travel_rule"
    assert locked.attributes["travel_rule"] == hashlib.sha256(sealed).hexdigest()
    with_data = int(locked.attributes["nonce"])
    net.deliver(B, net.collect(A, B))
    (ref,) = events_of(net, B, "bridge.refused")
    assert (ref.attributes["nonce"], ref.attributes["rule"]) == (without, "travel_rule")
    (minted,) = events_of(net, B, "bridge.minted")
    assert minted.attributes["nonce"] == with_data
    # the officer reads what was sent, and it is what the packet committed to
    got = bytes.fromhex(str(travel.attributes["data"]))
    assert hashlib.sha256(got).hexdigest() == locked.attributes["travel_rule"]
    assert open_travel_rule(got, bytes(officer)) == data
    net.settle(A, B)
    assert_conserved(net)


# --- attestations ------------------------------------------------------------------------


def test_attestations_from_unregistered_expired_or_for_another_address_are_refused(
    net: LocalNet,
) -> None:
    alice, mallory = net.key(A, "alice"), net.key(A, "bob")
    att = attestation(net, A, "alice")
    err = refused(
        net, A, "alice", "compliance", "attest", attest_args(att, alice), ComplianceRefused
    )
    assert err.rule == "kyc.provider"
    gov(net, A, "register_provider", pubkey=PROVIDER.public_key.hex(), name="acme kyc")
    stale = attestation(net, A, "alice", expiry=net.time)
    err = refused(
        net, A, "alice", "compliance", "attest", attest_args(stale, alice), ComplianceRefused
    )
    assert err.rule == "kyc.expired"
    # bob submits alice's attestation with his own key and a proof for it
    err = refused(
        net, A, "bob", "compliance", "attest", attest_args(att, mallory), ComplianceRefused
    )
    assert err.rule == "kyc.address"
    # alice's key, but a proof made for another attestation: refused as a proof
    other = attestation(net, A, "alice", level=3)
    args = {**attest_args(att, alice), "proof": prove_holder(other, alice.seed).hex()}
    refused(net, A, "alice", "compliance", "attest", args, ProofRejected)
    forged = dataclasses.replace(att, level=9)
    err = refused(
        net, A, "alice", "compliance", "attest", attest_args(forged, alice), ComplianceRefused
    )
    assert err.rule == "kyc.signature"
    # anyone may submit it with the holder's proof; the chain records it for the address
    r = net.call(A, "bob", "compliance", "attest", attest_args(att, alice))
    assert r.ok, r.error
    got = net[A].chain.query("compliance", "attestation", {"address": alice.address})
    assert got == att.to_json()


# --- governance and hostile arguments ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("register_provider", {"pubkey": "00" * 32, "name": "x"}),
        ("revoke_provider", {"pubkey": "00" * 32}),
        ("deny", {"address": "ab" * 20}),
        ("allow", {"address": "ab" * 20}),
        ("set_policy", {"remote_chain": B, "jurisdiction": "*", **POLICY}),
        ("clear_policy", {"remote_chain": B, "jurisdiction": "*"}),
        ("set_travel_key", {"pubkey": "00" * 32}),
    ],
)
def test_only_governance_sets_compliance(net: LocalNet, method: str, args: dict[str, Any]) -> None:
    refused(net, A, "alice", "compliance", method, args, Unauthorized)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("register_provider", {"pubkey": "zz" * 32, "name": "x"}),
        ("register_provider", {"pubkey": "00" * 32, "name": ""}),
        ("revoke_provider", {"pubkey": "00" * 32}),  # never registered
        ("deny", {"address": "AB" * 20}),
        ("allow", {"address": "ab" * 20}),  # not denied
        ("set_policy", {"remote_chain": B, "jurisdiction": "usa", **POLICY}),
        ("set_policy", {"remote_chain": "a/b", "jurisdiction": "*", **POLICY}),
        ("set_policy", {"remote_chain": B, "jurisdiction": "*", **POLICY, "limit": -5}),
        ("set_policy", {"remote_chain": B, "jurisdiction": "*", **POLICY, "window_ms": 0}),
        ("clear_policy", {"remote_chain": B, "jurisdiction": "*"}),  # none set
        ("set_travel_key", {"pubkey": "00"}),
        ("attest", {"attestation": "x", "public_key": "00" * 32, "proof": "00" * 64}),
        ("attest", {}),
    ],
)
def test_hostile_compliance_arguments_are_refused(
    net: LocalNet, method: str, args: dict[str, Any]
) -> None:
    refused(net, A, "gov", "compliance", method, args, InvalidArgument)


@pytest.mark.parametrize("travel", ["", "AB", "abc", "zz", "ab" * 2049, 7])
def test_hostile_travel_rule_argument_is_refused(net: LocalNet, travel: object) -> None:
    refused(
        net, A, "alice", "bridge", "lock", lock_args(net, 10, travel_rule=travel), InvalidArgument
    )


def test_a_refused_packet_changes_nothing_but_its_record(net: LocalNet) -> None:
    gov(net, B, "deny", address=addr(net, B, "carol"))
    nonce = lock(net, 5, to="carol")
    items = net.collect(A, B)
    before = dict(net[B].chain.state.items("bank/"))
    (r,) = net.deliver(B, items)
    assert [e.type for e in r.events] == ["bridge.refused", "bridge.expired"]
    assert dict(net[B].chain.state.items("bank/")) == before
    # not even the wrapped denom's registration: the first transfer of usd never arrived
    assert net[B].chain.query("bridge", "wrapped", {"denom": f"{A}/usd"}) is None
    assert {k for k, _ in net[B].chain.state.items("compliance/window/")} == set()
    assert net[B].chain.query("bridge", "received", {"remote_chain": A, "nonce": nonce}) == (
        "expired"
    )

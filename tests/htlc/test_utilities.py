"""The decred/atomicswap-style verbs, by hand, on two devnet chains."""

from __future__ import annotations

import pytest

from chains.devnet import DEFAULT_BALANCE
from htlc.errors import InsufficientTime, SecretNotFound, TermMismatch
from htlc.swap import audit, extract_secret, initiate, participate, redeem, refund
from htlc.types import Lock, LockStatus, LockTerms
from tests.htlc.helpers import Sim, devnet


def lock_view(sim: Sim, lock_id: bytes) -> Lock:
    raw = sim.query("lock", {"lock_id": lock_id.hex()})
    return Lock.from_json({**raw, "chain_id": sim.chain_id})


def test_initiate_participate_redeem_extract_redeem() -> None:
    da, db = devnet(2)
    A, B = Sim(da), Sim(db)
    alice_a, bob_a = A.key("alice"), A.key("bob")
    alice_b, bob_b = B.key("alice"), B.key("bob")

    # alice: initiate (makes the secret, signs the lock of leg A)
    init = initiate(
        alice_a, A.chain_id, 0, receiver=bob_a.address, denom="usd", amount=50, timelock=40
    )
    assert A.produce([init.tx]).receipts[0].ok
    # bob: audit alice's lock (what was agreed, still open, enough time), then participate
    audit(lock_view(A, init.terms.lock_id), init.terms, height=A.height, min_blocks=30)
    with pytest.raises(InsufficientTime):
        audit(lock_view(A, init.terms.lock_id), init.terms, height=A.height, min_blocks=50)
    terms_b, tx = participate(
        bob_b,
        B.chain_id,
        0,
        receiver=alice_b.address,
        denom="eur",
        amount=45,
        hashlock=init.terms.hashlock,
        timelock=20,
    )
    assert B.produce([tx]).receipts[0].ok
    # alice: audit bob's lock, then redeem it (revealing the secret on chain B)
    audit(lock_view(B, terms_b.lock_id), terms_b, height=B.height, min_blocks=10)
    with pytest.raises(SecretNotFound):
        extract_secret(B.chain_id, B.blocks[B.height].events, init.terms.hashlock)
    block = B.produce([redeem(alice_b, B.chain_id, 0, terms_b.lock_id, init.secret)])
    assert block.receipts[0].ok
    # bob: extract the secret from B's claim event and redeem alice's lock on A
    secret = extract_secret(B.chain_id, block.events, init.terms.hashlock)
    assert secret == init.secret
    assert A.produce([redeem(bob_a, A.chain_id, 0, init.terms.lock_id, secret)]).receipts[0].ok
    assert A.balance(bob_a) == DEFAULT_BALANCE + 50
    assert B.balance(alice_b) == DEFAULT_BALANCE + 45
    assert lock_view(A, init.terms.lock_id).status is LockStatus.CLAIMED


def test_audit_catches_a_wrong_lock_and_refund_returns_funds() -> None:
    (da,) = devnet(1)
    A = Sim(da)
    alice, bob = A.key("alice"), A.key("bob")
    init = initiate(alice, A.chain_id, 0, receiver=bob.address, denom="usd", amount=5, timelock=4)
    assert A.produce([init.tx]).receipts[0].ok
    agreed = LockTerms(A.chain_id, alice.address, bob.address, "usd", 6, init.terms.hashlock, 4)
    with pytest.raises(TermMismatch, match="amount"):
        audit(lock_view(A, init.terms.lock_id), agreed)
    A.advance_to(3)
    assert A.produce([refund(bob, A.chain_id, 0, init.terms.lock_id)]).receipts[0].ok
    assert A.balance(alice) == DEFAULT_BALANCE

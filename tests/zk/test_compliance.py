from __future__ import annotations

import dataclasses
import hashlib

import pytest

from chains.crypto import PrivateKey
from zk.compliance import (
    ComplianceRefused,
    KycAttestation,
    Policy,
    prove_holder,
    validate_attestation,
    validate_transfer,
)
from zk.errors import ProofRejected

PROVIDER = PrivateKey.derive("test", "kyc-provider")
HOLDER = PrivateKey.derive("test", "alice")
NOW = 1_700_000_000_000


def attest(holder: PrivateKey = HOLDER, expiry: int = NOW + 1000) -> KycAttestation:
    unsigned = KycAttestation(
        holder.address,
        "US",
        2,
        expiry,
        hashlib.sha256(b"alice's passport").digest(),
        PROVIDER.public_key,
        b"",
    )
    return dataclasses.replace(unsigned, signature=PROVIDER.sign(unsigned.signed_bytes()))


def test_a_live_attestation_with_the_holders_proof_passes() -> None:
    att = attest()
    validate_attestation(
        att, HOLDER.public_key, prove_holder(att, HOLDER.seed), [PROVIDER.public_key], NOW
    )


@pytest.mark.parametrize(
    ("case", "rule"),
    [
        ("expired", "kyc.expired"),
        ("unregistered", "kyc.provider"),
        ("other_address", "kyc.address"),
        ("forged", "kyc.signature"),
    ],
)
def test_attestation_refusals_name_the_rule(case: str, rule: str) -> None:
    att = attest(expiry=NOW) if case == "expired" else attest()
    providers = [PROVIDER.public_key]
    holder = HOLDER
    if case == "unregistered":
        providers = [PrivateKey.derive("test", "other-provider").public_key]
    if case == "other_address":
        holder = PrivateKey.derive("test", "mallory")
    if case == "forged":
        att = dataclasses.replace(att, level=3)
    with pytest.raises(ComplianceRefused) as err:
        validate_attestation(att, holder.public_key, prove_holder(att, holder.seed), providers, NOW)
    assert err.value.rule == rule


def test_the_holder_proof_is_bound_to_its_attestation() -> None:
    att = attest()
    other = attest(expiry=NOW + 2000)
    with pytest.raises(ProofRejected):
        validate_attestation(
            other, HOLDER.public_key, prove_holder(att, HOLDER.seed), [PROVIDER.public_key], NOW
        )


POLICY = Policy(2, 1000, 60_000, frozenset({"bad"}), 500)
LEVELS = {"a": 2, "b": 2, "bad": 3, "low": 1}


def check(
    amount: int,
    history: tuple[tuple[int, int], ...] = (),
    to: str = "b",
    travel: bytes | None = bytes(32),
) -> None:
    validate_transfer(POLICY, "a", to, amount, LEVELS, history, travel, NOW)


def test_limits_at_their_edges_over_a_sliding_window() -> None:
    check(1000)
    check(400, ((NOW - 59_999, 600),))  # inside the window, exactly at the limit
    with pytest.raises(ComplianceRefused, match=r"aml\.limit"):
        check(401, ((NOW - 59_999, 600),))
    check(1000, ((NOW - 60_000, 600),))  # just left the window


@pytest.mark.parametrize(
    ("to", "amount", "travel", "rule"),
    [
        ("bad", 10, None, "sanctions"),
        ("low", 10, None, "kyc.level"),
        ("nobody", 10, None, "kyc.level"),
        ("b", 500, None, "travel_rule"),
    ],
)
def test_transfer_refusals_name_the_rule(
    to: str, amount: int, travel: bytes | None, rule: str
) -> None:
    with pytest.raises(ComplianceRefused) as err:
        check(amount, to=to, travel=travel)
    assert err.value.rule == rule
    check(499, travel=None)

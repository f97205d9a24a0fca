from __future__ import annotations

import dataclasses
import hashlib

import pytest
from nacl.public import PrivateKey as BoxPrivateKey

from chains.crypto import PrivateKey
from chains.errors import InvalidArgument
from zk.compliance import (
    RULES,
    ComplianceRefused,
    KycAttestation,
    Policy,
    open_travel_rule,
    prove_holder,
    seal_travel_rule,
    validate_attestation,
    validate_sanctions,
    validate_transfer,
)
from zk.errors import MalformedEncoding, ProofRejected

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


POLICY = Policy(min_kyc_level=2, limit=1000, window_ms=60_000, travel_rule_threshold=500)


def check(
    amount: int,
    history: tuple[tuple[int, int], ...] = (),
    level: int = 2,
    travel: bytes | None = bytes(32),
) -> None:
    validate_transfer(POLICY, "sender", level, amount, history, travel, NOW)


def test_limits_at_their_edges_over_a_sliding_window() -> None:
    check(1000)
    with pytest.raises(ComplianceRefused, match=r"aml\.limit"):
        check(1001)
    check(400, ((NOW - 59_999, 600),))  # inside the window, exactly at the limit
    with pytest.raises(ComplianceRefused, match=r"aml\.limit"):
        check(401, ((NOW - 59_999, 600),))
    check(1000, ((NOW - 60_000, 600),))  # just left the window
    # not fixed buckets: 600 late in one minute and 400 early in the next still add up
    with pytest.raises(ComplianceRefused, match=r"aml\.limit"):
        check(401, ((NOW - 1, 600),))


@pytest.mark.parametrize(
    ("level", "amount", "travel", "rule"),
    [
        (1, 10, None, "kyc.level"),
        (0, 10, None, "kyc.level"),
        (2, 500, None, "travel_rule"),
        (2, 500, bytes(31), "travel_rule"),
    ],
)
def test_transfer_refusals_name_the_rule(
    level: int, amount: int, travel: bytes | None, rule: str
) -> None:
    with pytest.raises(ComplianceRefused) as err:
        check(amount, level=level, travel=travel)
    assert err.value.rule == rule
    assert rule in RULES
    check(499, travel=None)


def test_a_denied_party_is_refused_whichever_side_it_is() -> None:
    validate_sanctions({"bad"}, {"sender": "a", "recipient": "b"})
    for who in ("sender", "recipient"):
        parties = {"sender": "a", "recipient": "b", who: "bad"}
        with pytest.raises(ComplianceRefused, match=who) as err:
            validate_sanctions({"bad"}, parties)
        assert err.value.rule == "sanctions"


def test_policy_from_hostile_json_is_refused_by_field() -> None:
    assert Policy.from_json(POLICY.to_json()) == POLICY
    for name, bad in [
        ("limit", 0),
        ("limit", True),
        ("window_ms", "60000"),
        ("min_kyc_level", -1),
        ("travel_rule_threshold", None),
    ]:
        with pytest.raises(InvalidArgument, match=name):
            Policy.from_json({**POLICY.to_json(), name: bad})


def test_attestation_from_hostile_json_is_refused_by_field() -> None:
    att = attest()
    assert KycAttestation.from_json(att.to_json()) == att
    for name, bad in [
        ("address", "A" * 40),
        ("jurisdiction", "usa"),
        ("level", 0),
        ("expiry_ms", -1),
        ("data_hash", "00"),
        ("signature", "G" * 128),
    ]:
        with pytest.raises(InvalidArgument, match=name):
            KycAttestation.from_json({**att.to_json(), name: bad})
    with pytest.raises(InvalidArgument):
        KycAttestation.from_json({**att.to_json(), "extra": 1})
    with pytest.raises(InvalidArgument):
        KycAttestation.from_json([1, 2])


def test_travel_rule_data_opens_only_with_the_compliance_secret() -> None:
    officer = BoxPrivateKey.generate()
    sealed = seal_travel_rule(
        b"originator: alice, US; beneficiary: carol, DE", bytes(officer.public_key)
    )
    assert open_travel_rule(sealed, bytes(officer)) == (
        b"originator: alice, US; beneficiary: carol, DE"
    )
    with pytest.raises(MalformedEncoding):
        open_travel_rule(sealed, bytes(BoxPrivateKey.generate()))
    with pytest.raises(MalformedEncoding):
        seal_travel_rule(b"x", b"short")

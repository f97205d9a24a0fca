"""BFT proof-of-authority commits, proposer rotation, and governed validator-set changes."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from chains.consensus import sign_commit, tally_commit, verify_commit
from chains.crypto import PrivateKey
from chains.errors import (
    DuplicateSigner,
    InsufficientVotingPower,
    InvalidCommit,
    UnknownSigner,
)
from chains.types import Commit, CommitSig, Header, ValidatorSet, vote_sign_bytes
from tests.chains.helpers import Driver, devnet

KEYS = [PrivateKey.derive("consensus-test", str(i)) for i in range(6)]


def _set(powers: list[int]) -> ValidatorSet:
    return ValidatorSet.of([(k.public_key, p) for k, p in zip(KEYS, powers, strict=False)])


def _header(vals: ValidatorSet, height: int = 5, chain_id: str = "chain-x") -> Header:
    return Header(
        chain_id, height, 5_000, bytes([9]) * 32, bytes([1]) * 32, 0, bytes([2]) * 32, 0,
        bytes([3]) * 32, vals.hash, vals.hash, vals.proposer(height).public_key,
    )  # fmt: skip


def _keys_of(vals: ValidatorSet, n: int) -> list[PrivateKey]:
    by_pk = {k.public_key: k for k in KEYS}
    return [by_pk[v.public_key] for v in vals.validators[:n]]


def test_full_commit_verifies() -> None:
    vals = _set([10, 10, 10, 10])
    h = _header(vals)
    verify_commit(h, sign_commit(h, _keys_of(vals, 4)), vals)
    assert tally_commit(h, sign_commit(h, _keys_of(vals, 4)), vals) == 40


def test_exactly_two_thirds_is_not_enough() -> None:
    vals = _set([10, 10, 10])
    h = _header(vals)
    with pytest.raises(InsufficientVotingPower) as exc:
        verify_commit(h, sign_commit(h, _keys_of(vals, 2)), vals)
    assert (exc.value.signed, exc.value.total) == (20, 30)
    verify_commit(h, sign_commit(h, _keys_of(vals, 3)), vals)


def test_more_than_two_thirds_by_power_not_by_count() -> None:
    vals = _set([70, 10, 10, 10])
    big = next(k for k in KEYS if vals.by_key.get(k.public_key) == 70)
    small = [k for k in KEYS[:4] if k is not big]
    h = _header(vals)
    verify_commit(h, sign_commit(h, [big]), vals)  # 70 of 100
    with pytest.raises(InsufficientVotingPower):
        verify_commit(h, sign_commit(h, small), vals)  # 30 of 100


def test_empty_commit_is_insufficient() -> None:
    vals = _set([10, 10, 10, 10])
    h = _header(vals)
    with pytest.raises(InsufficientVotingPower):
        verify_commit(h, Commit(h.height, h.hash, ()), vals)


def test_duplicated_signer_is_refused() -> None:
    vals = _set([10, 10, 10, 10])
    h = _header(vals)
    good = sign_commit(h, _keys_of(vals, 2))  # 20 of 40: padded with a duplicate -> 30
    padded = Commit(h.height, h.hash, (*good.signatures, good.signatures[0]))
    with pytest.raises(DuplicateSigner):
        verify_commit(h, padded, vals)


def test_signer_outside_the_set_is_refused() -> None:
    vals = _set([10, 10, 10, 10])
    h = _header(vals)
    outsider = KEYS[5]
    assert outsider.public_key not in vals.by_key
    commit = sign_commit(h, [*_keys_of(vals, 3), outsider])
    with pytest.raises(UnknownSigner):
        verify_commit(h, commit, vals)


def test_bad_signature_is_refused() -> None:
    vals = _set([10, 10, 10, 10])
    h = _header(vals)
    commit = sign_commit(h, _keys_of(vals, 4))
    s0 = commit.signatures[0]
    bad = CommitSig(s0.validator, bytes([s0.signature[0] ^ 1]) + s0.signature[1:])
    with pytest.raises(InvalidCommit):
        verify_commit(
            h, dataclasses.replace(commit, signatures=(bad, *commit.signatures[1:])), vals
        )
    # a signature by another validator's key in this validator's slot
    swapped = CommitSig(s0.validator, commit.signatures[1].signature)
    with pytest.raises(InvalidCommit):
        verify_commit(
            h, dataclasses.replace(commit, signatures=(swapped, *commit.signatures[1:])), vals
        )


def test_commit_for_another_header_is_refused() -> None:
    vals = _set([10, 10, 10, 10])
    h = _header(vals)
    other = dataclasses.replace(h, time=h.time + 1)
    commit = sign_commit(other, _keys_of(vals, 4))
    with pytest.raises(InvalidCommit):
        verify_commit(h, commit, vals)
    # claiming the right hash and height does not help: the votes are over the other hash
    relabelled = Commit(h.height, h.hash, commit.signatures)
    with pytest.raises(InvalidCommit):
        verify_commit(h, relabelled, vals)
    # nor the commit of another height
    with pytest.raises(InvalidCommit):
        verify_commit(h, dataclasses.replace(sign_commit(h, _keys_of(vals, 4)), height=6), vals)


def test_votes_are_bound_to_the_chain() -> None:
    vals = _set([10, 10, 10, 10])
    h = _header(vals, chain_id="chain-x")
    h_other = dataclasses.replace(h, chain_id="chain-y")
    commit = sign_commit(h, _keys_of(vals, 4))
    with pytest.raises(InvalidCommit):
        verify_commit(h_other, Commit(h.height, h_other.hash, commit.signatures), vals)
    assert vote_sign_bytes("chain-x", 5, h.hash) != vote_sign_bytes("chain-y", 5, h.hash)


def test_a_tx_signature_is_not_a_vote() -> None:
    from chains.encoding import sign_bytes

    vals = _set([10, 10, 10, 10])
    h = _header(vals)
    body = {"chain_id": h.chain_id, "height": h.height, "block_hash": h.hash.hex()}
    sigs = tuple(
        sorted(
            (CommitSig(k.public_key, k.sign(sign_bytes("tx", body))) for k in _keys_of(vals, 4)),
            key=lambda s: s.validator,
        )
    )
    with pytest.raises(InvalidCommit):
        verify_commit(h, Commit(h.height, h.hash, sigs), vals)


# --- proposer rotation ----------------------------------------------------------------


def test_proposer_rotation_is_weighted() -> None:
    vals = _set([1, 2, 3, 4])
    counts = Counter(vals.proposer(h).public_key for h in range(1, 10 * vals.total_power + 1))
    assert {vals.by_key[k]: c for k, c in counts.items()} == {1: 10, 2: 20, 3: 30, 4: 40}


def test_every_validator_proposes_in_turn() -> None:
    vals = _set([10, 10, 10, 10])
    window = {vals.proposer(h).public_key for h in range(1, vals.total_power + 1)}
    assert window == set(vals.by_key)


def test_produced_headers_name_the_rotating_proposer() -> None:
    d = Driver(devnet("chain-a")[0])
    for _ in range(3):
        res = d.produce()
        h = res.block.header
        assert h.proposer == res.validators.proposer(h.height).public_key


# --- validator sets ---------------------------------------------------------------------


def test_validator_set_must_be_sorted_and_unique() -> None:
    from chains.errors import EncodingError
    from chains.types import Validator

    a, b = sorted([KEYS[0].public_key, KEYS[1].public_key])
    with pytest.raises(EncodingError):
        ValidatorSet((Validator(b, 1), Validator(a, 1)))
    with pytest.raises(EncodingError):
        ValidatorSet((Validator(a, 1), Validator(a, 1)))
    with pytest.raises(EncodingError):
        ValidatorSet((Validator(a, 0),))
    with pytest.raises(EncodingError):
        ValidatorSet(())


def test_producing_without_two_thirds_of_the_keys_changes_nothing() -> None:
    d = Driver(devnet("chain-a")[0])
    root = d.chain.state.root()
    with pytest.raises(InsufficientVotingPower):
        d.chain.produce_block([], 1_000, d.dc.validator_keys[:2])
    assert d.chain.height == 0
    assert d.chain.state.root() == root


def test_only_governance_changes_the_validator_set() -> None:
    d = Driver(devnet("chain-a")[0])
    newcomer = PrivateKey.derive("newcomer")
    args = {"public_key": newcomer.public_key.hex(), "power": 10}
    res = d.run("alice", "validators", "set_power", args)
    assert res.block.receipts[0].code == "Unauthorized"
    assert res.block.header.next_validators_hash == res.block.header.validators_hash
    assert newcomer.public_key not in d.chain.validators.by_key


def test_validator_set_change_shows_in_next_hash_and_signs_from_the_next_height() -> None:
    d = Driver(devnet("chain-a")[0])
    newcomer = PrivateKey.derive("newcomer")
    d.keys.append(newcomer)
    old = d.chain.validators
    gone = d.dc.validator_keys[0]
    res = d.produce(
        [
            d.tx(
                "gov",
                "validators",
                "set_power",
                {"public_key": newcomer.public_key.hex(), "power": 10},
            ),
        ]
    )
    assert res.block.receipts[0].ok, res.block.receipts[0].error
    d2 = d.produce(
        [d.tx("gov", "validators", "set_power", {"public_key": gone.public_key.hex(), "power": 0})]
    )
    h1, h2 = res.block.header, d2.block.header
    # block H announces the change; H itself is still signed by the old set
    assert h1.validators_hash == old.hash
    assert h1.next_validators_hash != old.hash
    assert h2.validators_hash == h1.next_validators_hash
    assert d2.validators.by_key.get(newcomer.public_key) == 10
    assert newcomer.public_key in {s.validator for s in d2.block.commit.signatures}
    verify_commit(h2, d2.block.commit, d2.validators)
    # H+2 is signed by the set without the removed validator
    d3 = d.produce()
    assert gone.public_key not in d3.validators.by_key
    assert gone.public_key not in {s.validator for s in d3.block.commit.signatures}
    assert d3.block.header.validators_hash == h2.next_validators_hash
    verify_commit(d3.block.header, d3.block.commit, d3.validators)
    # the old set cannot commit H+2
    with pytest.raises((UnknownSigner, InsufficientVotingPower)):
        verify_commit(d3.block.header, d3.block.commit, old)


def test_the_set_cannot_become_empty() -> None:
    (dc,) = devnet("chain-a", validators=1)
    d = Driver(dc)
    only = dc.validator_keys[0]
    res = d.run("gov", "validators", "set_power", {"public_key": only.public_key.hex(), "power": 0})
    assert res.block.receipts[0].code == "InvalidArgument"

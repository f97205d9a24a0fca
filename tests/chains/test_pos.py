"""Proof of stake, the engine: the formula recomputed from the documented bytes, the seal,
the slot rule, the staking module (bond, unbond, unbonding period) and a stake change
taking effect at its documented height."""

from __future__ import annotations

import dataclasses
import itertools
import json
from hashlib import sha256

import pytest
from nacl.signing import VerifyKey

from chains.bank import get_balance, get_supply
from chains.chain import Chain, Genesis
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.errors import (
    ConfigError,
    IneligibleProposer,
    InvalidConsensusParams,
    InvalidProposerSignature,
    InvalidSeal,
    NoEligibleProposer,
    TimeOutOfWindow,
    ValidatorSetMismatch,
)
from chains.pos import (
    PosParams,
    PosTip,
    devnet_pos_params,
    get_pos_and_header_hash,
    get_pos_hash,
    get_seal_bytes,
    is_eligible,
    propose,
    validate_pos_header,
)
from chains.staking import ESCROW, StakingModule
from chains.types import Block, Header, Tx, ValidatorSet
from chains.validators import ValidatorsModule

PARAMS = devnet_pos_params(finality_depth=3)
S = "chain-s"


def pos_devnet(params: PosParams = PARAMS) -> DevnetChain:
    return build_devnet((S,), consensus={S: params})[0]


def grow(chain: Chain, dc: DevnetChain, n: int, txs: list[Tx] | None = None) -> list[Block]:
    out = []
    for i in range(n):
        batch = txs if txs and i == 0 else []
        out.append(chain.produce_block(batch, chain.last_time + 1_000, dc.validator_keys).block)
    return out


@pytest.fixture(scope="module")
def dc() -> DevnetChain:
    return pos_devnet()


@pytest.fixture(scope="module")
def blocks(dc: DevnetChain) -> list[Block]:
    return grow(dc.build(), dc, 24)


def stake_of(dc: DevnetChain, proposer: bytes) -> int:
    return dc.genesis.validators.by_key[proposer]


# --- the engine seam ------------------------------------------------------------------


def test_a_pos_genesis_commits_to_its_params_and_a_bft_one_is_unchanged(dc: DevnetChain) -> None:
    g = dc.genesis.to_json()
    assert g["consensus"] == PARAMS.to_json()
    assert Genesis.from_json(g).hash == dc.genesis.hash
    bft = build_devnet((S,))[0]
    assert "consensus" not in bft.genesis.to_json()
    assert "staking" not in bft.genesis.to_json()["app_state"]
    h = bft.build().produce_block([], 1_000, bft.validator_keys).block.header
    assert not {"slot", "seal"} & set(h.to_json())


@pytest.mark.parametrize(
    "change",
    [
        {"engine": "pow"},
        {"target": "00" * 32},
        {"target": "ZZ" * 32},
        {"target": "AB" * 32},  # upper case is not canonical
        {"epoch_length": 0},
        {"unbonding_blocks": 1},  # shorter than an epoch
        {"finality_depth": True},
        {"min_block_ms": 0},
        {"extra": 1},
    ],
)
def test_hostile_params_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidConsensusParams):
        PosParams.from_json({**PARAMS.to_json(), **change})


def test_a_pos_chain_needs_staking_and_not_governance_validators(dc: DevnetChain) -> None:
    with pytest.raises(ConfigError):
        Chain(dc.genesis, base_modules())  # the BFT modules: validators, no staking
    with pytest.raises(ConfigError):
        Chain(dc.genesis, [*base_modules(PARAMS), ValidatorsModule()])
    bft = build_devnet((S,))[0]
    with pytest.raises(InvalidConsensusParams):  # staking on a BFT chain
        Chain(bft.genesis, [*base_modules(), StakingModule()])


# --- the formula ----------------------------------------------------------------------


def test_the_formula_recomputed_from_the_documented_bytes(
    dc: DevnetChain, blocks: list[Block]
) -> None:
    for block in blocks:
        h = block.header
        d = h.to_json()
        seal = bytes.fromhex(d.pop("seal"))
        data = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        validator = bytes.fromhex(d["proposer"])
        digest = sha256(validator + bytes.fromhex(d["prev_hash"]) + data).digest()
        assert digest == get_pos_hash(h)
        assert get_pos_and_header_hash(h)[:2] == (digest, h.hash)  # the client's shortcut
        target = int(PARAMS.to_json()["target"], 16)  # type: ignore[arg-type]
        assert int.from_bytes(digest, "big") < target * stake_of(dc, validator)
        # the seal: ed25519 over sign_bytes("pos_seal", hex of the hash), by the proposer
        msg = b"interlock/v1/pos_seal\x00" + json.dumps(digest.hex()).encode()
        VerifyKey(validator).verify(msg, seal)
        assert block.commit.signatures == ()  # sealed by stake, not votes


def test_the_proposer_takes_the_lowest_eligible_slot_then_the_lowest_hash(
    dc: DevnetChain, blocks: list[Block]
) -> None:
    keys = dc.validator_keys
    slots = []
    for block in blocks:
        h = block.header
        assert h.slot is not None
        slots.append(h.slot)
        for slot in range(h.slot + 1):
            eligible = []
            for k in keys:
                c = dataclasses.replace(h, proposer=k.public_key, slot=slot, seal=b"")
                ph = get_pos_hash(c)
                if is_eligible(ph, stake_of(dc, k.public_key), PARAMS.target):
                    eligible.append((ph, k.public_key))
            if slot < h.slot:
                assert eligible == [], "an earlier slot had an eligible proposer"
            else:
                assert min(eligible)[1] == h.proposer
    assert max(slots) > 0, "24 blocks at ~1 eligible per slot skip some slot"


def test_the_chain_links_and_each_header_passes_the_rules(
    dc: DevnetChain, blocks: list[Block]
) -> None:
    parent = PosTip(0, dc.genesis.time, dc.genesis.validators.hash)
    for prev, block in itertools.pairwise([None, *blocks]):
        h = block.header
        if prev is not None:
            assert h.prev_hash == prev.header.hash
        assert Header.from_json(h.to_json()) == h
        validate_pos_header(PARAMS, parent, h, dc.genesis.validators, h.time)
        parent = PosTip(h.height, h.time, h.next_validators_hash)


def test_forged_and_ineligible_headers_are_refused(dc: DevnetChain, blocks: list[Block]) -> None:
    h = blocks[5].header
    prev = blocks[4].header
    parent = PosTip(prev.height, prev.time, prev.next_validators_hash)
    table = dc.genesis.validators
    validate_pos_header(PARAMS, parent, h, table, h.time)
    stranger = PrivateKey.derive("stranger")
    # a key outside the stake table, whatever its hash: stake 0 is never eligible
    forged = propose(PARAMS, h, ValidatorSet.of([(stranger.public_key, 40)]), [stranger])
    with pytest.raises(IneligibleProposer):
        validate_pos_header(PARAMS, parent, forged, table, h.time)
    # a validator that is not eligible at this slot signs anyway
    others = [k for k in dc.validator_keys if k.public_key != h.proposer]
    ineligible = next(
        c
        for c in (
            dataclasses.replace(h, proposer=k.public_key, slot=s) for s in range(64) for k in others
        )
        if not is_eligible(get_pos_hash(c), stake_of(dc, c.proposer), PARAMS.target)
    )
    key = next(k for k in others if k.public_key == ineligible.proposer)
    signed = dataclasses.replace(
        ineligible, seal=key.sign(get_seal_bytes(get_pos_hash(ineligible)))
    )
    with pytest.raises(IneligibleProposer):
        validate_pos_header(PARAMS, parent, signed, table, h.time)
    # the eligible header's seal by someone else, or a changed body under its seal
    with pytest.raises(InvalidProposerSignature):
        validate_pos_header(PARAMS, parent, dataclasses.replace(h, seal=bytes(64)), table, h.time)
    moved = dataclasses.replace(h, event_count=h.event_count + 1)
    with pytest.raises((InvalidProposerSignature, IneligibleProposer)):
        validate_pos_header(PARAMS, parent, moved, table, h.time)
    # time, table and shape
    early = dataclasses.replace(h, time=prev.time + PARAMS.min_block_ms - 1)
    with pytest.raises(TimeOutOfWindow):
        validate_pos_header(PARAMS, parent, early, table, h.time)
    with pytest.raises(TimeOutOfWindow):  # from the future
        validate_pos_header(PARAMS, parent, h, table, h.time - PARAMS.max_future_ms - 1)
    with pytest.raises(ValidatorSetMismatch):
        validate_pos_header(PARAMS, parent, h, forged_table(table), h.time)
    with pytest.raises(InvalidSeal):
        validate_pos_header(PARAMS, parent, dataclasses.replace(h, slot=None), table, h.time)


def forged_table(table: ValidatorSet) -> ValidatorSet:
    return ValidatorSet.of([(v.public_key, v.power * 2) for v in table.validators])


def test_a_node_without_a_staked_key_cannot_propose(dc: DevnetChain) -> None:
    chain = dc.build()
    with pytest.raises(ConfigError):
        chain.produce_block([], 1_000, [PrivateKey.derive("stranger")])
    header = grow(dc.build(), dc, 1)[0].header
    with pytest.raises(NoEligibleProposer):
        propose(PARAMS, header, dc.genesis.validators, [PrivateKey.derive("stranger")])


# --- staking --------------------------------------------------------------------------


def staking_tx(key: PrivateKey, chain: Chain, method: str, args: dict[str, object]) -> Tx:
    return Tx.create(key, chain.chain_id, chain.next_nonce(key.address), "staking", method, args)


def test_a_stake_change_takes_effect_at_the_next_epoch_and_unbonds_after_the_period() -> None:
    dc = pos_devnet()
    chain = dc.build()
    escrow_before = get_balance(chain.state, ESCROW, dc.denom)
    assert escrow_before == 40  # the genesis validators' bonds, minted to the escrow
    alice = dc.accounts["alice"]
    new_stake = 1_000
    grow(chain, dc, 2)  # height 2, inside epoch 0 (heights 1..8)
    tx = staking_tx(alice, chain, "bond", {"public_key": alice.public_key.hex(), "amount": 1_000})
    bonded_at = chain.produce_block([tx], chain.last_time + 1_000, dc.validator_keys).block
    assert bonded_at.receipts[0].ok, bonded_at.receipts[0].error
    assert bonded_at.header.height == 3
    assert get_balance(chain.state, ESCROW, dc.denom) == escrow_before + new_stake
    assert chain.query("staking", "bond", {"public_key": alice.public_key.hex()}) == new_stake
    # the documented height: ceil(3 / 8) * 8 + 1 = 9; until then, the genesis table
    blocks = grow(chain, dc, 7)
    by_height = {b.header.height: b.header for b in [bonded_at, *blocks]}
    genesis_table = dc.genesis.validators.hash
    for height in range(3, 9):
        assert by_height[height].validators_hash == genesis_table
    assert by_height[8].next_validators_hash != genesis_table  # announced by the last block
    new_table = chain.validators
    assert new_table.by_key[alice.public_key] == new_stake
    assert by_height[9].validators_hash == new_table.hash
    # alice's 1000 make her eligible at every slot (target · 1000 > 2^256): no slot is
    # skipped any more, and she proposes whenever her hash is the lowest eligible one
    keys = [*dc.validator_keys, alice]
    later = [chain.produce_block([], chain.last_time + 1_000, keys).block for _ in range(8)]
    assert all(b.header.slot == 0 for b in later)
    assert any(b.header.proposer == alice.public_key for b in later)

    # unbond: the stake leaves the table at the next epoch, the funds come back after
    # unbonding_blocks (16), not before
    before = get_balance(chain.state, alice.address, dc.denom)
    tx = staking_tx(alice, chain, "unbond", {"public_key": alice.public_key.hex(), "amount": 600})
    unbond = chain.produce_block([tx], chain.last_time + 1_000, keys).block
    assert unbond.receipts[0].ok, unbond.receipts[0].error
    due = unbond.header.height + PARAMS.unbonding_blocks
    while chain.height < due - 1:
        chain.produce_block([], chain.last_time + 1_000, keys)
    assert get_balance(chain.state, alice.address, dc.denom) == before
    assert chain.validators.by_key[alice.public_key] == 400
    last = chain.produce_block([], chain.last_time + 1_000, keys).block
    assert last.header.height == due
    assert get_balance(chain.state, alice.address, dc.denom) == before + 600
    assert [e.type for e in last.events] == ["staking.unbonded"]
    assert get_supply(chain.state, dc.denom) == sum(
        get_balance(chain.state, a, dc.denom)
        for a in [ESCROW, *(k.address for k in dc.accounts.values())]
    )


def test_hostile_staking_calls_fail_and_change_nothing() -> None:
    dc = pos_devnet()
    chain = dc.build()
    alice, bob = dc.accounts["alice"], dc.accounts["bob"]
    v0 = dc.validator_keys[0]
    me = alice.public_key.hex()
    cases = [
        (bob, "bond", {"public_key": me, "amount": 5}, "Unauthorized"),
        (alice, "bond", {"public_key": me, "amount": 0}, "InvalidArgument"),
        (alice, "bond", {"public_key": "zz", "amount": 5}, "InvalidArgument"),
        (alice, "bond", {"public_key": me, "amount": 10**13}, "InsufficientFunds"),
        (alice, "unbond", {"public_key": me, "amount": 1}, "InsufficientStake"),
        (alice, "unbond", {"public_key": me}, "InvalidArgument"),
        (alice, "slash", {}, "UnknownMethod"),
    ]
    before = dict(chain.state.items("staking/"))
    escrow = get_balance(chain.state, ESCROW, dc.denom)
    for key, method, args, code in cases:
        tx = staking_tx(key, chain, method, args)
        r = chain.produce_block([tx], chain.last_time + 1_000, dc.validator_keys).block.receipts[0]
        assert (r.ok, r.code) == (False, code), (method, args, r.error)
    assert dict(chain.state.items("staking/")) == before
    assert get_balance(chain.state, ESCROW, dc.denom) == escrow
    # the validators' own keys are not funded accounts: their bond stays
    assert chain.query("staking", "bond", {"public_key": v0.public_key.hex()}) == 10

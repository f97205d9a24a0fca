"""The PoS light client: it follows eligible, signed headers, learns stake changes only
through proven headers, applies the documented fork choice whatever the order branches
arrive in, refuses forks below its final height, and proves only final heights.

Chains built from one PoS genesis but fed different block times are branches of one
chain: the client sees them all."""

from __future__ import annotations

import dataclasses
import json
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.chain import Chain
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, build_devnet
from chains.errors import (
    ChainIdMismatch,
    ForkBelowFinality,
    IneligibleProposer,
    InvalidProposerSignature,
    NotFinal,
    TimeOutOfWindow,
    TooManyBranches,
    UnknownParent,
    ValidatorSetMismatch,
)
from chains.headerchain import MAX_SEGMENT_RECORDS
from chains.lightclient import get_client_state, get_consensus_state, verify_event
from chains.pos import devnet_pos_params, get_pos_hash, get_seal_bytes, propose
from chains.posclient import (
    get_pos_client,
    get_stake_table,
    process_create_pos_client,
    process_update_pos_client,
)
from chains.state import State
from chains.types import Block, Header, Tx, ValidatorSet
from tests.chains.helpers import transfer

PARAMS = devnet_pos_params(finality_depth=3)
S = "chain-s"
NOW = 10**9


@dataclasses.dataclass
class Built:
    """A chain's blocks and the stake table each names as next."""

    blocks: list[Block]
    next_tables: dict[int, ValidatorSet]


def build(
    dc: DevnetChain,
    n: int,
    step: int = 1_000,
    txs: dict[int, list[Tx]] | None = None,
    prefix: list[Block] | None = None,
    keys: list[PrivateKey] | None = None,
) -> Built:
    chain: Chain = dc.build()
    out = Built([], {0: dc.genesis.validators})
    for b in prefix or []:
        r = chain.produce_block(list(b.txs), b.header.time, keys or dc.validator_keys)
        assert r.block.header == b.header
        out.blocks.append(r.block)
        out.next_tables[chain.height] = chain.validators
    for _ in range(n):
        height = chain.height + 1
        r = chain.produce_block(
            (txs or {}).get(height, []), chain.last_time + step, keys or dc.validator_keys
        )
        out.blocks.append(r.block)
        out.next_tables[height] = chain.validators
    return out


@pytest.fixture(scope="module")
def dc() -> DevnetChain:
    return build_devnet((S,), consensus={S: PARAMS})[0]


@pytest.fixture(scope="module")
def main_chain(dc: DevnetChain) -> Built:
    return build(dc, 10)


def new_client(built: Built, at: int = 1) -> tuple[State, str]:
    state = State()
    cp = built.blocks[at - 1].header
    cid = process_create_pos_client(state, PARAMS, cp, built.next_tables[at])
    return state, cid


def headers(built: Built, lo: int, hi: int) -> list[Header]:
    return [b.header for b in built.blocks[lo - 1 : hi]]


def test_the_client_follows_and_proves_only_final_heights(dc: DevnetChain) -> None:
    alice, bob = dc.accounts["alice"], dc.accounts["bob"]
    tx = transfer(alice, S, 0, bob.address, 5, dc.denom)
    built = build(dc, 7, txs={2: [tx]})
    state, cid = new_client(built)
    assert process_update_pos_client(state, cid, headers(built, 2, 4), [], NOW) == "best"
    client = get_pos_client(state, cid)
    assert (client.best_height, client.final_height) == (4, 1)
    p = built.blocks[1].prove_event(0)
    with pytest.raises(NotFinal):
        verify_event(state, cid, 2, p.event, p.index, p.proof, NOW)
    assert process_update_pos_client(state, cid, headers(built, 5, 5), [], NOW) == "best"
    verify_event(state, cid, 2, p.event, p.index, p.proof, NOW)
    assert get_client_state(state, cid).latest_height == 2
    assert get_consensus_state(state, cid, 2).header_hash == built.blocks[1].header.hash
    assert process_update_pos_client(state, cid, headers(built, 2, 5), [], NOW) == "duplicate"


def test_a_stake_change_reaches_the_client_only_through_proven_headers(dc: DevnetChain) -> None:
    alice = dc.accounts["alice"]
    bond = Tx.create(
        alice, S, 0, "staking", "bond", {"public_key": alice.public_key.hex(), "amount": 500}
    )
    built = build(dc, 12, txs={3: [bond]}, keys=[*dc.validator_keys, alice])
    new_table = built.next_tables[8]  # announced by the epoch's last header, height 8
    assert new_table.by_key.get(alice.public_key) == 500
    assert built.blocks[8].header.validators_hash == new_table.hash  # height 9 uses it
    state, cid = new_client(built)
    # without the new table, or with a made-up one, height 9 cannot be judged
    with pytest.raises(ValidatorSetMismatch):
        process_update_pos_client(state, cid, headers(built, 2, 12), [], NOW)
    forged = ValidatorSet.of([(alice.public_key, 10**6)])
    with pytest.raises(ValidatorSetMismatch):
        process_update_pos_client(state, cid, headers(built, 2, 12), [forged], NOW)
    assert get_stake_table(state, cid, new_table.hash) is None
    assert process_update_pos_client(state, cid, headers(built, 2, 12), [new_table], NOW) == "best"
    assert get_stake_table(state, cid, new_table.hash) == new_table


def test_a_header_announcing_a_table_off_an_epoch_boundary_is_refused(
    dc: DevnetChain, main_chain: Built
) -> None:
    state, cid = new_client(main_chain)
    h = main_chain.blocks[1].header  # height 2: not an epoch's last height
    key = next(k for k in dc.validator_keys if k.public_key == h.proposer)
    stranger = PrivateKey.derive("stranger")
    moved = dataclasses.replace(
        h, next_validators_hash=ValidatorSet.of([(stranger.public_key, 10**6)]).hash
    )
    resealed = propose(PARAMS, moved, main_chain.next_tables[1], [key, *dc.validator_keys])
    with pytest.raises(ValidatorSetMismatch):
        process_update_pos_client(state, cid, [resealed], [], NOW)


def test_forged_and_ineligible_headers_are_refused_and_change_nothing(
    dc: DevnetChain, main_chain: Built
) -> None:
    state, cid = new_client(main_chain)
    good = main_chain.blocks[1].header
    table = main_chain.next_tables[1]
    before = dict(state.items(""))
    stranger = PrivateKey.derive("stranger")
    # a stranger seals with itself as proposer: stake 0 in the client's table
    by_stranger = propose(PARAMS, good, ValidatorSet.of([(stranger.public_key, 40)]), [stranger])
    # a validator that is not eligible at this slot signs anyway
    ineligible = next(
        c
        for c in (
            dataclasses.replace(good, proposer=k.public_key, slot=s)
            for s in range(64)
            for k in dc.validator_keys
        )
        if int.from_bytes(get_pos_hash(c), "big") >= PARAMS.target * 10
    )
    key = next(k for k in dc.validator_keys if k.public_key == ineligible.proposer)
    ineligible = dataclasses.replace(
        ineligible, seal=key.sign(get_seal_bytes(get_pos_hash(ineligible)))
    )
    cases: list[tuple[Header, type[Exception]]] = [
        (by_stranger, IneligibleProposer),
        (ineligible, IneligibleProposer),
        (dataclasses.replace(good, seal=bytes(64)), InvalidProposerSignature),
        (dataclasses.replace(good, chain_id="chain-x"), ChainIdMismatch),
        (dataclasses.replace(good, prev_hash=bytes(32)), UnknownParent),
        (dataclasses.replace(good, time=main_chain.blocks[0].header.time), TimeOutOfWindow),
    ]
    for header, error in cases:
        with pytest.raises(error):
            process_update_pos_client(state, cid, [header], [table], NOW)
    with pytest.raises(TimeOutOfWindow):  # from the future
        process_update_pos_client(state, cid, [good], [], good.time - PARAMS.max_future_ms - 1)
    with pytest.raises(UnknownParent):  # not linked to each other
        process_update_pos_client(state, cid, [good, main_chain.blocks[3].header], [], NOW)
    assert dict(state.items("")) == before


def test_a_branch_forking_below_the_final_height_is_refused(
    dc: DevnetChain, main_chain: Built
) -> None:
    state, cid = new_client(main_chain)
    process_update_pos_client(state, cid, headers(main_chain, 2, 9), [], NOW)
    assert get_pos_client(state, cid).final_height == 6
    attack = build(dc, 12, step=999, prefix=main_chain.blocks[:3])  # longer, forks at 3
    before = dict(state.items(""))
    for hi in (6, 15):  # shorter, and longer than the best branch
        with pytest.raises(ForkBelowFinality):
            process_update_pos_client(state, cid, headers(attack, 4, hi), [], NOW)
    assert dict(state.items("")) == before


# --- the fork choice, as a property -------------------------------------------------


def branch_key(run: list[Header], common_slots: int) -> tuple[int, int, int]:
    """The documented order, recomputed from the headers: (height, -slots, -pos_hash)."""
    tip = run[-1]
    slots = common_slots + sum(h.slot or 0 for h in run)
    digest = sha256(tip.proposer + tip.prev_hash + _data(tip)).digest()
    return (tip.height, -slots, -int.from_bytes(digest, "big"))


def _data(h: Header) -> bytes:
    d = h.to_json()
    del d["seal"]
    return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def branches(dc: DevnetChain) -> tuple[Built, list[Built]]:
    common = build(dc, 2)
    return common, [build(dc, 3, step=1_000 + 7 * i, prefix=common.blocks) for i in range(4)]


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 3), min_size=2, max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_the_best_branch_is_the_documented_maximum_in_any_order(
    branches: tuple[Built, list[Built]], lengths: list[int], order: object
) -> None:
    common, forks = branches
    state, cid = new_client(common)
    assert process_update_pos_client(state, cid, headers(common, 2, 2), [], NOW) == "best"
    runs = [headers(forks[i], 3, 2 + n) for i, n in enumerate(lengths)]
    delivered = list(range(len(runs)))
    order.shuffle(delivered)  # type: ignore[attr-defined]
    best_height = final_height = 0
    for i in delivered:
        process_update_pos_client(state, cid, runs[i], [], NOW)
        client = get_pos_client(state, cid)
        # the best tip never gets shorter and nothing final is ever replaced
        assert client.best_height >= best_height
        assert client.final_height >= final_height
        best_height, final_height = client.best_height, client.final_height
    common_slots = common.blocks[1].header.slot or 0
    want = max(runs, key=lambda run: branch_key(run, common_slots))
    assert get_pos_client(state, cid).best_hash == want[-1].hash


def test_side_branches_cannot_grow_a_segment_past_its_bound(
    dc: DevnetChain, main_chain: Built
) -> None:
    """Anyone may submit valid side headers; a segment of heights keeps at most
    MAX_SEGMENT_RECORDS of them, and the best branch may still add its own."""
    state, cid = new_client(main_chain)
    h2 = main_chain.blocks[1].header
    table = main_chain.next_tables[1]
    outcomes = []
    refused = 0
    for i in range(MAX_SEGMENT_RECORDS + 20):
        variant = propose(
            PARAMS, dataclasses.replace(h2, time=h2.time + i), table, dc.validator_keys
        )
        try:
            outcomes.append(process_update_pos_client(state, cid, [variant], [], NOW))
        except TooManyBranches:
            refused += 1
    assert refused > 0
    assert "side" in outcomes
    seg = next(v for _, v in state.items("lightclient/pos/seg/"))
    assert len(seg["records"]) <= MAX_SEGMENT_RECORDS + outcomes.count("best")
    # a full segment still takes the best branch's next header
    best = get_pos_client(state, cid)
    h3 = main_chain.blocks[2].header
    child = dataclasses.replace(h3, prev_hash=best.best_hash, time=h2.time + 10_000)
    child = propose(PARAMS, child, table, dc.validator_keys)
    assert process_update_pos_client(state, cid, [child], [], NOW) == "best"

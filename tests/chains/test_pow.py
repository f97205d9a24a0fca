"""Proof of work: the formula recomputed from the documented bytes, the retarget rule's
bounds, the light client's fork choice and depth rule, and every tamper case.

Two chains built from one PoW genesis but fed different block times are two branches of
one chain: the light client sees both."""

from __future__ import annotations

import dataclasses
import itertools
import json
from hashlib import sha256

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chains.chain import Chain, Genesis
from chains.devnet import DevnetChain, build_devnet
from chains.errors import (
    ChainIdMismatch,
    ConsensusStateNotFound,
    ForkBelowFinality,
    InsufficientWork,
    InvalidArgument,
    InvalidConsensusParams,
    InvalidProof,
    NotFinal,
    TimeOutOfWindow,
    UnknownParent,
    WrongTarget,
)
from chains.lightclient import get_client_state, get_consensus_state, verify_event
from chains.pow import (
    PowParams,
    TipInfo,
    compute_next_target,
    compute_retarget,
    devnet_pow_params,
    get_pow_and_header_hash,
    get_work,
    is_work_valid,
    mine,
    target_bytes,
    target_int,
)
from chains.powclient import (
    get_pow_client,
    process_create_pow_client,
    process_update_pow_client,
)
from chains.state import State
from chains.types import Block, Header
from tests.chains.helpers import transfer

PARAMS = devnet_pow_params(finality_depth=3)


def pow_devnet(params: PowParams = PARAMS) -> DevnetChain:
    return build_devnet(("chain-w",), consensus={"chain-w": params})[0]


def grow(chain: Chain, dc: DevnetChain, n: int, step: int = 1_000) -> list[Block]:
    return [
        chain.produce_block([], chain.last_time + step, dc.validator_keys).block for _ in range(n)
    ]


@pytest.fixture(scope="module")
def dc() -> DevnetChain:
    return pow_devnet()


@pytest.fixture(scope="module")
def main_branch(dc: DevnetChain) -> list[Block]:
    return grow(dc.build(), dc, 12)


def new_client(dc: DevnetChain, blocks: list[Block]) -> tuple[State, str]:
    state = State()
    params = dc.genesis.consensus
    assert params is not None
    cid = process_create_pow_client(state, params, blocks[0].header, dc.genesis.time)
    return state, cid


NOW = 10**9


# --- the engine seam ------------------------------------------------------------------


def test_a_bft_genesis_and_header_encode_as_before() -> None:
    bft = build_devnet(("chain-a",))[0]
    assert "consensus" not in bft.genesis.to_json()
    h = bft.build().produce_block([], 1_000, bft.validator_keys).block.header
    assert "target" not in h.to_json()
    assert "nonce" not in h.to_json()
    assert Header.from_json(h.to_json()) == h


def test_a_pow_genesis_commits_to_its_params_and_round_trips(dc: DevnetChain) -> None:
    g = dc.genesis.to_json()
    assert g["consensus"] == PARAMS.to_json()
    assert Genesis.from_json(g).hash == dc.genesis.hash
    assert dc.genesis.hash != build_devnet(("chain-w",))[0].genesis.hash


@pytest.mark.parametrize(
    "change",
    [
        {"engine": "bft"},
        {"initial_target": "00" * 32},
        {"initial_target": "zz" * 32},
        {"max_target": "00" + "01" * 31},  # below initial_target
        {"retarget_window": 0},
        {"max_adjust": True},
        {"finality_depth": -1},
        {"extra": 1},
    ],
)
def test_hostile_params_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidConsensusParams):
        PowParams.from_json({**PARAMS.to_json(), **change})


# --- the formula ----------------------------------------------------------------------


def test_the_formula_recomputed_from_the_documented_bytes(main_branch: list[Block]) -> None:
    for block in main_branch:
        h = block.header
        d = h.to_json()
        nonce = d.pop("nonce")
        data = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
        digest = sha256(nonce.to_bytes(8, "big") + h.prev_hash + data).digest()
        assert int.from_bytes(digest, "big") < int(d["target"], 16)
        assert is_work_valid(h)
        assert get_pow_and_header_hash(h)[:2] == (digest, h.hash)  # the client's shortcut
        assert block.commit.signatures == ()  # sealed by work, not signatures


def test_the_chain_links_and_carries_the_rules_target(main_branch: list[Block]) -> None:
    for prev, block in itertools.pairwise(main_branch):
        assert block.header.prev_hash == prev.header.hash
        assert target_int(block.header.target) == PARAMS.initial_target


def test_a_changed_header_loses_its_work(main_branch: list[Block]) -> None:
    h = main_branch[3].header
    # the nonce that met the target for these bytes almost surely misses for others
    bad = [dataclasses.replace(h, time=h.time + i) for i in range(1, 6)]
    assert not all(is_work_valid(b) for b in bad)
    assert not is_work_valid(dataclasses.replace(h, nonce=None))


def test_mining_is_bounded_by_tries() -> None:
    dc = pow_devnet()
    h = grow(dc.build(), dc, 1)[0].header
    hard = dataclasses.replace(h, target=target_bytes(1), nonce=None)
    assert mine(hard, tries=100) is None


# --- retarget -------------------------------------------------------------------------


@given(
    st.integers(1, 2**240),
    st.integers(-(10**9), 10**9),
)
def test_a_retarget_moves_at_most_max_adjust(parent: int, span: int) -> None:
    p = PowParams(2**200, 2**250, 1_000, 16, 4, 6, 0)
    new = compute_retarget(p, parent, span)
    assert 1 <= new <= p.max_target
    assert new <= parent * 4
    assert new >= min(parent // 4, p.max_target) - 1


def test_the_target_changes_only_at_a_window_boundary() -> None:
    p = PowParams(2**200, 2**250, 1_000, 16, 4, 6, 0)
    slow = TipInfo(16, 32_000, 2**200, 0)  # 16 blocks in 32 s: twice as slow
    assert compute_next_target(p, slow) == 2**201  # easier
    fast = TipInfo(16, 4_000, 2**200, 0)  # 4x faster than asked
    assert compute_next_target(p, fast) == 2**198  # harder, by the bound
    assert compute_next_target(p, TipInfo(15, 4_000, 2**200, 0)) == 2**200
    assert compute_next_target(p, TipInfo(0, 0, 0, 0)) == p.initial_target


def test_a_node_retargets_across_windows() -> None:
    p = PowParams(2**256 // 64, 2**256 // 16, 1_000, 4, 4, 3, 0)
    dc = pow_devnet(p)
    chain = dc.build()
    blocks = grow(chain, dc, 9, step=4_000)  # 4x slower than asked: easier each window
    targets = [target_int(b.header.target) for b in blocks]
    assert targets[:4] == [p.initial_target] * 4
    assert targets[4] == p.max_target  # 4x easier, capped at max_target
    state, cid = new_client(dc, blocks)
    assert process_update_pow_client(state, cid, [b.header for b in blocks[1:]], NOW) == "best"


# --- the light client -----------------------------------------------------------------


def test_the_client_follows_and_proves_only_final_heights(
    dc: DevnetChain, main_branch: list[Block]
) -> None:
    state, cid = new_client(dc, main_branch)
    outcome = process_update_pow_client(state, cid, [b.header for b in main_branch[1:6]], NOW)
    assert outcome == "best"
    client = get_pow_client(state, cid)
    assert (client.best_height, client.final_height) == (6, 3)
    assert client.best_score == 5 * get_work(PARAMS.initial_target)
    assert get_client_state(state, cid).latest_height == 3
    assert get_consensus_state(state, cid, 3).header_hash == main_branch[2].header.hash
    with pytest.raises(NotFinal):
        get_consensus_state(state, cid, 4)
    # the same headers again change nothing
    assert process_update_pow_client(state, cid, [b.header for b in main_branch[1:6]], NOW) == (
        "duplicate"
    )


def test_an_event_is_proven_at_a_final_height_only() -> None:
    dc = pow_devnet()
    chain = dc.build()
    alice, bob = dc.accounts["alice"], dc.accounts["bob"]
    blocks = grow(chain, dc, 1)
    tx = transfer(alice, chain.chain_id, 0, bob.address, 5, dc.denom)
    blocks.append(chain.produce_block([tx], chain.last_time + 1_000, dc.validator_keys).block)
    blocks += grow(chain, dc, 3)
    state, cid = new_client(dc, blocks)
    lock_block = blocks[1]
    p = lock_block.prove_event(0)
    process_update_pow_client(state, cid, [b.header for b in blocks[1:4]], NOW)
    with pytest.raises(NotFinal):  # height 2 at tip 4: only 2 deep
        verify_event(state, cid, 2, p.event, p.index, p.proof, NOW)
    process_update_pow_client(state, cid, [blocks[4].header], NOW)
    verify_event(state, cid, 2, p.event, p.index, p.proof, NOW)
    forged = dataclasses.replace(p.event, attributes={**p.event.attributes, "amount": 6})
    with pytest.raises(InvalidProof):
        verify_event(state, cid, 2, forged, p.index, p.proof, NOW)


def test_more_work_reorganises_less_work_stays_aside(dc: DevnetChain) -> None:
    base = dc.build()
    common = grow(base, dc, 2)
    # two branches from height 2, built apart: a short one and a longer one
    short, long_ = dc.build(), dc.build()
    for c in (short, long_):
        for blk in common:
            c.produce_block([], blk.header.time, dc.validator_keys)
    a = grow(short, dc, 2, step=1_000)
    b = grow(long_, dc, 3, step=1_001)
    assert a[0].header.hash != b[0].header.hash
    state, cid = new_client(dc, common)
    process_update_pow_client(state, cid, [common[1].header], NOW)
    assert process_update_pow_client(state, cid, [h.header for h in a], NOW) == "best"
    assert get_pow_client(state, cid).best_hash == a[-1].header.hash
    assert process_update_pow_client(state, cid, [h.header for h in b[:2]], NOW) == "side"
    assert get_pow_client(state, cid).best_hash == a[-1].header.hash  # a tie keeps it
    assert process_update_pow_client(state, cid, [b[2].header], NOW) == "best"
    client = get_pow_client(state, cid)
    assert (client.best_hash, client.best_height) == (b[-1].header.hash, 5)
    assert get_consensus_state(state, cid, 2).header_hash == common[1].header.hash


def test_a_branch_forking_below_the_final_height_is_refused(
    dc: DevnetChain, main_branch: list[Block]
) -> None:
    state, cid = new_client(dc, main_branch)
    process_update_pow_client(state, cid, [b.header for b in main_branch[1:8]], NOW)
    assert get_pow_client(state, cid).final_height == 5
    attack = dc.build()
    for b in main_branch[:3]:
        attack.produce_block([], b.header.time, dc.validator_keys)
    branch = grow(attack, dc, 10, step=999)  # more work, but forks at 3 < final 5
    before = dict(state.items(""))
    with pytest.raises(ForkBelowFinality):
        process_update_pow_client(state, cid, [h.header for h in branch], NOW)
    assert dict(state.items("")) == before


def test_tampered_headers_are_refused_and_change_nothing(
    dc: DevnetChain, main_branch: list[Block]
) -> None:
    state, cid = new_client(dc, main_branch)
    good = main_branch[1].header
    before = dict(state.items(""))
    cases: list[tuple[Header, type[Exception]]] = [
        (dataclasses.replace(good, target=target_bytes(PARAMS.initial_target // 2)), WrongTarget),
        (dataclasses.replace(good, time=main_branch[0].header.time), TimeOutOfWindow),
        (dataclasses.replace(good, chain_id="chain-x"), ChainIdMismatch),
        (dataclasses.replace(good, prev_hash=bytes(32)), UnknownParent),
    ]
    for header, error in cases:
        with pytest.raises(error):
            process_update_pow_client(state, cid, [header], NOW)
    with pytest.raises(TimeOutOfWindow):  # from the future
        process_update_pow_client(state, cid, [good], good.time - PARAMS.max_future_ms - 1)
    # a nonce that misses the target
    nonce = good.nonce or 0
    bad = next(
        h
        for h in (dataclasses.replace(good, nonce=nonce + i) for i in range(1, 10**6))
        if not is_work_valid(h)
    )
    with pytest.raises(InsufficientWork):
        process_update_pow_client(state, cid, [bad], NOW)
    with pytest.raises(InvalidArgument):
        process_update_pow_client(state, cid, [], NOW)
    with pytest.raises(UnknownParent):  # not linked to each other
        process_update_pow_client(state, cid, [good, main_branch[3].header], NOW)
    assert dict(state.items("")) == before
    with pytest.raises(ConsensusStateNotFound):
        get_consensus_state(state, cid, 0)

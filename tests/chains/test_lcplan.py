"""The header-update planner (chains.lcplan): sequential, skipping, bisection under
validator churn, expired trust, forged blocks; and the host chain's own light client
accepts every update it plans."""

from __future__ import annotations

import dataclasses

import pytest

from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.errors import (
    InvalidCommit,
    InvalidPlan,
    PlanNotFinished,
    TrustingPeriodExpired,
    UnexpectedBlock,
    ValidatorSetMismatch,
)
from chains.lcplan import LightBlock, UpdatePlanner, needs_refresh
from chains.lightclient import (
    HeaderUpdate,
    get_client_state,
    process_create_client,
    process_update_client,
)
from chains.state import State
from chains.types import Commit, CommitSig, Tx, ValidatorSet
from tests.chains.helpers import Driver, devnet

TP = 1_000_000  # trusting period, ms
DRIFT = 5_000


def churning(blocks: int, every: int, seed: str = "interlock-devnet") -> Driver:
    """Chain B for ``blocks`` heights; every ``every`` heights one of its 4 validators
    (equal power) is replaced by a newcomer: 1/4 of the set at a time, below 1/3."""
    d = Driver(devnet("chain-a", "chain-b", seed=seed)[1])
    gov = d.key("gov")
    n = 0
    while d.chain.height < blocks:
        txs: list[Tx] = []
        if every and d.chain.height % every == every - 1:
            newcomer = PrivateKey.derive(seed, "newcomer", str(n))
            oldest = d.keys[n]  # validators leave in the order they came
            n += 1
            d.keys.append(newcomer)
            nonce = d.chain.next_nonce(gov.address)
            for i, (key, power) in enumerate(((newcomer, 10), (oldest, 0))):
                args = {"public_key": key.public_key.hex(), "power": power}
                txs.append(Tx.create(gov, d.chain_id, nonce + i, "validators", "set_power", args))
        res = d.produce(txs)
        assert all(r.ok for r in res.block.receipts)
    return d


def light_block(d: Driver, height: int) -> LightBlock:
    res = d.results[height]
    return LightBlock(res.block.header, res.block.commit, res.validators, d.next_validators(height))


def now_at(d: Driver, height: int) -> int:
    return d.results[height].block.header.time + 500


def planner(d: Driver, trusted: int, target: int, **kw: object) -> UpdatePlanner:
    params: dict[str, object] = {"now": now_at(d, target), "trusting_period": TP}
    params |= {"max_clock_drift": DRIFT, **kw}
    return UpdatePlanner(light_block(d, trusted), target, **params)  # type: ignore[arg-type]


def run(p: UpdatePlanner, fetch) -> list[int]:  # type: ignore[no-untyped-def]
    """Drive the planner as a relayer would; returns the heights fetched."""
    fetched = []
    while (h := p.next_height()) is not None:
        fetched.append(h)
        p.provide(fetch(h))
    return fetched


def host_accepts(d: Driver, trusted: int, updates: list[HeaderUpdate], now: int) -> None:
    """The on-chain client, created at ``trusted``, stores every update in order."""
    state = State()
    res = d.results[trusted]
    create = HeaderUpdate(res.block.header, res.block.commit, res.validators, trusted, None)
    cid = process_create_client(state, create, TP, DRIFT)
    for u in updates:
        assert process_update_client(state, cid, u, now) == "stored"
    assert get_client_state(state, cid).latest_height == updates[-1].header.height


@pytest.fixture(scope="module")
def steady() -> Driver:
    return churning(30, every=0)


@pytest.fixture(scope="module")
def churn() -> Driver:
    return churning(120, every=6)


# --- the plans --------------------------------------------------------------------------


def test_sequential(steady: Driver) -> None:
    p = planner(steady, 5, 6)
    assert run(p, lambda h: light_block(steady, h)) == [6]
    (u,) = p.updates()
    assert (u.header.height, u.trusted_height, u.trusted_validators) == (6, 5, None)
    assert p.signature_checks == 4
    host_accepts(steady, 5, [u], now_at(steady, 6))


def test_skipping_without_churn_is_one_update(steady: Driver) -> None:
    p = planner(steady, 1, 30)
    assert run(p, lambda h: light_block(steady, h)) == [30]
    (u,) = p.updates()
    assert (u.header.height, u.trusted_height) == (30, 1)
    assert p.signature_checks == 8  # trusted share, then the new set's 2/3
    host_accepts(steady, 1, [u], now_at(steady, 30))


def test_bisection_under_churn(churn: Driver) -> None:
    p = planner(churn, 1, 120)
    fetched = run(p, lambda h: light_block(churn, h))
    updates = p.updates()
    heights = [u.header.height for u in updates]
    assert heights[-1] == 120
    assert heights == sorted(heights)
    assert len(updates) > 1  # the set at 120 shares nothing with the one at 1
    # each update is verified from the one before it
    assert [u.trusted_height for u in updates] == [1, *heights[:-1]]
    assert len(set(fetched)) == len(fetched) < 119
    assert p.signature_checks < 119 * 4 / 4
    host_accepts(churn, 1, updates, now_at(churn, 120))


def test_sequential_and_skipping_reach_the_same_header(churn: Driver) -> None:
    trusted = 1
    checks = 0
    for h in range(2, 41):
        p = planner(churn, trusted, h)
        run(p, lambda x: light_block(churn, x))
        checks += p.signature_checks
        trusted = h
    skip = planner(churn, 1, 40)
    run(skip, lambda x: light_block(churn, x))
    assert skip.updates()[-1].header == churn.results[40].block.header
    assert checks == 39 * 4
    assert skip.signature_checks < checks


def test_a_lack_of_trust_costs_no_signature_checks(churn: Driver) -> None:
    # from 1, the set at 120 holds none of the trusted power: bisect at once, check nothing
    p = planner(churn, 1, 120)
    p.provide(light_block(churn, 120))
    assert p.next_height() == 60
    assert p.signature_checks == 0
    with pytest.raises(PlanNotFinished):
        p.updates()


# --- trust and hostile blocks ---------------------------------------------------------


def test_expired_trust(steady: Driver) -> None:
    trusted_time = steady.results[1].block.header.time
    with pytest.raises(TrustingPeriodExpired):
        planner(steady, 1, 30, now=trusted_time + TP)
    p = planner(steady, 1, 30, now=trusted_time + TP - 1)
    run(p, lambda h: light_block(steady, h))
    assert len(p.updates()) == 1


def _fails(p: UpdatePlanner, block: LightBlock, error: type[Exception]) -> None:
    with pytest.raises(error):
        p.provide(block)
    assert p.next_height() is None
    with pytest.raises(PlanNotFinished):
        p.updates()


def test_a_forged_header_fails_the_plan(steady: Driver) -> None:
    real = light_block(steady, 30)
    forged = dataclasses.replace(real.header, state_root=b"\x07" * 32)
    _fails(planner(steady, 1, 30), dataclasses.replace(real, header=forged), InvalidCommit)


def test_forged_signatures_claiming_trust_fail_the_plan(steady: Driver) -> None:
    real = light_block(steady, 30)
    sigs = tuple(CommitSig(s.validator, bytes(64)) for s in real.commit.signatures)
    bad = dataclasses.replace(real, commit=Commit(30, real.commit.block_hash, sigs))
    _fails(planner(steady, 1, 30), bad, InvalidCommit)


def test_a_forged_next_set_fails_the_plan(steady: Driver) -> None:
    real = light_block(steady, 30)
    _fails(
        planner(steady, 1, 30),
        dataclasses.replace(
            real,
            next_validators=ValidatorSet.of([(PrivateKey.derive("x").public_key, 10)]),
        ),
        ValidatorSetMismatch,
    )


def test_a_fork_by_strangers_fails_at_the_adjacent_height(steady: Driver) -> None:
    """Another chain under the same id, its own validators: it never has the trusted
    set's signatures, so the planner bisects down to height 2, where the sequential rule
    refuses it."""
    fork = churning(30, every=0, seed="attacker")
    p = planner(steady, 1, 30, now=max(now_at(steady, 30), now_at(fork, 30)))
    with pytest.raises(ValidatorSetMismatch):
        run(p, lambda h: light_block(fork, h))
    assert p.signature_checks == 0
    with pytest.raises(PlanNotFinished):
        p.updates()


def test_a_block_of_another_height_is_refused_and_changes_nothing(steady: Driver) -> None:
    p = planner(steady, 1, 30)
    with pytest.raises(UnexpectedBlock):
        p.provide(light_block(steady, 29))
    assert p.next_height() == 30
    run(p, lambda h: light_block(steady, h))
    with pytest.raises(UnexpectedBlock):
        p.provide(light_block(steady, 30))  # done: nothing more wanted
    assert len(p.updates()) == 1


@pytest.mark.parametrize(
    "kw",
    [
        {"target": 1},
        {"target": 0},
        {"target": "30"},
        {"trust_level": (1, 4)},
        {"trust_level": (4, 3)},
        {"trust_level": (1, 0)},
        {"trust_level": (True, 3)},
        {"trust_level": 1},
        {"trusting_period": 0},
        {"max_clock_drift": -1},
        {"now": None},
        {"trusted_hash": b"\x00" * 32},
    ],
)
def test_hostile_parameters(steady: Driver, kw: dict[str, object]) -> None:
    params = {"now": now_at(steady, 30), "trusting_period": TP, "max_clock_drift": DRIFT}
    target = kw.pop("target", 30)
    with pytest.raises(InvalidPlan):
        UpdatePlanner(light_block(steady, 1), target, **{**params, **kw})  # type: ignore[arg-type]


def test_the_trusted_hash_is_checked(steady: Driver) -> None:
    p = planner(steady, 1, 30, trusted_hash=steady.results[1].block.header.hash)
    assert p.next_height() == 30


def test_not_a_light_block(steady: Driver) -> None:
    p = planner(steady, 1, 30)
    with pytest.raises(InvalidPlan):
        p.provide(steady.results[30].block)  # type: ignore[arg-type]
    assert p.next_height() == 30


def test_a_commit_of_another_header_fails(steady: Driver) -> None:
    real = light_block(steady, 30)
    other = sign_commit(steady.results[29].block.header, steady.keys)
    _fails(planner(steady, 1, 30), dataclasses.replace(real, commit=other), InvalidCommit)


# --- refresh --------------------------------------------------------------------------


def test_needs_refresh() -> None:
    assert not needs_refresh(1_000, 1_000, 3_000)
    assert not needs_refresh(1_000, 2_999, 3_000)
    assert needs_refresh(1_000, 3_000, 3_000)  # 2/3 of the period gone
    assert needs_refresh(1_000, 10_000, 3_000)
    assert not needs_refresh(1_000, 3_000, 3_000, fraction=(9, 10))
    assert needs_refresh(1_000, 1_000, 3_000, fraction=(0, 1))


@pytest.mark.parametrize(
    "args",
    [
        (-1, 0, 10),
        (0, -1, 10),
        (0, 0, 0),
        (0, 0, True),
        ("0", 0, 10),
        (0, 0, 10, (3, 2)),
        (0, 0, 10, (1, 0)),
        (0, 0, 10, (-1, 2)),
    ],
)
def test_needs_refresh_refuses_nonsense(args: tuple[object, ...]) -> None:
    with pytest.raises(InvalidPlan):
        needs_refresh(*args)  # type: ignore[arg-type]

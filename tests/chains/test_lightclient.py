"""Light clients of another chain (ICS-02/07 semantics): create, sequential and skipping
updates, every rejection, misbehaviour freeze, and event proofs against stored roots.

Chain B is a real devnet chain producing blocks; the client lives in a bare ``State`` for
the pure rules, and on chain A (driven by real transactions) where the module matters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from chains.bank import get_balance
from chains.consensus import sign_commit
from chains.crypto import PrivateKey
from chains.errors import (
    ChainIdMismatch,
    ClientExpired,
    ClientFrozen,
    ClientNotFound,
    ConsensusStateNotFound,
    DuplicateSigner,
    HeaderFromFuture,
    InsufficientVotingPower,
    InvalidArgument,
    InvalidProof,
    InvalidRoot,
    NonIncreasingHeight,
    NonMonotonicTime,
    TrustingPeriodExpired,
    UnknownSigner,
    ValidatorSetMismatch,
)
from chains.lightclient import (
    MAX_CLIENTS_PER_CREATOR,
    HeaderUpdate,
    _prune_expired,
    get_client_state,
    get_consensus_heights,
    get_consensus_state,
    process_create_client,
    process_misbehaviour,
    process_update_client,
    verify_event,
)
from chains.merkle import verify_inclusion
from chains.state import State
from chains.types import MAX_TX_BYTES, ZERO_HASH, Commit, Event, Tx
from tests.chains.helpers import Driver, devnet, forged_update, transfer

TP = 100_000  # trusting period, ms
DRIFT = 5_000  # max clock drift, ms


@pytest.fixture
def b() -> Driver:
    d = Driver(devnet("chain-a", "chain-b")[1])
    for _ in range(6):
        d.produce()
    return d


def _client(b: Driver, height: int = 1) -> tuple[State, str]:
    state = State()
    cid = process_create_client(state, b.update(height, height), TP, DRIFT)
    return state, cid


def _now(b: Driver, height: int) -> int:
    return b.results[height].block.header.time + 500


def _snapshot(state: State) -> dict[str, object]:
    return dict(state.items())


def _copy(state: State) -> State:
    return State(dict(state.items()))


# --- create -----------------------------------------------------------------------------


def test_create_stores_client_and_consensus_state(b: Driver) -> None:
    state, cid = _client(b, 2)
    cs = get_client_state(state, cid)
    assert (cs.chain_id, cs.latest_height, cs.frozen_height) == ("chain-b", 2, 0)
    assert cs.trust_level == (1, 3)
    h = b.results[2].block.header
    cons = get_consensus_state(state, cid, 2)
    assert (cons.time, cons.header_hash, cons.event_root) == (h.time, h.hash, h.event_root)
    assert cons.next_validators_hash == h.next_validators_hash
    assert process_create_client(state, b.update(3, 3), TP, DRIFT) != cid


def test_create_refuses_a_header_without_a_valid_commit(b: Driver) -> None:
    u = b.update(2, 2)
    weak = dataclasses.replace(u, commit=sign_commit(u.header, b.dc.validator_keys[:2]))
    state = State()
    with pytest.raises(InsufficientVotingPower):
        process_create_client(state, weak, TP, DRIFT)
    other = devnet("chain-a", "chain-b")[0].genesis.validators
    with pytest.raises(ValidatorSetMismatch):
        process_create_client(state, dataclasses.replace(u, validators=other), TP, DRIFT)
    assert len(state) == 0


@pytest.mark.parametrize(
    ("tp", "drift", "trust"), [(0, 0, (1, 3)), (TP, -1, (1, 3)), (TP, 0, (1, 4)), (TP, 0, (4, 3))]
)
def test_create_refuses_bad_parameters(
    b: Driver, tp: int, drift: int, trust: tuple[int, int]
) -> None:
    with pytest.raises(InvalidArgument):
        process_create_client(State(), b.update(1, 1), tp, drift, trust)


# --- updates ----------------------------------------------------------------------------


def test_sequential_updates(b: Driver) -> None:
    state, cid = _client(b, 1)
    for h in range(2, 7):
        assert process_update_client(state, cid, b.update(h, h - 1), _now(b, h)) == "stored"
        assert get_client_state(state, cid).latest_height == h


def test_skipping_update_with_the_same_set(b: Driver) -> None:
    state, cid = _client(b, 1)
    assert process_update_client(state, cid, b.update(6, 1), _now(b, 6)) == "stored"
    assert get_client_state(state, cid).latest_height == 6
    # heights in between may be filled in later, from below
    assert process_update_client(state, cid, b.update(3, 1), _now(b, 6)) == "stored"
    assert get_client_state(state, cid).latest_height == 6
    get_consensus_state(state, cid, 3)


def _rotate(b: Driver, add: list[PrivateKey], remove: list[PrivateKey]) -> int:
    """Change chain B's set by governance; returns the first height the new set signs."""
    b.keys.extend(add)
    for k in add:
        b.produce(
            [
                b.tx(
                    "gov",
                    "validators",
                    "set_power",
                    {"public_key": k.public_key.hex(), "power": 10},
                )
            ]
        )
    for k in remove:
        b.produce(
            [b.tx("gov", "validators", "set_power", {"public_key": k.public_key.hex(), "power": 0})]
        )
    b.produce()
    return b.chain.height


def test_skipping_update_across_a_changed_set(b: Driver) -> None:
    """>1/3 of the trusted set and >2/3 of the new one: half the old set stayed."""
    v = b.dc.validator_keys
    newcomers = [PrivateKey.derive("lc-test", "new", str(i)) for i in range(2)]
    h = _rotate(b, newcomers, [v[2], v[3]])
    assert b.results[h].validators.by_key.keys() == {k.public_key for k in (v[0], v[1], *newcomers)}
    state, cid = _client(b, 1)
    u = b.update(h, 1)
    assert u.trusted_validators is not None
    assert u.trusted_validators.hash == b.results[1].block.header.next_validators_hash
    assert process_update_client(state, cid, u, _now(b, h)) == "stored"
    # without the trusted set, or with a wrong one, it cannot be checked
    state2, cid2 = _client(b, 1)
    with pytest.raises(ValidatorSetMismatch):
        process_update_client(
            state2, cid2, dataclasses.replace(u, trusted_validators=None), _now(b, h)
        )
    with pytest.raises(ValidatorSetMismatch):
        process_update_client(
            state2, cid2, dataclasses.replace(u, trusted_validators=u.validators), _now(b, h)
        )


def test_sequential_updates_follow_a_changing_set(b: Driver) -> None:
    v = b.dc.validator_keys
    newcomers = [PrivateKey.derive("lc-test", "new", str(i)) for i in range(3)]
    h = _rotate(b, newcomers, [v[1], v[2], v[3]])
    state, cid = _client(b, 1)
    for height in range(2, h + 1):
        u = b.update(height, height - 1)
        assert process_update_client(state, cid, u, _now(b, height)) == "stored"


def test_skipping_refused_when_the_trusted_overlap_is_at_most_one_third(b: Driver) -> None:
    v = b.dc.validator_keys
    newcomers = [PrivateKey.derive("lc-test", "new", str(i)) for i in range(3)]
    h = _rotate(b, newcomers, [v[1], v[2], v[3]])  # 1 of 4 old validators remains: 1/4
    state, cid = _client(b, 1)
    before = _snapshot(state)
    with pytest.raises(InsufficientVotingPower):
        process_update_client(state, cid, b.update(h, 1), _now(b, h))
    assert _snapshot(state) == before


def test_skipping_refused_at_exactly_one_third() -> None:
    (dc,) = devnet("chain-b", validators=3)
    b = Driver(dc)
    b.produce()
    v = dc.validator_keys
    newcomers = [PrivateKey.derive("lc-test", "third", str(i)) for i in range(2)]
    h = _rotate(b, newcomers, [v[1], v[2]])  # 10 of the trusted 30 remain: exactly 1/3
    state, cid = _client(b, 1)
    with pytest.raises(InsufficientVotingPower) as exc:
        process_update_client(state, cid, b.update(h, 1), _now(b, h))
    assert (exc.value.signed, exc.value.total) == (10, 30)


# --- every rejection ------------------------------------------------------------------


def test_update_under_threshold_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    u = b.update(2, 1)
    weak = dataclasses.replace(u, commit=sign_commit(u.header, b.dc.validator_keys[:2]))
    with pytest.raises(InsufficientVotingPower):
        process_update_client(state, cid, weak, _now(b, 2))
    skip = b.update(5, 1)
    weak = dataclasses.replace(skip, commit=sign_commit(skip.header, b.dc.validator_keys[:2]))
    with pytest.raises(InsufficientVotingPower):
        process_update_client(state, cid, weak, _now(b, 5))
    assert get_client_state(state, cid).latest_height == 1


def test_update_with_a_duplicated_signer_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    for height in (2, 5):  # sequential and skipping
        u = b.update(height, 1)
        two = sign_commit(u.header, b.dc.validator_keys[:2]).signatures
        padded = Commit(u.header.height, u.header.hash, (*two, two[0]))
        with pytest.raises(DuplicateSigner):
            process_update_client(
                state, cid, dataclasses.replace(u, commit=padded), _now(b, height)
            )


def test_update_with_a_signer_outside_the_set_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    outsider = PrivateKey.derive("outsider")
    for height in (2, 5):
        u = b.update(height, 1)
        commit = sign_commit(u.header, [*b.dc.validator_keys[:2], outsider])
        with pytest.raises(UnknownSigner):
            process_update_client(
                state, cid, dataclasses.replace(u, commit=commit), _now(b, height)
            )


def test_header_of_another_chain_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    a = Driver(devnet("chain-a", "chain-b")[0])
    a.produce()
    a.produce()
    with pytest.raises(ChainIdMismatch):
        process_update_client(state, cid, a.update(2, 1), _now(a, 2))
    # B's own validators signing a header that claims another chain id: same refusal
    forged = forged_update(b.update(2, 1), b.dc.validator_keys, chain_id="chain-a")
    with pytest.raises(ChainIdMismatch):
        process_update_client(state, cid, forged, _now(b, 2))


def test_non_increasing_height_is_refused(b: Driver) -> None:
    state, cid = _client(b, 3)
    u = b.update(3, 3)
    with pytest.raises(NonIncreasingHeight):
        process_update_client(state, cid, u, _now(b, 3))
    with pytest.raises(NonIncreasingHeight):
        process_update_client(
            state, cid, dataclasses.replace(b.update(2, 2), trusted_height=3), _now(b, 3)
        )
    # below the only trusted height there is nothing to verify from
    with pytest.raises(ConsensusStateNotFound):
        process_update_client(state, cid, b.update(2, 1), _now(b, 3))


def test_expired_trusting_period_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    t1 = b.results[1].block.header.time
    with pytest.raises(TrustingPeriodExpired):
        process_update_client(state, cid, b.update(2, 1), t1 + TP)
    assert process_update_client(state, cid, b.update(2, 1), t1 + TP - 1) == "stored"


def test_header_from_the_future_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    t2 = b.results[2].block.header.time
    with pytest.raises(HeaderFromFuture):
        process_update_client(state, cid, b.update(2, 1), t2 - DRIFT - 1)
    assert process_update_client(state, cid, b.update(2, 1), t2 - DRIFT) == "stored"


def test_header_not_after_the_trusted_time_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    t1 = b.results[1].block.header.time
    forged = forged_update(b.update(2, 1), b.dc.validator_keys, time=t1)
    with pytest.raises(NonMonotonicTime):
        process_update_client(state, cid, forged, _now(b, 2))


@pytest.mark.parametrize(
    "field", ["tx_root", "event_root", "state_root", "validators_hash", "next_validators_hash"]
)
def test_zero_roots_are_refused(b: Driver, field: str) -> None:
    state, cid = _client(b, 1)
    forged = forged_update(b.update(2, 1), b.dc.validator_keys, **{field: ZERO_HASH})
    with pytest.raises(InvalidRoot):
        process_update_client(state, cid, forged, _now(b, 2))
    with pytest.raises(InvalidRoot):
        process_create_client(State(), forged, TP, DRIFT)


def test_validator_set_not_matching_the_header_is_refused(b: Driver) -> None:
    state, cid = _client(b, 1)
    u = b.update(2, 1)
    other = devnet("chain-a", "chain-b")[0].genesis.validators
    with pytest.raises(ValidatorSetMismatch):
        process_update_client(state, cid, dataclasses.replace(u, validators=other), _now(b, 2))
    # a sequential header signed by a set other than the trusted next set
    outsiders = [PrivateKey.derive("rogue", str(i)) for i in range(4)]
    from chains.types import ValidatorSet

    rogue = ValidatorSet.of([(k.public_key, 10) for k in outsiders])
    forged = forged_update(u, outsiders, validators_hash=rogue.hash)
    forged = dataclasses.replace(forged, validators=rogue)
    with pytest.raises(ValidatorSetMismatch):
        process_update_client(state, cid, forged, _now(b, 2))


def test_unknown_client_is_refused(b: Driver) -> None:
    with pytest.raises(ClientNotFound):
        process_update_client(State(), "lc-9", b.update(2, 1), _now(b, 2))


# --- duplicates and misbehaviour ------------------------------------------------------


def test_same_header_twice_is_a_no_op(b: Driver) -> None:
    state, cid = _client(b, 1)
    assert process_update_client(state, cid, b.update(3, 1), _now(b, 3)) == "stored"
    state.root()
    before = _snapshot(state)
    assert process_update_client(state, cid, b.update(3, 1), _now(b, 3)) == "duplicate"
    u = b.update(3, 1)
    other_commit = dataclasses.replace(u, commit=sign_commit(u.header, b.dc.validator_keys[1:]))
    assert process_update_client(state, cid, other_commit, _now(b, 3)) == "duplicate"
    assert _snapshot(state) == before


def test_conflicting_update_freezes_the_client(b: Driver) -> None:
    state, cid = _client(b, 1)
    assert process_update_client(state, cid, b.update(3, 1), _now(b, 3)) == "stored"
    fork = forged_update(b.update(3, 1), b.dc.validator_keys, state_root=bytes([7]) * 32)
    assert process_update_client(state, cid, fork, _now(b, 3)) == "frozen"
    assert get_client_state(state, cid).frozen_height == 3
    _assert_frozen(b, state, cid)


def test_misbehaviour_freezes_the_client(b: Driver) -> None:
    state, cid = _client(b, 1)
    honest = b.update(4, 1)
    fork = forged_update(honest, b.dc.validator_keys, event_root=bytes([7]) * 32)
    process_misbehaviour(state, cid, honest, fork, _now(b, 4))
    assert get_client_state(state, cid).frozen_height == 4
    _assert_frozen(b, state, cid)
    with pytest.raises(ClientFrozen):
        process_misbehaviour(state, cid, honest, fork, _now(b, 4))


def _assert_frozen(b: Driver, state: State, cid: str) -> None:
    with pytest.raises(ClientFrozen):
        process_update_client(state, cid, b.update(5, 1), _now(b, 5))
    with pytest.raises(ClientFrozen):
        verify_event(state, cid, 1, Event("bank.x", {}), 0, [], _now(b, 5))


def test_misbehaviour_needs_two_valid_different_headers_at_one_height(b: Driver) -> None:
    state, cid = _client(b, 1)
    honest = b.update(4, 1)
    with pytest.raises(InvalidArgument):
        process_misbehaviour(state, cid, honest, honest, _now(b, 4))
    with pytest.raises(InvalidArgument):
        process_misbehaviour(state, cid, honest, b.update(5, 1), _now(b, 5))
    weak_fork = forged_update(honest, b.dc.validator_keys[:2], time=honest.header.time + 1)
    with pytest.raises(InsufficientVotingPower):
        process_misbehaviour(state, cid, honest, weak_fork, _now(b, 4))
    assert get_client_state(state, cid).frozen_height == 0


# --- fill-ins: time between the stored neighbours (ICS-07) ----------------------------


def _t(b: Driver, height: int) -> int:
    return b.results[height].block.header.time


def test_fill_ins_in_time_order_are_stored(b: Driver) -> None:
    state, cid = _client(b, 1)
    now = _now(b, 6)
    assert process_update_client(state, cid, b.update(6, 1), now) == "stored"
    assert process_update_client(state, cid, b.update(3, 1), now) == "stored"
    assert process_update_client(state, cid, b.update(4, 3), now) == "stored"
    assert process_update_client(state, cid, b.update(2, 1), now) == "stored"
    assert get_consensus_heights(state, cid) == [1, 2, 3, 4, 6]
    assert get_client_state(state, cid).latest_height == 6
    state.root()
    before = _snapshot(state)
    assert process_update_client(state, cid, b.update(3, 1), now) == "duplicate"
    assert _snapshot(state) == before


@pytest.mark.parametrize(
    "when",
    [
        lambda b: _t(b, 3),  # equal to the previous stored state's time
        lambda b: _t(b, 3) - 1,  # before it (but after the trusted height's)
        lambda b: _t(b, 6),  # equal to the next stored state's time
        lambda b: _t(b, 6) + 1,  # after it
    ],
    ids=["equal-prev", "before-prev", "equal-next", "after-next"],
)
def test_fill_in_out_of_time_order_freezes_the_client(
    b: Driver, when: Callable[[Driver], int]
) -> None:
    """Valid commits on a header whose time breaks the stored order: misbehaviour."""
    state, cid = _client(b, 1)
    now = _now(b, 6)
    process_update_client(state, cid, b.update(3, 1), now)
    process_update_client(state, cid, b.update(6, 1), now)
    forged = forged_update(b.update(4, 1), b.dc.validator_keys, time=when(b))
    assert process_update_client(state, cid, forged, now) == "frozen"
    assert get_client_state(state, cid).frozen_height == 4
    with pytest.raises(ConsensusStateNotFound):
        get_consensus_state(state, cid, 4)
    _assert_frozen(b, state, cid)
    with pytest.raises(ClientFrozen):
        verify_event(state, cid, 3, Event("bank.x", {}), 0, [], now)


def test_header_above_latest_not_after_it_freezes_the_client(b: Driver) -> None:
    b.produce()
    state, cid = _client(b, 1)
    now = _now(b, 7)
    process_update_client(state, cid, b.update(3, 1), now)
    process_update_client(state, cid, b.update(6, 3), now)
    # verified from 3, so the trusted-time check passes; the latest stored state is later
    forged = forged_update(b.update(7, 3), b.dc.validator_keys, time=_t(b, 6))
    assert process_update_client(state, cid, forged, now) == "frozen"
    assert get_client_state(state, cid).frozen_height == 7


# --- pruning ----------------------------------------------------------------------------


def test_update_prunes_expired_consensus_states(with_events: tuple[Driver, int]) -> None:
    b, h = with_events  # chain B has heights 1, h, h + 1, one second apart
    state, cid = _client(b, 1)
    assert process_update_client(state, cid, b.update(h, 1), _now(b, h)) == "stored"
    now = _t(b, 1) + TP  # height 1 just expired; h (one block later) has not
    assert process_update_client(state, cid, b.update(h + 1, h), now) == "stored"
    assert get_consensus_heights(state, cid) == [h, h + 1]
    with pytest.raises(ConsensusStateNotFound):
        get_consensus_state(state, cid, 1)
    # a proof against the pruned height fails as for a height never stored
    ev = b.results[h].block.prove_event(0)
    with pytest.raises(ConsensusStateNotFound):
        verify_event(state, cid, 1, ev.event, 0, ev.proof, now)
    verify_event(state, cid, h, ev.event, ev.index, ev.proof, now)
    # nor can the pruned height serve as a trusted state
    with pytest.raises(ConsensusStateNotFound):
        process_update_client(state, cid, b.update(h + 1, 1), now)


def test_pruning_never_removes_the_latest_state(b: Driver) -> None:
    """Unreachable through an update (the trusted state is unexpired and not later than
    the latest), so the rule is checked on the helper itself."""
    state, cid = _client(b, 1)
    for height in (2, 3):
        process_update_client(state, cid, b.update(height, height - 1), _now(b, height))
    client = get_client_state(state, cid)
    assert _prune_expired(state, cid, client, _t(b, 3) + 10 * TP) == 2
    assert get_consensus_heights(state, cid) == [3]
    get_consensus_state(state, cid, 3)
    for gone in (1, 2):
        with pytest.raises(ConsensusStateNotFound):
            get_consensus_state(state, cid, gone)


def test_a_client_keeps_at_most_max_consensus_states_dropping_the_lowest(
    b: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone can feed a client of a chain they sign for: its stored states are bounded."""
    import chains.lightclient

    monkeypatch.setattr(chains.lightclient, "MAX_CONSENSUS_STATES", 3)
    state, cid = _client(b, 1)
    for height in (2, 3, 4, 5):
        assert process_update_client(state, cid, b.update(height, height - 1), _now(b, 5)) == (
            "stored"
        )
    assert get_consensus_heights(state, cid) == [3, 4, 5]
    # a fill-in below the latest also counts, and the latest is never the one dropped
    state2, cid2 = _client(b, 1)
    process_update_client(state2, cid2, b.update(5, 1), _now(b, 5))
    process_update_client(state2, cid2, b.update(2, 1), _now(b, 5))
    process_update_client(state2, cid2, b.update(3, 2), _now(b, 5))
    assert get_consensus_heights(state2, cid2) == [2, 3, 5]


def test_client_stored_with_the_old_heights_list_drops_it_and_keeps_working(b: Driver) -> None:
    state, cid = _client(b, 1)
    process_update_client(state, cid, b.update(5, 1), _now(b, 5))
    state.set(f"lightclient/heights/{cid}", [1, 5])  # as the earlier layout stored it
    assert get_consensus_heights(state, cid) == [1, 5]
    assert process_update_client(state, cid, b.update(5, 1), _now(b, 5)) == "duplicate"
    forged = forged_update(b.update(3, 1), b.dc.validator_keys, time=_t(b, 5))
    assert process_update_client(_copy(state), cid, forged, _now(b, 5)) == "frozen"
    assert process_update_client(state, cid, b.update(3, 1), _now(b, 5)) == "stored"
    assert get_consensus_heights(state, cid) == [1, 3, 5]
    assert f"lightclient/heights/{cid}" not in state


def test_an_update_writes_the_same_few_keys_however_many_heights_are_stored(
    b: Driver,
) -> None:
    """An update must cost O(log n) in the stored heights, not rewrite a list of them
    (it did: 6.7 MiB written per update at 1M heights)."""
    state, cid = _client(b, 1)
    # 5,000 more stored heights, as a long-lived client holds (faked far above the chain's)
    cs = state.get(f"lightclient/cons/{cid}/{1:020d}")
    for i in range(5_000):
        later = {**cs, "time": _t(b, 5) + 1_000 + i}
        state.set(f"lightclient/cons/{cid}/{1_000_000 + i:020d}", later)
    state.root()
    state.take_changes()
    assert process_update_client(state, cid, b.update(5, 1), _now(b, 5)) == "stored"
    written = state.take_changes()
    assert set(written) == {
        f"lightclient/cons/{cid}/{5:020d}",
        f"lightclient/client/{cid}",
        f"lightclient/count/{cid}",
    }
    assert all(len(repr(v)) < 1_000 for v in written.values())
    assert len(get_consensus_heights(state, cid)) == 5_002


# --- event proofs ---------------------------------------------------------------------


@pytest.fixture
def with_events() -> tuple[Driver, int]:
    """Chain B with a block of exactly three transfer events at the returned height."""
    b = Driver(devnet("chain-a", "chain-b")[1])
    b.produce()
    k = b.key
    txs = [
        transfer(k("alice"), b.chain_id, 0, k("bob").address, 1, b.dc.denom),
        transfer(k("bob"), b.chain_id, 0, k("carol").address, 2, b.dc.denom),
        transfer(k("carol"), b.chain_id, 0, k("dave").address, 3, b.dc.denom),
    ]
    res = b.produce(txs)
    assert res.block.header.event_count == 3
    b.produce()
    return b, res.block.height


def test_verify_event_happy_path(with_events: tuple[Driver, int]) -> None:
    b, h = with_events
    state, cid = _client(b, 1)
    process_update_client(state, cid, b.update(h, 1), _now(b, h))
    block = b.results[h].block
    for i in range(3):
        p = block.prove_event(i)
        assert p.tree_size == block.header.event_count
        verify_event(state, cid, h, p.event, p.index, p.proof, _now(b, h))


def test_verify_event_refuses_every_bad_proof(with_events: tuple[Driver, int]) -> None:
    b, h = with_events
    state, cid = _client(b, 1)
    process_update_client(state, cid, b.update(h, 1), _now(b, h))
    now = _now(b, h)
    p = b.results[h].block.prove_event(0)
    proof = list(p.proof)
    bad_proofs = [proof[:-1], [*proof, bytes(32)], [bytes(32), *proof], proof[::-1], []]
    for i, sib in enumerate(proof):
        for j in range(len(sib)):
            mutated = list(proof)
            mutated[i] = sib[:j] + bytes([sib[j] ^ 0x80]) + sib[j + 1 :]
            bad_proofs.append(mutated)
    for bad in bad_proofs:
        with pytest.raises(InvalidProof):
            verify_event(state, cid, h, p.event, 0, bad, now)
    for index in (1, 2, 3, -1, 2**63):
        with pytest.raises(InvalidProof):
            verify_event(state, cid, h, p.event, index, proof, now)
    forged_event = Event(p.event.type, {**p.event.attributes, "amount": 10**9})
    with pytest.raises(InvalidProof):
        verify_event(state, cid, h, forged_event, 0, proof, now)
    with pytest.raises(ConsensusStateNotFound):
        verify_event(state, cid, h + 1, p.event, 0, proof, now)
    with pytest.raises(ClientNotFound):
        verify_event(state, "lc-9", h, p.event, 0, proof, now)


def test_verify_event_uses_the_stored_tree_size(with_events: tuple[Driver, int]) -> None:
    """The audit path of event 2 of 3 also verifies as event 1 of a 2-leaf tree under the
    same root (RFC 6962 roots do not commit to the size). Only the size from the signed
    header stops one event from being claimed under two indexes."""
    b, h = with_events
    state, cid = _client(b, 1)
    process_update_client(state, cid, b.update(h, 1), _now(b, h))
    header = b.results[h].block.header
    p = b.results[h].block.prove_event(2)
    assert verify_inclusion(p.event.leaf(), 1, 2, p.proof, header.event_root)
    with pytest.raises(InvalidProof):
        verify_event(state, cid, h, p.event, 1, p.proof, _now(b, h))
    verify_event(state, cid, h, p.event, 2, p.proof, _now(b, h))


def test_verify_event_refuses_once_the_client_expired(with_events: tuple[Driver, int]) -> None:
    b, h = with_events
    state, cid = _client(b, 1)
    process_update_client(state, cid, b.update(h, 1), _now(b, h))
    p = b.results[h].block.prove_event(0)
    t = b.results[h].block.header.time
    verify_event(state, cid, h, p.event, 0, p.proof, t + TP - 1)
    with pytest.raises(ClientExpired):
        verify_event(state, cid, h, p.event, 0, p.proof, t + TP)


def test_header_update_wire_round_trip(b: Driver) -> None:
    u = b.update(5, 1)
    back = HeaderUpdate.from_json(u.to_json())
    assert back == u
    assert back.header.hash == u.header.hash


# --- through real transactions on chain A ---------------------------------------------


def _at(a: Driver, b: Driver, height: int) -> int:
    """Chain A's next block time: a little after B's header at ``height``."""
    return max(a.chain.last_time + 1, b.results[height].block.header.time + 100)


def test_client_on_chain_a_driven_by_transactions(with_events: tuple[Driver, int]) -> None:
    b, h = with_events
    a = Driver(devnet("chain-a", "chain-b")[0])
    create = {"update": b.update(1, 1).to_json(), "trusting_period": TP, "max_clock_drift": DRIFT}
    res = a.produce([a.tx("alice", "lightclient", "create_client", create)], time=_at(a, b, 1))
    (r,) = res.block.receipts
    assert r.ok, r.error
    assert r.events[0].type == "lightclient.client_created"
    cid = r.events[0].attributes["client_id"]

    # a bad update fails with a typed receipt and changes nothing but the nonce
    u = b.update(h, 1)
    weak = dataclasses.replace(u, commit=sign_commit(u.header, b.dc.validator_keys[:2]))
    before = dict(a.chain.state.items("lightclient/"))
    tx = a.tx("bob", "lightclient", "update_client", {"client_id": cid, "update": weak.to_json()})
    (r,) = a.produce([tx], time=_at(a, b, h)).block.receipts
    assert (r.ok, r.code) == (False, "InsufficientVotingPower")
    assert dict(a.chain.state.items("lightclient/")) == before

    # a relayer (any account) updates it; the same header again is a harmless no-op
    args = {"client_id": cid, "update": u.to_json()}
    (r,) = a.produce([a.tx("bob", "lightclient", "update_client", args)]).block.receipts
    assert r.ok
    assert r.events[0].attributes["outcome"] == "stored"
    (r,) = a.produce([a.tx("carol", "lightclient", "update_client", args)]).block.receipts
    assert r.ok
    assert r.events[0].attributes["outcome"] == "duplicate"

    # chain A can now check an event of chain B
    p = b.results[h].block.prove_event(1)
    verify_event(a.chain.state, cid, h, p.event, p.index, p.proof, a.chain.last_time)
    assert p.event.attributes["to"] == b.key("carol").address

    # B's validators sign a fork: anyone submits both, the client freezes
    fork = forged_update(u, b.dc.validator_keys, state_root=bytes([5]) * 32)
    mis = {"client_id": cid, "first": u.to_json(), "second": fork.to_json()}
    (r,) = a.produce([a.tx("dave", "lightclient", "submit_misbehaviour", mis)]).block.receipts
    assert r.ok
    assert r.events[0].type == "lightclient.client_frozen"
    assert get_client_state(a.chain.state, cid).frozen_height == h
    (r,) = a.produce([a.tx("bob", "lightclient", "update_client", args)]).block.receipts
    assert r.code == "ClientFrozen"
    with pytest.raises(ClientFrozen):
        verify_event(a.chain.state, cid, h, p.event, p.index, p.proof, a.chain.last_time)
    assert get_balance(a.chain.state, a.key("alice").address, a.dc.denom) > 0


@pytest.mark.parametrize(
    "args",
    [
        {"client_id": "lc-0"},
        {"client_id": "lc-0", "update": "junk"},
        {"client_id": "lc-0", "update": {"header": {}}},
        {"client_id": 5, "update": {}},
    ],
)
def test_malformed_update_args_fail_typed(b: Driver, args: dict[str, object]) -> None:
    a = Driver(devnet("chain-a", "chain-b")[0])
    create = {"update": b.update(1, 1).to_json(), "trusting_period": TP, "max_clock_drift": DRIFT}
    a.produce([a.tx("alice", "lightclient", "create_client", create)], time=_at(a, b, 1))
    (r,) = a.produce([a.tx("bob", "lightclient", "update_client", args)]).block.receipts
    assert (r.ok, r.code) == (False, "InvalidArgument"), r.error


def test_prove_events_verify_against_the_header(with_events: tuple[Driver, int]) -> None:
    b, h = with_events
    block = b.results[h].block
    proofs = block.prove_events([2, 0, 1])
    assert [p.index for p in proofs] == [2, 0, 1]
    h = block.header
    for p in proofs:
        assert p.event == block.events[p.index]
        assert verify_inclusion(p.event.leaf(), p.index, h.event_count, p.proof, h.event_root)
    with pytest.raises(IndexError):
        block.prove_events([3])


def test_misbehaviour_of_a_120_validator_set_is_proven_within_the_tx_limit() -> None:
    """Two full updates of a large set exceed 64 KiB (from ~60 validators); with the
    stored header as the first half the evidence is one update and fits."""
    b = Driver(devnet("chain-a", "chain-b", validators=120)[1])
    b.produce()
    b.produce()
    a = Driver(devnet("chain-a", "chain-b")[0])
    create = {"update": b.update(1, 1).to_json(), "trusting_period": TP, "max_clock_drift": DRIFT}
    (r,) = a.produce(
        [a.tx("alice", "lightclient", "create_client", create)], time=_at(a, b, 2)
    ).block.receipts
    cid = r.events[0].attributes["client_id"]
    honest = dataclasses.replace(b.update(2, 1), trusted_validators=None)
    args = {"client_id": cid, "update": honest.to_json()}
    (r,) = a.produce([a.tx("bob", "lightclient", "update_client", args)]).block.receipts
    assert r.events[0].attributes["outcome"] == "stored"
    fork = forged_update(honest, b.dc.validator_keys, state_root=bytes([5]) * 32)
    both = {"client_id": cid, "first": honest.to_json(), "second": fork.to_json()}
    assert len(a.tx("dave", "lightclient", "submit_misbehaviour", both).wire) > MAX_TX_BYTES
    one = {"client_id": cid, "first": None, "second": fork.to_json()}
    tx = a.tx("dave", "lightclient", "submit_misbehaviour", one)
    assert len(tx.wire) <= MAX_TX_BYTES
    (r,) = a.produce([tx]).block.receipts
    assert r.ok, r.error
    assert get_client_state(a.chain.state, cid).frozen_height == 2


def test_misbehaviour_against_the_stored_header_refuses_that_header_itself(b: Driver) -> None:
    state, cid = _client(b, 1)
    u = b.update(2, 1)
    process_update_client(state, cid, u, _now(b, 2))
    with pytest.raises(InvalidArgument):
        process_misbehaviour(state, cid, None, u, _now(b, 2))
    with pytest.raises(ConsensusStateNotFound):  # nothing stored at 3 to conflict with
        process_misbehaviour(state, cid, None, b.update(3, 2), _now(b, 3))
    assert get_client_state(state, cid).frozen_height == 0


def test_creating_a_client_is_rationed_like_other_state_growing_calls(b: Driver) -> None:
    """``create_client`` grew state at no cost: now a funded account, 16 each (a Sybil
    must fund one account per 16 clients, as the mempool's admission policy)."""
    a = Driver(devnet("chain-a", "chain-b")[0])
    create = {"update": b.update(1, 1).to_json(), "trusting_period": TP, "max_clock_drift": DRIFT}
    stranger = PrivateKey.derive("nobody", "funds")  # holds nothing on chain A
    before = dict(a.chain.state.items("lightclient/"))
    tx = Tx.create(stranger, a.chain_id, 0, "lightclient", "create_client", create)
    (r,) = a.produce([tx], time=_at(a, b, 1)).block.receipts
    assert (r.ok, r.code) == (False, "ClientQuotaExceeded")
    assert "holds no funds" in r.error
    assert dict(a.chain.state.items("lightclient/")) == before
    ids = set()
    for _ in range(MAX_CLIENTS_PER_CREATOR):
        (r,) = a.run("alice", "lightclient", "create_client", create).block.receipts
        assert r.ok, r.error
        ids.add(r.events[0].attributes["client_id"])
    assert len(ids) == MAX_CLIENTS_PER_CREATOR
    before = dict(a.chain.state.items("lightclient/"))
    (r,) = a.run("alice", "lightclient", "create_client", create).block.receipts
    assert (r.ok, r.code) == (False, "ClientQuotaExceeded")
    assert dict(a.chain.state.items("lightclient/")) == before
    (r,) = a.run("bob", "lightclient", "create_client", create).block.receipts  # bob's own share
    assert r.ok, r.error

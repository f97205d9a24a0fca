"""The swap engine, pure: safety rules, audit, and every transition of both roles."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from chains.crypto import PrivateKey
from chains.types import Event
from htlc.errors import (
    InsufficientTime,
    InvalidTerms,
    LockNotFinal,
    LockNotOpen,
    SecretMismatch,
    SecretNotFound,
    TermMismatch,
)
from htlc.swap import (
    ChainParams,
    LockAbsent,
    LockObserved,
    Role,
    Safety,
    SafetyPolicy,
    SubmitClaim,
    SubmitLock,
    SubmitRefund,
    Swap,
    SwapState,
    SwapTerms,
    Tick,
    audit,
    check_secret,
    extract_secret,
    new_swap,
    pending_action,
    plan_swap,
    resend_action,
    transition,
)
from htlc.types import Lock, LockStatus, LockTerms

S = SwapState
SECRET = b"\x42" * 32
HASH = hashlib.sha256(SECRET).digest()
ALICE = PrivateKey.derive("t", "alice").address  # initiator
BOB = PrivateKey.derive("t", "bob").address  # participant
SAFETY = Safety(
    ChainParams("chain-a", 1000),
    ChainParams("chain-b", 1000),
    SafetyPolicy(reaction_ms=2000, min_delta_ms=5000),
)


def make_terms(safety: Safety = SAFETY, ha: int = 0, hb: int = 0) -> SwapTerms:
    return plan_swap(
        safety,
        initiator_a=ALICE,
        participant_a=BOB,
        participant_b=BOB,
        initiator_b=ALICE,
        give=("usd", 100),
        take=("eur", 90),
        hashlock=HASH,
        height_a=ha,
        height_b=hb,
    )


TERMS = make_terms()


def locked(t: LockTerms) -> LockObserved:
    return LockObserved(Lock(t, LockStatus.LOCKED))


def claimed(t: LockTerms, preimage: bytes = SECRET) -> LockObserved:
    return LockObserved(Lock(t, LockStatus.CLAIMED, preimage))


def refunded(t: LockTerms) -> LockObserved:
    return LockObserved(Lock(t, LockStatus.REFUNDED))


def run(swap: Swap, *inputs: object) -> tuple[Swap, list[object]]:
    actions = []
    for i in inputs:
        step = transition(swap, i, SAFETY)  # type: ignore[arg-type]
        swap = step.swap
        if step.action is not None:
            actions.append(step.action)
    return swap, actions


def initiator() -> Swap:
    return new_swap(TERMS, Role.INITIATOR, SECRET)


def participant() -> Swap:
    return new_swap(TERMS, Role.PARTICIPANT)


# --- safety rules ----------------------------------------------------------------------


def test_delta_is_computed_from_both_chains_with_a_floor() -> None:
    a = ChainParams("a", 2000, finality_depth=3)
    b = ChainParams("b", 500, finality_depth=6)
    rules = Safety(a, b, SafetyPolicy(reaction_ms=10_000, min_delta_ms=0))
    # finality(B) + reaction + one block of A + finality(A)
    assert rules.delta_ms == 6 * 500 + 10_000 + 2000 + 3 * 2000
    assert Safety(a, b, SafetyPolicy(10_000, min_delta_ms=10**6)).delta_ms == 10**6
    # reveal margin in blocks of B: inclusion + reaction + finality, strictly below T_B
    assert rules.reveal_margin == 2 + 20 + 6


def test_slack_makes_every_estimate_conservative() -> None:
    c = ChainParams("c", 1000, interval_slack_permille=100)
    assert (c.fastest_ms, c.slowest_ms) == (900, 1100)
    rules = Safety(c, replace(c, chain_id="d"))
    assert rules.a_time_left_ms(11, 0) == 10 * 900  # least time left on A
    assert rules.b_time_left_ms(10, 0) == 10 * 1100  # most time left on B
    with pytest.raises(InvalidTerms):
        ChainParams("x", 0)
    with pytest.raises(InvalidTerms):
        ChainParams("x", 1, interval_slack_permille=1000)


@pytest.mark.parametrize("policy", [{"reaction_ms": -3000}, {"min_delta_ms": -1}])
def test_a_negative_policy_is_refused(policy: dict[str, int]) -> None:
    """A reaction time below zero would let the initiator reveal with fewer blocks of B
    left than its claim needs to land and be final."""
    with pytest.raises(InvalidTerms):
        SafetyPolicy(**policy)


@pytest.mark.parametrize(
    "params",
    [
        (ChainParams("chain-a", 1000), ChainParams("chain-b", 1000)),
        (ChainParams("chain-a", 250, 2, 50), ChainParams("chain-b", 4000, 6, 200)),
        (ChainParams("chain-a", 10_000, 0, 0), ChainParams("chain-b", 100, 12, 0)),
    ],
)
def test_plan_satisfies_the_delta_rule(params: tuple[ChainParams, ChainParams]) -> None:
    rules = Safety(*params, SafetyPolicy(reaction_ms=3000, min_delta_ms=1000))
    terms = make_terms(rules, ha=50, hb=7)
    rules.validate_terms(terms, 50, 7)
    left_a = rules.a_time_left_ms(terms.a.timelock, 50)
    assert left_a >= rules.b_time_left_ms(terms.b.timelock, 7) + rules.delta_ms
    # one block less on A breaks it
    shorter = SwapTerms(replace(terms.a, timelock=terms.a.timelock - 20), terms.b)
    with pytest.raises(InsufficientTime):
        rules.validate_terms(shorter, 50, 7)


def test_terms_shape_is_checked() -> None:
    with pytest.raises(InvalidTerms, match="hashlock"):
        SwapTerms(TERMS.a, replace(TERMS.b, hashlock=b"\x00" * 32))
    with pytest.raises(InvalidTerms, match="different chains"):
        SwapTerms(TERMS.a, replace(TERMS.b, chain_id="chain-a"))
    with pytest.raises(InvalidTerms):
        SAFETY.validate_terms(SwapTerms(TERMS.b, TERMS.a), 0, 0)
    with pytest.raises(InvalidTerms):
        new_swap(TERMS, Role.INITIATOR)
    with pytest.raises(SecretMismatch):
        new_swap(TERMS, Role.INITIATOR, b"\x00" * 32)
    with pytest.raises(InvalidTerms):
        new_swap(TERMS, Role.PARTICIPANT, SECRET)


# --- audit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sender", ALICE),
        ("receiver", BOB),
        ("denom", "gbp"),
        ("amount", 89),
        ("hashlock", b"\x01" * 32),
        ("timelock", TERMS.b.timelock + 1),
        ("timelock", TERMS.b.timelock - 1),
        ("chain_id", "chain-c"),
    ],
)
def test_audit_names_the_mismatching_term(field: str, value: object) -> None:
    bad = Lock(replace(TERMS.b, **{field: value}), LockStatus.LOCKED)
    with pytest.raises(TermMismatch) as info:
        audit(bad, TERMS.b)
    assert info.value.field == field


def test_audit_status_and_time() -> None:
    audit(Lock(TERMS.b, LockStatus.LOCKED), TERMS.b, height=0, min_blocks=TERMS.b.timelock)
    with pytest.raises(LockNotOpen):
        audit(Lock(TERMS.b, LockStatus.REFUNDED), TERMS.b)
    with pytest.raises(InsufficientTime):
        audit(Lock(TERMS.b, LockStatus.LOCKED), TERMS.b, height=1, min_blocks=TERMS.b.timelock)


def test_audit_waits_for_the_lock_chains_finality() -> None:
    """On a PoW or PoS chain a lock 5 blocks deep may still be undone by a reorganisation:
    with the engine's depth 6 it does not pass; one block later it does."""
    lock = Lock(TERMS.b, LockStatus.LOCKED)
    with pytest.raises(LockNotFinal) as info:
        audit(lock, TERMS.b, height=6, opened=1, finality_depth=6)
    assert (info.value.depth, info.value.required) == (5, 6)
    audit(lock, TERMS.b, height=7, opened=1, finality_depth=6)
    audit(lock, TERMS.b, height=1, opened=1)  # BFT: final when committed


# --- happy paths -------------------------------------------------------------------------


def test_initiator_happy_path() -> None:
    swap, actions = run(
        initiator(),
        Tick(0, 0),
        locked(TERMS.a),
        locked(TERMS.b),
        Tick(2, 2),
        claimed(TERMS.b),
    )
    assert swap.state is S.REDEEMED
    assert actions == [
        SubmitLock(TERMS.a),
        SubmitClaim("chain-b", TERMS.b.lock_id, SECRET),
    ]


def test_participant_happy_path_learns_secret_from_claim_event() -> None:
    swap, actions = run(
        participant(),
        locked(TERMS.a),
        Tick(1, 0),
        locked(TERMS.b),
        claimed(TERMS.b),
        claimed(TERMS.a),
    )
    assert swap.state is S.REDEEMED
    assert swap.secret == SECRET
    assert actions == [SubmitLock(TERMS.b), SubmitClaim("chain-a", TERMS.a.lock_id, SECRET)]


def test_every_transition_bumps_the_version_once() -> None:
    swap = initiator()
    versions = []
    for i in (Tick(0, 0), locked(TERMS.a), locked(TERMS.b), Tick(2, 2), claimed(TERMS.b)):
        step = transition(swap, i, SAFETY)
        assert step.swap.version == swap.version + int(step.transitioned)
        swap = step.swap
        versions.append(swap.version)
    assert versions == [1, 2, 3, 4, 5]


# --- the participant never locks, or locks wrongly ---------------------------------------


def test_participant_never_locks_initiator_refunds_and_never_reveals() -> None:
    swap, actions = run(initiator(), Tick(0, 0), locked(TERMS.a))
    for h in range(1, TERMS.a.timelock):
        swap, more = run(swap, Tick(h, h))
        assert more == []
    swap, more = run(swap, Tick(TERMS.a.timelock, TERMS.a.timelock))
    assert more == [SubmitRefund("chain-a", TERMS.a.lock_id)]
    swap, _ = run(swap, refunded(TERMS.a))
    assert swap.state is S.REFUNDED
    assert not any(isinstance(a, SubmitClaim) for a in actions + more)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 89),
        ("denom", "gbp"),
        ("timelock", TERMS.b.timelock + 5),  # too long
        ("timelock", TERMS.b.timelock - 1),  # too short
        ("sender", PrivateKey.derive("t", "mallory").address),
    ],
)
def test_initiator_refuses_a_wrong_counter_lock(field: str, value: object) -> None:
    swap, _ = run(initiator(), Tick(0, 0), locked(TERMS.a))
    wrong = replace(TERMS.b, **{field: value})
    with pytest.raises(TermMismatch):
        transition(swap, locked(wrong), SAFETY)
    # nothing changed; time passes; never reveals, refunds at T_A
    swap, actions = run(swap, Tick(2, 2), Tick(TERMS.a.timelock, TERMS.b.timelock))
    assert actions == [SubmitRefund("chain-a", TERMS.a.lock_id)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("receiver", PrivateKey.derive("t", "mallory").address), ("hashlock", b"\x07" * 32)],
)
def test_a_lock_not_for_this_swap_is_ignored(field: str, value: object) -> None:
    swap, _ = run(initiator(), Tick(0, 0), locked(TERMS.a))
    step = transition(swap, locked(replace(TERMS.b, **{field: value})), SAFETY)
    assert step.swap == swap
    assert step.action is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", 99), ("denom", "gbp"), ("timelock", TERMS.a.timelock - 1), ("sender", BOB)],
)
def test_participant_refuses_a_wrong_initiator_lock(field: str, value: object) -> None:
    swap = participant()
    with pytest.raises(TermMismatch):
        transition(swap, locked(replace(TERMS.a, **{field: value})), SAFETY)
    swap, actions = run(swap, Tick(1, 1))
    assert swap.state is S.CREATED
    assert actions == []


def test_participant_aborts_when_the_initiator_never_locks() -> None:
    swap, actions = run(participant(), Tick(1, 1), Tick(2, 2))
    assert swap.state is S.CREATED
    last = TERMS.b.timelock - SAFETY.participant_lock_margin
    swap, actions = run(swap, Tick(last, last))
    assert swap.state is S.CREATED
    swap, actions = run(swap, Tick(last + 1, last + 1))
    assert swap.state is S.ABORTED
    assert actions == []


def test_participant_audits_remaining_time_with_fresh_heights() -> None:
    swap, _ = run(participant(), locked(TERMS.a))
    assert swap.state is S.COUNTER_LOCKED
    # A has advanced much more than B (B stalled): the Δ rule fails, do not lock
    step = transition(swap, Tick(TERMS.a.timelock - 5, 0), SAFETY)
    assert step.swap.state is S.ABORTED
    assert step.action is None
    assert "too late" in step.swap.note


# --- the reveal rule -----------------------------------------------------------------------


def both_locked() -> Swap:
    swap, _ = run(initiator(), Tick(0, 0), locked(TERMS.a), locked(TERMS.b))
    assert swap.state is S.COUNTER_LOCKED
    return swap


def test_initiator_refuses_to_reveal_near_expiry() -> None:
    h = TERMS.b.timelock - SAFETY.reveal_margin + 1
    swap, actions = run(both_locked(), Tick(h, h), Tick(h + 1, h + 1))
    assert swap.state is S.COUNTER_LOCKED
    assert actions == []
    swap, actions = run(swap, Tick(TERMS.a.timelock, TERMS.a.timelock))
    assert swap.state is S.REFUNDING
    assert actions == [SubmitRefund("chain-a", TERMS.a.lock_id)]


def test_reveal_at_the_last_allowed_moment_leaves_participant_delta() -> None:
    hb = TERMS.b.timelock - SAFETY.reveal_margin
    ha = hb  # equal intervals, started together: same number of blocks elapsed
    step = transition(both_locked(), Tick(ha, hb), SAFETY)
    assert step.action == SubmitClaim("chain-b", TERMS.b.lock_id, SECRET)
    # worst case the claim lands (and is final) at T_B - 1: the participant still has Δ on A
    elapsed = TERMS.b.timelock - 1 - hb
    assert SAFETY.a_time_left_ms(TERMS.a.timelock, ha + elapsed) >= SAFETY.delta_ms


# --- timeouts and refunds -------------------------------------------------------------------


def test_participant_refunds_at_t_b_without_claim() -> None:
    swap, _ = run(participant(), locked(TERMS.a), Tick(1, 1), locked(TERMS.b))
    swap, actions = run(swap, Tick(TERMS.b.timelock - 1, TERMS.b.timelock - 1))
    assert actions == []
    swap, actions = run(swap, Tick(TERMS.b.timelock, TERMS.b.timelock))
    assert actions == [SubmitRefund("chain-b", TERMS.b.lock_id)]
    # the refund lost a race with a late claim: learn the secret and claim A
    swap, actions = run(swap, claimed(TERMS.b))
    assert swap.state is S.REDEEMING
    assert actions == [SubmitClaim("chain-a", TERMS.a.lock_id, SECRET)]


def test_lock_absent_past_its_timelock_aborts_locking() -> None:
    swap, _ = run(initiator(), Tick(0, 0))
    assert swap.state is S.LOCKING
    early = transition(swap, LockAbsent("chain-a", TERMS.a.lock_id, 3), SAFETY)
    assert early.swap.state is S.LOCKING
    late = transition(swap, LockAbsent("chain-a", TERMS.a.lock_id, TERMS.a.timelock - 1), SAFETY)
    assert late.swap.state is S.ABORTED


def test_participant_forfeits_only_when_secret_comes_after_t_a() -> None:
    swap, _ = run(participant(), locked(TERMS.a), Tick(1, 1), locked(TERMS.b))
    # offline a long time: by the time the claim on B is seen, A has expired
    swap, _ = run(swap, claimed(TERMS.b))
    assert swap.state is S.REDEEMING
    swap, _ = run(swap, Tick(TERMS.a.timelock, TERMS.b.timelock))
    assert swap.state is S.FORFEITED


# --- replays and hostile inputs --------------------------------------------------------------


def test_replayed_inputs_change_nothing_and_act_once() -> None:
    inputs = [Tick(0, 0), locked(TERMS.a), locked(TERMS.b), Tick(2, 2), claimed(TERMS.b)]
    swap = initiator()
    all_actions = []
    for i in inputs:
        for _ in range(3):  # every input delivered three times
            step = transition(swap, i, SAFETY)
            swap = step.swap
            if step.action:
                all_actions.append(step.action)
    assert swap.state is S.REDEEMED
    assert len(all_actions) == 2
    # a replayed, older tick cannot move time backwards
    assert transition(swap, Tick(0, 0), SAFETY).swap.height_b == 2


def test_stale_tick_cannot_trigger_a_reveal() -> None:
    swap = both_locked()
    late = TERMS.b.timelock - 1
    swap = transition(swap, Tick(late, late), SAFETY).swap
    step = transition(swap, Tick(0, 0), SAFETY)  # replayed old heights
    assert step.action is None


def test_an_incomplete_tick_refunds_but_never_locks_or_reveals() -> None:
    """Heights that lag the tips (a block could not be read) only ever understate time."""
    swap, actions = run(initiator(), Tick(0, 0, complete=False))
    assert (swap.state, actions) == (S.CREATED, [])
    swap, actions = run(participant(), locked(TERMS.a), Tick(0, 0, complete=False))
    assert (swap.state, actions) == (S.COUNTER_LOCKED, [])
    swap, actions = run(both_locked(), Tick(1, 1, complete=False))
    assert (swap.state, actions) == (S.COUNTER_LOCKED, [])
    swap, actions = run(swap, Tick(1, 1))
    assert actions == [SubmitClaim("chain-b", TERMS.b.lock_id, SECRET)]
    swap, actions = run(both_locked(), Tick(TERMS.a.timelock, 1, complete=False))
    assert actions == [SubmitRefund("chain-a", TERMS.a.lock_id)]
    swap, _ = run(participant(), locked(TERMS.a), Tick(1, 1), locked(TERMS.b))
    swap, actions = run(swap, Tick(1, TERMS.b.timelock, complete=False))
    assert actions == [SubmitRefund("chain-b", TERMS.b.lock_id)]


@pytest.mark.parametrize("preimage", [b"", b"\x42" * 31, b"\x42" * 33, b"\x00" * 32, b"x" * 1024])
def test_claim_with_a_bad_preimage_is_refused(preimage: bytes) -> None:
    swap, _ = run(participant(), locked(TERMS.a), Tick(1, 1), locked(TERMS.b))
    with pytest.raises(SecretMismatch):
        transition(swap, claimed(TERMS.b, preimage), SAFETY)
    with pytest.raises(SecretMismatch):
        check_secret(HASH, preimage)


def test_a_claim_without_the_secret_is_refused() -> None:
    swap, _ = run(participant(), locked(TERMS.a), Tick(1, 1), locked(TERMS.b))
    with pytest.raises(SecretMismatch):
        transition(swap, LockObserved(Lock(TERMS.b, LockStatus.CLAIMED, None)), SAFETY)


def test_resend_respects_the_reveal_margin_unless_the_secret_is_public() -> None:
    swap, actions = run(both_locked(), Tick(2, 2))
    assert swap.state is S.REDEEMING
    assert resend_action(swap, SAFETY) == actions[0]
    late = TERMS.b.timelock - SAFETY.reveal_margin + 1
    swap, _ = run(swap, Tick(late, late))
    assert resend_action(swap, SAFETY) is None  # would show the secret for nothing
    assert resend_action(swap, SAFETY, secret_public=True) == actions[0]
    swap, _ = run(swap, Tick(late, TERMS.b.timelock - 1))
    assert resend_action(swap, SAFETY, secret_public=True) is None  # cannot land any more


def test_terminal_states_absorb_everything() -> None:
    swap, _ = run(initiator(), Tick(0, 0), locked(TERMS.a), locked(TERMS.b), Tick(2, 2))
    swap, _ = run(swap, claimed(TERMS.b))
    for i in (Tick(99, 99), refunded(TERMS.a), locked(TERMS.b), claimed(TERMS.a)):
        step = transition(swap, i, SAFETY)
        assert step.action is None
        assert step.swap.state is S.REDEEMED


def test_pending_action_matches_the_state() -> None:
    assert pending_action(initiator()) is None
    swap, actions = run(initiator(), Tick(0, 0))
    assert pending_action(swap) == actions[0]


def test_swap_json_round_trip() -> None:
    swap, _ = run(participant(), locked(TERMS.a), Tick(1, 1), locked(TERMS.b), claimed(TERMS.b))
    assert Swap.from_json(swap.to_json()) == swap


# --- extract-secret ----------------------------------------------------------------------------


def test_extract_secret_only_trusts_a_matching_claim() -> None:
    good = Lock(TERMS.b, LockStatus.CLAIMED, SECRET).to_json()
    del good["chain_id"]
    forged = {**good, "preimage": (b"\x00" * 32).hex()}
    other = Lock(replace(TERMS.b, hashlock=b"\x01" * 32), LockStatus.CLAIMED, b"\x01" * 32)
    other_json = other.to_json()
    del other_json["chain_id"]
    events = [
        Event("bank.transfer", {"x": 1}),
        Event("htlc.claimed", forged),
        Event("htlc.claimed", {"garbage": True}),
        Event("htlc.claimed", other_json),
        Event("htlc.claimed", good),
    ]
    assert extract_secret("chain-b", events, HASH) == SECRET
    with pytest.raises(SecretNotFound):
        extract_secret("chain-b", events[:4], HASH)

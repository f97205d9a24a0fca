"""The netting round as a pure state machine: results, dropouts, cheaters, refusals."""

from __future__ import annotations

import dataclasses
import random

import pytest

from netting.errors import BadObligations, BadRoundSpec, MessageRefused, RoundFailed
from netting.protocol import Phase, RoundSpec, State, compute_plain_netting
from netting.sharing import compute_share
from tests.netting.helpers import bank_keys, deliver, make_round, random_book, run_round


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("seed", [1, 2])
def test_every_party_gets_the_plaintext_netting(n: int, seed: int) -> None:
    book = random_book(random.Random(seed * 100 + n), n)
    _, parties = make_round(book)
    run_round(parties)
    expected = compute_plain_netting(book)
    assert sum(expected) == 0
    for i, p in enumerate(parties):
        assert p.state is State.DONE, p.failure
        assert p.result is not None
        assert p.result.positions == expected
        assert p.result.own == expected[i]
        assert p.result.gross == sum(map(sum, book))
        assert not p.refused


def test_completes_fast_when_everyone_is_there() -> None:
    """No deadline needs to pass: every phase closes once all n messages are in."""
    book = random_book(random.Random(7), 4)
    _, parties = make_round(book)
    out = [e for p in parties for e in p.start(1.0)]
    deliver(parties, out, 1.0)
    assert all(p.state is State.DONE for p in parties)


@pytest.mark.parametrize(("n", "gone"), [(3, {2}), (5, {0, 3}), (5, {4})])
def test_dropouts_after_sharing_up_to_t(n: int, gone: set[int]) -> None:
    book = random_book(random.Random(n), n)
    _, parties = make_round(book)
    run_round(parties, offline_after_share=frozenset(gone))
    for i, p in enumerate(parties):
        if i in gone:
            continue
        assert p.state is State.DONE, p.failure
        assert p.result is not None
        assert p.result.positions == compute_plain_netting(book)


def test_more_than_t_dropouts_fail_without_a_result() -> None:
    book = random_book(random.Random(3), 5)
    _, parties = make_round(book)  # t = 2: three alive parties are needed
    run_round(parties, offline_after_share=frozenset({0, 1, 2}))
    for p in parties[3:]:
        assert p.state is State.FAILED
        assert p.result is None
        assert p.failure is not None
        assert "needed" in p.failure.reason


def test_missing_the_share_deadline_excludes_that_party() -> None:
    book = random_book(random.Random(4), 4)
    _, parties = make_round(book, t=1)
    run_round(parties, absent=frozenset({2}))
    for i in (0, 1, 3):
        failure = parties[i].failure
        assert parties[i].state is State.FAILED
        assert failure is not None
        assert failure.excluded == (2,)
        assert parties[i].result is None


@pytest.mark.parametrize("answers_honestly", [False, True])
def test_a_dealer_sending_an_inconsistent_share_is_named(answers_honestly: bool) -> None:
    book = random_book(random.Random(5), 4)
    _, parties = make_round(book, t=1)
    liar, victim = 1, 3
    p = parties[liar]
    out = [party.start(1.0)[0] for party in parties]
    # The liar seals a share off by one to the victim, and signs it: a well-formed lie.
    share_env = out[liar]
    good = compute_share(p._own_dealing, victim + 1)
    bad = ((good[0][0] + 1, good[0][1]), *good[1:])
    boxes = list(share_env.boxes)
    boxes[victim] = p._seal(Phase.SHARE, victim, bad)
    out[liar] = p._sign(dataclasses.replace(share_env, boxes=tuple(boxes), signature=b""))
    if not answers_honestly:  # it reveals a share from other polynomials when accused
        p._own_dealing = dataclasses.replace(
            p._own_dealing,
            coeffs=tuple((a[0] + 1, *a[1:]) for a in p._own_dealing.coeffs),
        )
    deliver(parties, out, 1.0)
    for k in range(1, 5):
        for party in parties:
            if not party.finished:
                deliver(parties, party.tick(k * 10.0), k * 10.0)
    if answers_honestly:
        # the disputed share is revealed and checks out: the round completes
        for party in parties:
            assert party.result is not None
            assert party.result.positions == compute_plain_netting(book)
    else:
        for i, party in enumerate(parties):
            if i == liar:
                continue
            assert party.state is State.FAILED
            assert party.failure is not None
            assert party.failure.cheaters == (liar,)


def test_refusals_change_nothing() -> None:
    book = random_book(random.Random(6), 3)
    spec, parties = make_round(book, t=1)
    a, b, _c = parties
    [env_a] = a.start(1.0)[:1]
    b.start(1.0)
    before = dict(b.inbox[Phase.SHARE])
    b.receive(env_a, 1.0)
    cases = {
        "duplicate": (env_a, 1.0),
        "late": (env_a, spec.deadline(Phase.SHARE) + 0.1),
        "other_round": (dataclasses.replace(env_a, round_id="round-2"), 1.0),
        "forged": (
            dataclasses.replace(env_a, commitments=(env_a.commitments[1], *env_a.commitments[1:])),
            1.0,
        ),
        "unknown_sender": (dataclasses.replace(env_a, sender=7), 1.0),
        "own": (dataclasses.replace(env_a, sender=1), 1.0),
        "malformed": (dataclasses.replace(env_a, against=(2,)), 1.0),
    }
    # a fresh party for everything but "duplicate", so nothing else masks the reason
    _, fresh = make_round(book, t=1)
    fresh[1].start(1.0)
    for reason, (env, now) in cases.items():
        target = b if reason == "duplicate" else fresh[1]
        snapshot = {ph: dict(box) for ph, box in target.inbox.items()}
        with pytest.raises(MessageRefused) as info:
            target.receive(env, now)
        assert info.value.reason == reason
        assert {ph: dict(box) for ph, box in target.inbox.items()} == snapshot
    assert before.keys() | {0} == b.inbox[Phase.SHARE].keys()
    # a signature from a past round does not verify in this one
    _, old = make_round(book, t=1, round_id="round-0")
    [old_env] = old[0].start(1.0)[:1]
    with pytest.raises(MessageRefused) as info:
        fresh[1].receive(dataclasses.replace(old_env, round_id=spec.round_id), 1.0)
    assert info.value.reason == "forged"


def test_bad_specs_and_inputs_are_refused() -> None:
    keys = [k.public_key for k in bank_keys(4)]
    with pytest.raises(BadRoundSpec):
        RoundSpec("Round/1", tuple(keys), 1, 0.0, 1.0)
    with pytest.raises(BadRoundSpec):
        RoundSpec("r", tuple(keys[:2]), 1, 0.0, 1.0)
    with pytest.raises(BadRoundSpec):
        RoundSpec("r", (keys[0], keys[0], keys[1]), 1, 0.0, 1.0)
    with pytest.raises(BadRoundSpec):
        RoundSpec("r", tuple(keys), 2, 0.0, 1.0)  # t > (n-1)//2
    with pytest.raises(BadRoundSpec):
        RoundSpec("r", tuple(keys), 1, 0.0, 0.0)
    with pytest.raises(BadObligations):
        make_round([[0, 1, 2], [0, 0, -1], [0, 0, 0]], t=1)
    _, parties = make_round([[0, 1, 2], [0, 0, 1], [3, 0, 0]], t=1)
    with pytest.raises(RoundFailed):
        parties[0].start(25.0)


def test_two_different_signed_shares_from_one_party_name_it() -> None:
    book = random_book(random.Random(8), 3)
    _, parties = make_round(book, t=1)
    _, again = make_round(book, t=1)  # the same bank, dealing a second time
    first = parties[0].start(1.0)[0]
    second = again[0].start(1.0)[0]
    receiver = parties[1]
    receiver.start(1.0)
    receiver.receive(first, 1.0)
    with pytest.raises(MessageRefused):
        receiver.receive(first, 1.0)  # a replay: refused, nothing else
    assert receiver.state is State.SHARING
    assert receiver.receive(second, 1.0) == []
    assert receiver.state is State.FAILED
    assert receiver.failure is not None
    assert receiver.failure.cheaters == (0,)
    # a different but unsigned copy is only a forgery, not evidence
    other = parties[2]
    other.start(1.0)
    other.receive(first, 1.0)
    with pytest.raises(MessageRefused):
        other.receive(dataclasses.replace(second, signature=first.signature), 1.0)
    assert other.state is State.SHARING

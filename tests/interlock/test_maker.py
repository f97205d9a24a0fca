"""The daemon's maker (``maker:NAME``): its pure decisions, then the worker in process
(in-process chains, the in-memory bus) against a taker that speaks the offer protocol:
swaps run to the end, hostile acceptances are refused and counted, a restart resumes the
swap in flight, and a spent budget publishes no offer. The daemon as a process, with
Mosquitto, chain processes and ``kill -9``, is tests/interlock/test_maker_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from chains.crypto import PrivateKey
from chains.devnet import base_modules, build_devnet
from chains.handle import InProcessChain
from chains.node import Node
from chains.service.bus import MemoryBus
from chains.store import MemoryBlockStore
from htlc.driver import Party, SwapDriver
from htlc.module import HTLCModule
from htlc.store import MemorySwapStore
from htlc.swap import Role, SwapState
from interlock.errors import ExpiredMessage, ForgedMessage, MalformedMessage, OfferTaken
from interlock.maker import (
    BudgetLeft,
    MakerWorker,
    Spent,
    get_budget_left,
    get_refusal_reason,
    is_offer_due,
    validate_acceptance,
)
from interlock.offer_steps import measure_safety, messages, next_message, now_ms
from interlock.offers import (
    ACCEPTS_TOPIC,
    ANSWERS_TOPIC,
    OFFERS_FILTER,
    Acceptance,
    Leg,
    Offer,
    OfferBook,
    compute_terms,
    encode,
    make_acceptance,
    make_offer,
    parse_answer,
    parse_offer,
)
from relayer.config import MakerEntry
from relayer.metrics import Metrics

SEED = "interlock-devnet"
A, B = "chain-a", "chain-b"
ALICE, BOB, MALLORY = (PrivateKey.derive(SEED, n) for n in ("alice", "bob", "mallory"))
CAROL, DAVE = (PrivateKey.derive(SEED, n) for n in ("carol", "dave"))


def entry(**changes: Any) -> MakerEntry:
    base = MakerEntry("desk", "devnet:alice", (100, "usd", A), (92, "eur", B), 600.0, 2, None)
    return dataclasses.replace(base, **changes)


def an_offer(expires_in: int = 60_000) -> Offer:
    return make_offer(
        ALICE, Leg(A, "usd", 100, ALICE.address), Leg(B, "eur", 92, ALICE.address),
        expires_ms=now_ms() + expires_in,
    )  # fmt: skip


def an_acceptance(offer: Offer, key: PrivateKey = BOB, expires_in: int = 30_000) -> Acceptance:
    return make_acceptance(key, offer, address_a=key.address, expires_ms=now_ms() + expires_in)


# --- pure -------------------------------------------------------------------------------


def test_the_budget_counts_swaps_and_whole_swaps_of_the_amount() -> None:
    assert get_budget_left(entry(max_swaps=2), Spent()) == BudgetLeft(2, None)
    assert get_budget_left(entry(max_swaps=2), Spent(2, 200)) == BudgetLeft(0, None)
    assert not get_budget_left(entry(max_swaps=2), Spent(2, 200)).allows_another
    # 250 to give, 100 a swap: two swaps, then 50 left is less than one swap: 0
    both = entry(max_swaps=None, max_give=250)
    assert get_budget_left(both, Spent(1, 100)) == BudgetLeft(None, 150)
    assert get_budget_left(both, Spent(2, 200)) == BudgetLeft(None, 0)
    assert get_budget_left(entry(max_swaps=5, max_give=100), Spent(1, 100)) == BudgetLeft(4, 0)


def test_an_offer_is_due_only_without_a_valid_one_and_with_budget() -> None:
    now = now_ms()
    room, spent = BudgetLeft(1, None), BudgetLeft(0, None)
    assert is_offer_due(None, room, now)
    assert not is_offer_due(None, spent, now)
    offer = an_offer()
    assert not is_offer_due(offer, room, now)
    assert is_offer_due(offer, room, offer.expires_ms)


def test_an_acceptance_of_the_open_offer_is_checked_and_changes_nothing() -> None:
    offer, book = an_offer(), OfferBook()
    acc = an_acceptance(offer)
    got = validate_acceptance(book, offer, offer.offer_id.hex(), encode(acc), now=now_ms())
    assert got == acc
    assert book.taken == {}


@pytest.mark.parametrize(
    ("tamper", "error", "reason"),
    [
        (lambda d: d.update(address_a=MALLORY.address), ForgedMessage, "forged"),
        (lambda d: d.update(expires=1), ExpiredMessage, "expired"),
        (lambda d: d.update(v=2), MalformedMessage, "malformed"),
        (lambda d: d.pop("nonce"), MalformedMessage, "malformed"),
    ],
)
def test_hostile_acceptances_are_refused(
    tamper: Callable[[dict[str, Any]], object], error: type[Exception], reason: str
) -> None:
    offer, book = an_offer(), OfferBook()
    body = json.loads(encode(an_acceptance(offer)))
    tamper(body)
    with pytest.raises(error) as caught:
        validate_acceptance(book, offer, offer.offer_id.hex(), orjson.dumps(body), now=now_ms())
    assert get_refusal_reason(caught.value) == reason  # type: ignore[arg-type]
    assert book.taken == {}


def test_a_taken_offer_refuses_a_replay_and_others_offers_are_not_ours() -> None:
    offer, book = an_offer(), OfferBook()
    acc = an_acceptance(offer)
    book.record(acc)
    for payload in (encode(acc), encode(an_acceptance(offer, MALLORY)), b"junk"):
        with pytest.raises(OfferTaken) as caught:  # the open offer is another by now
            validate_acceptance(book, an_offer(), offer.offer_id.hex(), payload, now=now_ms())
        assert get_refusal_reason(caught.value) == "taken"
    other = an_offer()
    payload = encode(an_acceptance(other))
    assert validate_acceptance(book, offer, other.offer_id.hex(), payload, now=now_ms()) is None


# --- the worker in process ----------------------------------------------------------------


def modules() -> list[Any]:
    return [*base_modules(), HTLCModule()]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, wait: float = 60) -> None:
    end = time.monotonic() + wait
    while not await check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {wait} s: {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def world() -> AsyncIterator[tuple[dict[str, InProcessChain], MemoryBus]]:
    specs = {s.chain_id: s for s in build_devnet((A, B), seed=SEED)}
    nodes = {
        cid: Node.open(
            s.genesis, modules, s.validator_keys, MemoryBlockStore(), block_interval=0.05
        )
        for cid, s in specs.items()
    }
    bus = MemoryBus()
    async with bus, nodes[A], nodes[B]:
        handles = {cid: InProcessChain(n) for cid, n in nodes.items()}
        await eventually(lambda: _height_at_least(handles[B], 12), "ten blocks on B")
        yield handles, bus


async def _height_at_least(h: InProcessChain, n: int) -> bool:
    return await h.latest_height() >= n


async def balance(h: InProcessChain, who: PrivateKey, denom: str) -> int:
    got = await h.query("bank", "balance", {"address": who.address, "denom": denom})
    assert isinstance(got, int)
    return got


async def holdings(handles: dict[str, InProcessChain]) -> list[int]:
    """alice's usd on A and eur on B, then bob's."""
    legs = ((A, ALICE, "usd"), (B, ALICE, "eur"), (A, BOB, "usd"), (B, BOB, "eur"))
    return [await balance(handles[c], k, d) for c, k, d in legs]


async def open_offers(bus: MemoryBus) -> list[Offer]:
    """The offers retained on the bus that verify (withdrawn ones are empty)."""
    found = []
    async with messages(bus, OFFERS_FILTER) as q:
        while (msg := await next_message(q, time.monotonic() + 0.3)) is not None:
            if msg.payload:
                oid = msg.topic.rsplit("/", 1)[-1]
                found.append(parse_offer(msg.payload, now_ms=now_ms(), offer_id=oid))
    return found


async def take(
    bus: MemoryBus, handles: dict[str, InProcessChain], offer: Offer, key: PrivateKey = BOB
) -> tuple[SwapDriver, str, Acceptance]:
    """Bob (or ``key``) accepts ``offer`` as ``swap accept`` does and opens his side."""
    acc = an_acceptance(offer, key)
    oid = offer.offer_id.hex()
    async with messages(bus, ANSWERS_TOPIC.format(offer_id=oid)) as answers:
        await bus.publish(ACCEPTS_TOPIC.format(offer_id=oid), encode(acc))
        msg = await next_message(answers, time.monotonic() + 30)
        assert msg is not None, "no answer from the maker"
        answer = parse_answer(msg.payload, offer, acc)
    terms = compute_terms(offer, acc, answer)
    safety = await measure_safety(handles[A], handles[B])
    driver = SwapDriver(Party(key, key), handles[A], handles[B], MemorySwapStore(), safety)
    await driver.open(terms, Role.PARTICIPANT)
    return driver, terms.swap_id, acc


async def finish(driver: SwapDriver) -> SwapState:
    async def idle() -> None:
        await asyncio.sleep(0.02)

    await asyncio.wait_for(driver.run(idle), 60)
    await driver.drain()
    (swap,) = driver.swaps.values()
    return swap.state


def start(worker: MakerWorker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.follow(), name=worker.name)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def refused(metrics: Metrics, reason: str) -> float:
    return metrics.maker_refused.labels("maker:desk", reason)._value.get()


async def test_the_maker_answers_takers_until_its_budget_is_spent_and_resumes(
    tmp_path: Path,
) -> None:
    async with world() as (handles, bus):
        before = await holdings(handles)
        metrics = Metrics()

        def worker() -> MakerWorker:
            return MakerWorker(entry(), ALICE, handles[A], handles[B], bus, metrics, tmp_path)

        w = worker()
        task = start(w)
        await eventually(lambda: _has_offer(w), "the first offer")
        (first,) = await open_offers(bus)
        assert first.offer_id.hex() == w.mstatus.offer_id
        assert (first.give, first.take) == (
            Leg(A, "usd", 100, ALICE.address), Leg(B, "eur", 92, ALICE.address)
        )  # fmt: skip

        # strangers' acceptances: forged, expired, garbage; none is answered
        topic = ACCEPTS_TOPIC.format(offer_id=first.offer_id.hex())
        forged = json.loads(encode(an_acceptance(first, MALLORY)))
        forged["address_a"] = BOB.address
        await bus.publish(topic, orjson.dumps(forged))
        await bus.publish(topic, encode(an_acceptance(first, MALLORY, expires_in=-1)))
        await bus.publish(topic, b"{" * 5000)
        await eventually(lambda: _refused(w, 3), "three refusals")
        assert (refused(metrics, "forged"), refused(metrics, "expired")) == (1, 1)
        assert refused(metrics, "oversized") == 1
        assert w.mstatus.offer_id == first.offer_id.hex()  # still open

        driver, swap_id, acc = await take(bus, handles, first)
        assert await finish(driver) is SwapState.REDEEMED
        await eventually(lambda: _in_flight(w, 0), "the maker's swap ended")
        # a replay of the answered acceptance: refused, the offer is taken
        await bus.publish(topic, encode(acc))
        await eventually(lambda: _refused(w, 4), "the replay refused")
        assert refused(metrics, "taken") == 1

        # the next taker finds a fresh offer; the maker is stopped in the middle of it
        await eventually(lambda: _has_offer(w), "a fresh offer")
        (second,) = await open_offers(bus)
        assert second.offer_id != first.offer_id
        driver, swap_id, _ = await take(bus, handles, second)
        await eventually(lambda: _in_flight(w, 1), "the second swap in flight")
        await stop(task)
        assert w.mstatus.swaps == {}
        w = worker()
        task = start(w)
        try:
            await eventually(lambda: _state_known(w), "the swap resumed")
            assert list(w.mstatus.swaps) == [swap_id]
            assert await finish(driver) is SwapState.REDEEMED
            await eventually(lambda: _in_flight(w, 0), "the resumed swap ended")
            # the budget (two swaps) is spent: no offer, and the retained ones withdrawn
            await asyncio.sleep(0.3)
            assert w.mstatus.offer_id == ""
            assert await open_offers(bus) == []
            shown = w.status.to_json()["maker"]
            assert isinstance(shown, dict)
            assert shown["budget_left"] == {"swaps": 0, "give": None}
            assert shown["spent"] == {"swaps": 2, "given": 200}
        finally:
            await stop(task)
        after = await holdings(handles)
        assert after == [before[0] - 200, before[1] + 184, before[2] + 200, before[3] - 184]
        assert metrics.maker_swaps.labels("maker:desk", "redeemed")._value.get() == 2
        stores = sorted(p.name for p in (tmp_path / "swaps").iterdir())
        assert stores == sorted(f"{o.offer_id.hex()}.initiator.sqlite" for o in (first, second))


async def test_three_takers_at_once_run_on_the_makers_one_nonce_sequence(
    tmp_path: Path,
) -> None:
    """Three takers accept one after another as fast as offers appear, so the maker's
    three swaps are in flight together: every lock and claim of the maker goes through
    its one sequence per chain, nothing is refused, every swap is redeemed."""
    takers = (BOB, CAROL, DAVE)
    async with world() as (handles, bus):
        legs = [(A, ALICE, "usd"), (B, ALICE, "eur")]
        legs += [(c, k, d) for k in takers for c, d in ((A, "usd"), (B, "eur"))]
        before = [await balance(handles[c], k, d) for c, k, d in legs]
        metrics = Metrics()
        w = MakerWorker(entry(max_swaps=3), ALICE, handles[A], handles[B], bus, metrics, tmp_path)
        task = start(w)
        try:
            # each taker's driver runs from the moment it took its offer (held back, a
            # loaded machine let the maker's first swap expire before the third was
            # taken); the maker's swaps overlap, as tests/htlc/test_shared_key.py pins
            # down block by block
            runs = []
            for key in takers:
                await eventually(lambda: _has_offer(w), "an offer")
                (offer,) = await open_offers(bus)
                driver = (await take(bus, handles, offer, key))[0]
                runs.append(asyncio.create_task(finish(driver)))
            ends = await asyncio.gather(*runs)
            assert ends == [SwapState.REDEEMED] * 3
            await eventually(lambda: _in_flight(w, 0), "the maker's swaps ended")
        finally:
            await stop(task)
        assert metrics.maker_swaps.labels("maker:desk", "redeemed")._value.get() == 3
        assert (w.nonces[A].sent, w.nonces[B].sent) == (3, 3)  # three locks, three claims
        assert [s.failures for s in w.nonces.values()] == [{}, {}]
        counted = [s for m in metrics.maker_tx_failures.collect() for s in m.samples]
        assert counted == []
        w.nonces[B].record_failure("bad_nonce")  # what a refusal reports lands in /metrics
        assert metrics.maker_tx_failures.labels("maker:desk", B, "bad_nonce")._value.get() == 1
        after = [await balance(handles[c], k, d) for c, k, d in legs]
        want = [before[0] - 300, before[1] + 276]
        for i in range(len(takers)):
            want += [before[2 + 2 * i] + 100, before[3 + 2 * i] - 92]
        assert after == want


async def test_a_maker_short_of_funds_publishes_nothing(tmp_path: Path) -> None:
    async with world() as (handles, bus):
        poor = PrivateKey.derive(SEED, "nobody-funded")
        w = MakerWorker(entry(), poor, handles[A], handles[B], bus, Metrics(), tmp_path)
        task = start(w)
        try:
            await eventually(lambda: _error(w), "the shortfall reported")
            assert "less than 100" in w.status.last_error
            assert await open_offers(bus) == []
        finally:
            await stop(task)


async def _has_offer(w: MakerWorker) -> bool:
    return bool(w.mstatus.offer_id)


async def _refused(w: MakerWorker, n: int) -> bool:
    return w.mstatus.refused >= n


async def _in_flight(w: MakerWorker, n: int) -> bool:
    return len(w.mstatus.swaps) == n


async def _state_known(w: MakerWorker) -> bool:
    return len(w.mstatus.swaps) == 1 and w.status.state == "running"


async def _error(w: MakerWorker) -> bool:
    return bool(w.status.last_error)

"""The I/O steps of swap offers that ``interlock swap offer/accept`` and the daemon's
makers (:mod:`interlock.maker`) share: measuring the two chains, checking funds, reading
a bus topic into a queue, and the maker's answer to an acceptance.

The messages and their checks are :mod:`interlock.offers` (pure); these are the shell
around them. The maker's answer is two steps so that a caller can record it in between:
:func:`open_answer` persists the swap (its secret sealed) before anyone hears of the
hashlock, :func:`publish_answer` tells the taker and withdraws the offer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from chains.crypto import PrivateKey
from chains.engine import get_finality_depth
from chains.handle import ChainHandle
from chains.service.bus import Bus, BusMessage
from htlc.driver import LockProver, NonceSequence, Party, SwapDriver
from htlc.store import SwapStore
from htlc.swap import ChainParams, Role, Safety, SafetyPolicy, SwapTerms
from interlock.cmd_common import block_interval
from interlock.errors import CommandError
from interlock.offers import (
    ANSWERS_TOPIC,
    OFFERS_TOPIC,
    Acceptance,
    Answer,
    Offer,
    encode,
    make_answer,
)

__all__ = [
    "INTERVAL_SLACK_PERMILLE",
    "MAKER_POLICY",
    "OpenAnswer",
    "check_funds",
    "measure_safety",
    "messages",
    "next_message",
    "now_ms",
    "open_answer",
    "publish_answer",
]

INTERVAL_SLACK_PERMILLE = 500
"""Measured block intervals vary: the safety rules assume each may be 50 % off."""

MAKER_POLICY = SafetyPolicy(reaction_ms=20_000, min_delta_ms=60_000)
"""The maker plans with four times the reaction time the taker checks against (the
engine's default policy, 5 s): the taker judges the answer later, from its own measure
of the block intervals, once the maker's lock is final, and an answer planned at the
bare minimum would be refused by a taker a few blocks on. With twice (10 s) a taker on
a loaded machine refused the maker's lock by one block (104 left, 105 needed) after
~15 s of scheduling delays; the extra 10 s only lengthen the timelocks."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def measure_safety(a: ChainHandle, b: ChainHandle) -> Safety:
    """Each chain's interval (its engine's, or measured on a BFT chain) and its engine's
    finality depth (its ``/status``): the driver acts on the counterparty's lock or claim
    once that deep, and Δ covers both chains' depths."""
    params = []
    for chain in (a, b):
        _, interval = await block_interval(chain)
        ms = max(1, round(interval * 1000))
        depth = get_finality_depth((await chain.get_consensus()).engine)
        params.append(ChainParams(chain.chain_id, ms, depth, INTERVAL_SLACK_PERMILLE))
    return Safety(params[0], params[1], SafetyPolicy())


async def check_funds(chain: ChainHandle, who: str, denom: str, amount: int) -> None:
    """Raise :class:`CommandError` unless ``who`` holds ``amount`` of ``denom``."""
    have = await chain.query("bank", "balance", {"address": who, "denom": denom})
    if not isinstance(have, int) or have < amount:
        raise CommandError(
            f"{who} has {have} {denom} on {chain.chain_id}, less than {amount}; nothing published"
        )


@asynccontextmanager
async def messages(bus: Bus, topic: str) -> AsyncIterator[asyncio.Queue[BusMessage]]:
    """The messages of ``topic`` in a queue fed by an owned task (subscribed on entry)."""
    queue: asyncio.Queue[BusMessage] = asyncio.Queue(1000)
    sub = bus.subscribe(topic)
    await sub.start()

    async def pump() -> None:
        async for msg in sub:
            if queue.full():
                continue  # a flood of junk: drop it, a real message is re-sent or retained
            queue.put_nowait(msg)

    task = asyncio.create_task(pump(), name=f"offers:{topic}")
    try:
        yield queue
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sub.aclose()


async def next_message(queue: asyncio.Queue[BusMessage], deadline: float) -> BusMessage | None:
    """The next message, or None at ``deadline`` (``time.monotonic()``)."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    try:
        return await asyncio.wait_for(queue.get(), left)
    except TimeoutError:
        return None


@dataclass(frozen=True, slots=True)
class OpenAnswer:
    """A maker's swap, stored and not yet announced."""

    driver: SwapDriver
    """The maker's driver of the swap (opened: the swap is in its store)."""
    terms: SwapTerms
    """The swap's terms."""
    answer: Answer
    """The signed answer to publish."""
    safety: Safety
    """The rules the driver keeps to (the engine's default margins)."""


async def open_answer(
    made: Offer,
    acc: Acceptance,
    key: PrivateKey,
    a: ChainHandle,
    b: ChainHandle,
    store: SwapStore,
    *,
    prover: LockProver | None = None,
    nonces: Mapping[str, NonceSequence] | None = None,
) -> OpenAnswer:
    """The maker's answer to the acceptance ``acc`` of its offer ``made``: a fresh secret,
    timelocks planned with :data:`MAKER_POLICY` at both chains' heights now, and the swap
    opened in ``store`` (the secret persisted, sealed) before anyone hears of the
    hashlock. Nothing is published. ``prover``: the driver's (``htlc.driver``): the
    taker's lock is acted on only once proven. ``nonces``: the key's nonce sequence per
    chain, shared with the key's other drivers (the daemon's maker)."""
    secret = os.urandom(32)
    # The chains are measured once. The plan takes MAKER_POLICY's margins; the driver
    # keeps to the engine's default ones, as the taker's does: planned at MAKER_POLICY's
    # bare minimum, a lock the maker's driver judged by that same policy was "too late"
    # once B had moved a block (606 left, 607 needed).
    safety = await measure_safety(a, b)
    answer, terms = make_answer(
        key, made, acc, hashlock=hashlib.sha256(secret).digest(),
        safety=dataclasses.replace(safety, policy=MAKER_POLICY),
        height_a=await a.latest_height(), height_b=await b.latest_height(),
    )  # fmt: skip
    driver = SwapDriver(Party(key, key), a, b, store, safety, prover=prover, nonces=nonces)
    await driver.open(terms, Role.INITIATOR, secret)
    return OpenAnswer(driver, terms, answer, safety)


async def publish_answer(bus: Bus, made: Offer, answer: Answer) -> None:
    """Tell the taker (retained: a taker that reconnects still finds it) and withdraw the
    offer (an empty retained payload): it is taken."""
    oid = made.offer_id.hex()
    await bus.publish(ANSWERS_TOPIC.format(offer_id=oid), encode(answer), retain=True)
    await bus.publish(OFFERS_TOPIC.format(offer_id=oid), b"", retain=True)

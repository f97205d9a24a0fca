"""``interlock swap offer|offers|accept|status|list``: agree on a swap over the bus with
someone you do not trust, then run your side of it to the end.

The messages and their checks are :mod:`interlock.offers` (pure); this is the shell: the
bus, the chains' RPC, the clock, and the swap driver. The maker is the swap's initiator
(it makes the secret and locks first, on the chain it gives from); the taker is the
participant. Each side of a swap lives in its own SQLite store,
``$INTERLOCK_HOME/swaps/<offer id>.<role>.sqlite``, written before every transaction, so
``swap status ID --wait`` after a crash resumes it exactly (a store per side: two
drivers sharing a store would move each other's chain cursors, and a maker and a taker
may share one home, as two keys of one person do).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from chains.crypto import PrivateKey
from chains.service.bus import Bus, BusMessage, open_bus
from chains.service.rpc_client import HttpChain
from htlc.driver import Party, SwapDriver
from htlc.swap import Role, Swap, SwapState
from interlock.cmd_common import (
    Chains,
    parse_amount,
    parse_duration,
)
from interlock.commands import BUS_ENV, emit
from interlock.errors import CommandError, NotFound, OfferError
from interlock.keys import interlock_home
from interlock.offer_steps import (
    check_funds,
    measure_safety,
    messages,
    next_message,
    now_ms,
    open_answer,
    publish_answer,
)
from interlock.offers import (
    ACCEPTS_TOPIC,
    ANSWERS_TOPIC,
    OFFERS_FILTER,
    OFFERS_TOPIC,
    Leg,
    Offer,
    OfferBook,
    compute_terms,
    encode,
    make_acceptance,
    make_offer,
    parse_acceptance,
    parse_answer,
    parse_offer,
    validate_answer_terms,
)
from interlock.swap_store import SQLiteSwapStore

__all__ = ["accept", "list_swaps", "offer", "offers", "status"]


# --- shell helpers ------------------------------------------------------------------------


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        print(line, flush=True)


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _bus_url(args: argparse.Namespace) -> str:
    url = args.bus_url or os.environ.get(BUS_ENV)
    if not url:
        raise CommandError(f"no bus: give --bus-url mqtt://HOST:PORT or set ${BUS_ENV}")
    if url.startswith("memory:"):
        raise CommandError("the in-memory bus reaches no one else: give an mqtt:// URL")
    return url


def _leg_arg(text: str) -> tuple[int, str, str]:
    amount_text, at, chain_id = text.rpartition("@")
    if not at or not chain_id:
        raise CommandError(f"bad leg {text[:80]!r}: expected AMOUNTDENOM@CHAIN, e.g. 100usd@a")
    amount, denom = parse_amount(amount_text)
    return amount, denom, chain_id


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home) if args.home is not None else interlock_home()


def _store_path(args: argparse.Namespace, offer_id: str, role: Role) -> Path:
    return _home(args) / "swaps" / f"{offer_id}.{role.value}.sqlite"


async def _drive(
    args: argparse.Namespace,
    driver: SwapDriver,
    swap_id: str,
    interval: float,
) -> int:
    """Run the driver until the swap ends; print each state it reaches."""
    seen: SwapState | None = None

    async def idle() -> None:
        nonlocal seen
        swap = driver.swaps.get(swap_id)
        if swap is not None and swap.state is not seen:
            seen = swap.state
            note = f" ({swap.note})" if swap.note else ""
            _say(args, f"  swap {swap_id[:16]}...: {swap.state.value}{note}")
        await asyncio.sleep(interval)

    try:
        await driver.run(idle)
        await driver.drain()
    finally:
        await driver.aclose()
    final = driver.store.get(swap_id)
    assert final is not None  # opened above: the store has it
    return _report(args, final)


def _report(args: argparse.Namespace, swap: Swap) -> int:
    t = swap.terms
    obj = {
        "swap_id": swap.swap_id, "role": swap.role.value, "state": swap.state.value,
        "note": swap.note, "terms": t.to_json(),
    }  # fmt: skip
    lines = [
        f"swap {swap.swap_id} ({swap.role.value}): {swap.state.value}"
        + (f" - {swap.note}" if swap.note else ""),
        f"  {t.a.chain_id}: {t.a.amount} {t.a.denom} {t.a.sender} -> {t.a.receiver}, "
        f"timelock {t.a.timelock}",
        f"  {t.b.chain_id}: {t.b.amount} {t.b.denom} {t.b.sender} -> {t.b.receiver}, "
        f"timelock {t.b.timelock}",
    ]
    emit(args, obj, lines)
    return 0 if swap.state is SwapState.REDEEMED or not swap.is_terminal else 1


# --- the commands -----------------------------------------------------------------------


async def offer(args: argparse.Namespace) -> int:
    give_amount, give_denom, give_chain = _leg_arg(args.give)
    take_amount, take_denom, take_chain = _leg_arg(args.take)
    if give_chain == take_chain:
        raise CommandError("--give and --take must be on different chains")
    lifetime_ms = int(parse_duration(args.expires) * 1000)
    url = _bus_url(args)
    async with Chains.from_args(args) as chains:
        a, b = await chains.get(give_chain), await chains.get(take_chain)
        key = chains.key(args.key)
        await check_funds(a, key.address, give_denom, give_amount)
        made = make_offer(
            key,
            Leg(give_chain, give_denom, give_amount, key.address),
            Leg(take_chain, take_denom, take_amount, key.address),
            expires_ms=now_ms() + lifetime_ms,
        )
        oid = made.offer_id.hex()
        async with (
            open_bus(url) as bus,
            messages(bus, ACCEPTS_TOPIC.format(offer_id=oid)) as accepts,
        ):
            await bus.publish(OFFERS_TOPIC.format(offer_id=oid), encode(made), retain=True)
            _say(args, f"offer {oid}")
            _say(args, f"  give {give_amount} {give_denom} on {give_chain}, "
                 f"take {take_amount} {take_denom} on {take_chain}")  # fmt: skip
            if not args.wait:
                emit(args, {"offer_id": oid, "offer": made.to_json()}, [])
                return 0
            _say(args, "  waiting for a taker...")
            return await _make(args, bus, accepts, made, key, a, b, chains)


async def _make(
    args: argparse.Namespace,
    bus: Bus,
    accepts: asyncio.Queue[BusMessage],
    made: Offer,
    key: PrivateKey,
    a: HttpChain,
    b: HttpChain,
    chains: Chains,
) -> int:
    oid = made.offer_id.hex()
    book = OfferBook()
    deadline = time.monotonic() + (made.expires_ms - now_ms()) / 1000
    while True:
        msg = await next_message(accepts, deadline)
        if msg is None:
            await bus.publish(OFFERS_TOPIC.format(offer_id=oid), b"", retain=True)
            raise CommandError(f"offer {oid[:16]}... expired untaken (withdrawn)")
        try:
            acc = parse_acceptance(msg.payload, made, now_ms=now_ms())
            book.record(acc)
        except OfferError as exc:  # strangers publish here too: refuse and go on
            _warn(f"refused an acceptance: {exc}")
            continue
        break
    store = SQLiteSwapStore(_store_path(args, oid, Role.INITIATOR), key=key)
    try:
        prover = await chains.prover(a.chain_id, b.chain_id)
        opened = await open_answer(made, acc, key, a, b, store, prover=prover)
        await publish_answer(bus, made, opened.answer)
        driver, terms, safety = opened.driver, opened.terms, opened.safety
        _say(args, f"  accepted by {acc.address_b}; swap {terms.swap_id}")
        _say(args, f"  timelocks {terms.a.chain_id} {terms.a.timelock}, "
             f"{terms.b.chain_id} {terms.b.timelock}")  # fmt: skip
        return await _drive(args, driver, terms.swap_id, safety.a.block_interval_ms / 2000)
    finally:
        store.close()


async def offers(args: argparse.Namespace) -> int:
    url = _bus_url(args)
    listen = parse_duration(args.listen)
    found: dict[str, Offer] = {}
    refused = 0
    async with open_bus(url) as bus, messages(bus, OFFERS_FILTER) as queue:
        deadline = time.monotonic() + listen
        while (msg := await next_message(queue, deadline)) is not None:
            if not msg.payload:
                continue  # a withdrawn offer
            try:
                got = parse_offer(msg.payload, now_ms=now_ms(), offer_id=msg.topic.split("/")[-1])
            except OfferError:
                refused += 1  # never shown
                continue
            found[got.offer_id.hex()] = got
    rows = sorted(found.values(), key=lambda o: o.expires_ms)
    lines = [
        f"{o.offer_id.hex()}  give {o.give.amount}{o.give.denom}@{o.give.chain_id}  "
        f"take {o.take.amount}{o.take.denom}@{o.take.chain_id}  maker {o.give.address}  "
        f"expires in {max(0, o.expires_ms - now_ms()) // 1000}s"
        for o in rows
    ] or ["no open offers"]
    if refused:
        lines.append(f"({refused} refused: forged, expired or malformed)")
    emit(args, {"offers": [o.to_json() | {"offer_id": o.offer_id.hex()} for o in rows],
                "refused": refused}, lines)  # fmt: skip
    return 0


async def accept(args: argparse.Namespace) -> int:
    oid = args.offer_id.strip().lower()
    if len(oid) != 64 or any(c not in "0123456789abcdef" for c in oid):
        raise CommandError(f"bad offer id {oid[:80]!r}: expected 64 hex digits")
    timeout = parse_duration(args.answer_timeout)
    max_lock_ms = int(parse_duration(args.max_lock) * 1000)
    url = _bus_url(args)
    async with Chains.from_args(args) as chains, open_bus(url) as bus:
        key = chains.key(args.key)
        async with messages(bus, OFFERS_TOPIC.format(offer_id=oid)) as q:
            the_offer: Offer | None = None
            deadline = time.monotonic() + 10.0
            while the_offer is None and (msg := await next_message(q, deadline)) is not None:
                try:
                    the_offer = parse_offer(msg.payload, now_ms=now_ms(), offer_id=oid)
                except OfferError as exc:
                    _warn(f"refused: {exc}")
        if the_offer is None:
            raise NotFound(f"open offer {oid[:16]}... on the bus")
        a = await chains.get(the_offer.give.chain_id)
        b = await chains.get(the_offer.take.chain_id)
        await check_funds(b, key.address, the_offer.take.denom, the_offer.take.amount)
        acc = make_acceptance(
            key, the_offer, address_a=key.address, expires_ms=now_ms() + int(timeout * 1000)
        )
        async with messages(bus, ANSWERS_TOPIC.format(offer_id=oid)) as answers:
            await bus.publish(ACCEPTS_TOPIC.format(offer_id=oid), encode(acc))
            _say(args, f"accepted offer {oid[:16]}...; waiting for the maker's answer")
            deadline = time.monotonic() + timeout
            while True:
                msg = await next_message(answers, deadline)
                if msg is None:
                    raise CommandError(f"no answer from the maker within {timeout:g} s")
                try:
                    ans = parse_answer(msg.payload, the_offer, acc)
                except OfferError as exc:
                    if msg.payload and not msg.retain:
                        _warn(f"refused an answer: {exc}")
                    continue  # an answer to an earlier taker, retained: not ours
                break
        terms = compute_terms(the_offer, acc, ans)
        safety = await measure_safety(a, b)
        validate_answer_terms(
            terms, safety, height_a=await a.latest_height(), height_b=await b.latest_height(),
            max_lock_ms=max_lock_ms,
        )  # fmt: skip
        prover = await chains.prover(a.chain_id, b.chain_id)
        store = SQLiteSwapStore(_store_path(args, oid, Role.PARTICIPANT), key=key)
        try:
            driver = SwapDriver(Party(key, key), a, b, store, safety, prover=prover)
            await driver.open(terms, Role.PARTICIPANT)
            _say(args, f"  swap {terms.swap_id}; timelocks {terms.a.chain_id} "
                 f"{terms.a.timelock}, {terms.b.chain_id} {terms.b.timelock}")  # fmt: skip
            if not args.wait:
                return _report(args, driver.swaps[terms.swap_id])
            return await _drive(args, driver, terms.swap_id, safety.b.block_interval_ms / 2000)
        finally:
            store.close()


def _party(swap: Swap) -> str:
    """The address of the side this store drives: the initiator locks on A, the
    participant on B."""
    leg = swap.terms.a if swap.role is Role.INITIATOR else swap.terms.b
    return leg.sender


def _offer_id(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _stores(args: argparse.Namespace) -> list[Path]:
    d = _home(args) / "swaps"
    return sorted(d.glob("*.sqlite")) if d.is_dir() else []


def _all_swaps(args: argparse.Namespace) -> list[tuple[Path, Swap]]:
    out = []
    for path in _stores(args):
        store = SQLiteSwapStore(path)
        try:
            out += [(path, s) for s in store.all()]
        finally:
            store.close()
    return out


def list_swaps(args: argparse.Namespace) -> int:
    swaps = _all_swaps(args)
    lines = [
        f"{s.swap_id}  {s.role.value:<11} {s.state.value:<14} "
        f"{s.terms.a.amount}{s.terms.a.denom}@{s.terms.a.chain_id} <-> "
        f"{s.terms.b.amount}{s.terms.b.denom}@{s.terms.b.chain_id}  offer {p.stem[:16]}..."
        for p, s in swaps
    ] or ["no swaps"]
    emit(args, {"swaps": [{"swap_id": s.swap_id, "offer_id": _offer_id(p), "role": s.role.value,
                           "state": s.state.value} for p, s in swaps]}, lines)  # fmt: skip
    return 0


async def status(args: argparse.Namespace) -> int:
    want = args.swap_id.strip().lower()
    hits = [(p, s) for p, s in _all_swaps(args) if s.swap_id.startswith(want)
            or _offer_id(p).startswith(want)]  # fmt: skip
    if not hits or not want:
        raise NotFound(f"swap {want[:64]!r} in {_home(args) / 'swaps'}")
    if len({s.swap_id for _, s in hits}) > 1:
        raise CommandError(f"{len(hits)} swaps start with {want!r}: give more digits")
    if not args.wait or all(s.is_terminal for _, s in hits):
        return max(_report(args, s) for _, s in hits)
    async with Chains.from_args(args) as chains:
        key = chains.key(args.key) if args.key else None
        if key is None:
            raise CommandError("--wait needs --key: the driver signs its transactions")
        # both sides of one swap may be kept in one home: drive the side --key is party to
        mine = [(p, s) for p, s in hits if _party(s) == key.address]
        if len(mine) != 1:
            raise CommandError(f"--key {args.key!r} is not a party to swap {want!r}")
        path, swap = mine[0]
        a, b = await chains.get(swap.terms.a.chain_id), await chains.get(swap.terms.b.chain_id)
        safety = await measure_safety(a, b)
        prover = await chains.prover(a.chain_id, b.chain_id)
        store = SQLiteSwapStore(path, key=key)
        try:
            driver = SwapDriver(Party(key, key), a, b, store, safety, prover=prover)
            await driver.resume()
            return await _drive(args, driver, swap.swap_id, safety.a.block_interval_ms / 2000)
        finally:
            store.close()

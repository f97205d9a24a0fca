"""The relayer daemon as a market maker: a ``maker:NAME`` worker per ``[[makers]]`` entry.

Each worker keeps one signed standing offer on the bus (retained, as ``swap offer``
publishes it), answers the first valid acceptance exactly as ``swap offer --wait`` does
(:func:`interlock.offer_steps.open_answer` then :func:`~interlock.offer_steps.publish_answer`),
publishes a fresh offer for the next taker while its budget lasts, and runs every
accepted swap's :class:`~htlc.driver.SwapDriver` to its end.

State, under ``DATA_DIR/makers/NAME/`` (so ``INTERLOCK_HOME=DATA_DIR/makers/NAME
interlock swap list`` lists the maker's swaps):

* ``swaps/OFFER_ID.initiator.sqlite``: one :class:`~interlock.swap_store.SQLiteSwapStore`
  per swap, written before every transaction, its secret sealed under the maker's key.
  These files are the truth of what was begun: the budget spent and the offers taken are
  counted from them at every start.
* ``maker.sqlite``: the offer published (so a restart re-publishes the same one while it
  is valid) and each answer sent (so a restart re-publishes it, retained, for a taker
  that missed it).

Every swap's driver signs with the maker's key through one shared
:class:`~htlc.driver.NonceSequence` per chain, so swaps acting in the same block never
collide on a nonce (drivers counting their own nonces did: the node refused all but one,
and a lock re-sent too late was never sent, its swap aborted). The key's transactions
that were refused or failed are counted in ``interlock_maker_tx_failures{work,chain,code}``.

A restart, even after ``kill -9``, resumes every unfinished swap from its store and
re-publishes the open offer. An acceptance that is refused (forged, expired, malformed,
for an offer already taken) is logged in one line and counted in
``interlock_maker_refused{work,reason}``; an acceptance of someone else's offer is not
ours and is ignored.

The decisions are pure functions (:func:`get_budget_left`, :func:`is_offer_due`,
:func:`validate_acceptance`, :func:`get_refusal_reason`); :class:`MakerWorker` is the
shell.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from chains.crypto import PrivateKey
from chains.encoding import JSONValue
from chains.handle import ChainHandle
from chains.service.bus import Bus, BusMessage
from chains.sqlite import open_store, transaction
from htlc.driver import NonceSequence, Party, SwapDriver
from htlc.swap import Role, Swap
from interlock.errors import (
    CommandError,
    ExpiredMessage,
    ForgedMessage,
    MalformedMessage,
    OfferError,
    OfferMismatch,
    OfferTaken,
    OversizedMessage,
)
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
    OFFERS_TOPIC,
    Acceptance,
    Leg,
    Offer,
    OfferBook,
    encode,
    make_offer,
    parse_acceptance,
    parse_offer,
)
from interlock.swap_store import SQLiteSwapStore
from interlock.trust import ProvenLocks, open_prover
from relayer.config import MakerEntry
from relayer.daemon import FollowFn, Worker, WorkerContext, WorkerKind
from relayer.metrics import Metrics
from relayer.transfer import WorkStatus

__all__ = [
    "BudgetLeft",
    "MakerStatus",
    "MakerStore",
    "MakerWorker",
    "Spent",
    "get_budget_left",
    "get_refusal_reason",
    "is_offer_due",
    "maker_kind",
    "validate_acceptance",
]

log = logging.getLogger("interlock.relayer")

ACCEPTS_FILTER = ACCEPTS_TOPIC.format(offer_id="+")
NO_FUNDS_RETRY_S = 10.0
"""A maker short of funds looks again this often (it publishes nothing meanwhile)."""
WAKE_S = 1.0
"""The loop wakes at least this often (to see a finished swap, an offer to renew)."""


# --- pure decisions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spent:
    """What a maker has begun so far (every answered swap, whatever its end)."""

    swaps: int = 0
    """Swaps answered."""
    given: int = 0
    """Sum of their ``give`` amounts."""

    def add(self, amount: int) -> Spent:
        return Spent(self.swaps + 1, self.given + amount)


@dataclass(frozen=True, slots=True)
class BudgetLeft:
    """What a maker may still answer (None: that limit is not configured)."""

    swaps: int | None
    """Swaps left."""
    give: int | None
    """Amount of ``give``'s denom left."""

    @property
    def allows_another(self) -> bool:
        """Is there room for one more swap? (``give`` is checked by :func:`get_budget_left`'s
        caller against one swap's amount.)"""
        return self.swaps != 0 and self.give != 0


def get_budget_left(entry: MakerEntry, spent: Spent) -> BudgetLeft:
    """The budget left after ``spent``; ``give`` counts only whole swaps: a remainder
    smaller than one swap's amount is 0."""
    swaps = None if entry.max_swaps is None else max(0, entry.max_swaps - spent.swaps)
    give = None
    if entry.max_give is not None:
        rest = max(0, entry.max_give - spent.given)
        give = rest if rest >= entry.give[0] else 0
    return BudgetLeft(swaps, give)


def is_offer_due(offer: Offer | None, budget: BudgetLeft, now: int) -> bool:
    """Should a fresh offer be made now? Only without a valid one and with budget left."""
    return (offer is None or offer.expires_ms <= now) and budget.allows_another


def validate_acceptance(
    book: OfferBook, offer: Offer | None, offer_id: str, payload: bytes, *, now: int
) -> Acceptance | None:
    """An untrusted payload from the accepts topic of ``offer_id``: the acceptance of our
    open ``offer`` it is (raises an :class:`OfferError` if refused), or None if the
    offer is not ours. An acceptance of an offer of ours already taken raises
    :class:`OfferTaken`. Changes nothing: the caller records the acceptance it answers."""
    if offer is not None and offer_id == offer.offer_id.hex():
        acc = parse_acceptance(payload, offer, now_ms=now)
        book.validate_fresh(acc)
        return acc
    for taken, accept_id in book.taken.items():
        if taken.hex() == offer_id:
            raise OfferTaken(offer_id, accept_id.hex())
    return None


_REASONS: tuple[tuple[type[OfferError], str], ...] = (
    (OversizedMessage, "oversized"),
    (MalformedMessage, "malformed"),
    (ExpiredMessage, "expired"),
    (ForgedMessage, "forged"),
    (OfferTaken, "taken"),
    (OfferMismatch, "mismatch"),
)


def get_refusal_reason(exc: OfferError) -> str:
    """A metrics label for a refusal: one of a fixed few, never a stranger's text."""
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "other"


# --- the maker's own record --------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offers (
    offer_id TEXT PRIMARY KEY,
    payload  BLOB NOT NULL,
    state    TEXT NOT NULL,       -- open, taken, withdrawn
    answer   BLOB                 -- the answer published, once taken
);
"""


class MakerStore:
    """The offers a maker published and the answers it sent (one SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_store(path, _SCHEMA, "maker store")

    def add_open(self, offer: Offer) -> None:
        with transaction(self._db) as db:
            db.execute("UPDATE offers SET state='withdrawn' WHERE state='open'")
            db.execute(
                "INSERT INTO offers VALUES (?, ?, 'open', NULL)",
                (offer.offer_id.hex(), encode(offer)),
            )

    def set_taken(self, offer_id: str, answer: bytes | None) -> None:
        with transaction(self._db) as db:
            db.execute(
                "UPDATE offers SET state='taken', answer=COALESCE(?, answer) WHERE offer_id=?",
                (answer, offer_id),
            )

    def set_withdrawn(self, offer_id: str) -> None:
        with transaction(self._db) as db:
            db.execute("UPDATE offers SET state='withdrawn' WHERE offer_id=?", (offer_id,))

    def open_offer(self) -> tuple[str, bytes] | None:
        """The offer published and neither taken nor withdrawn: (id, payload)."""
        row = self._db.execute("SELECT offer_id, payload FROM offers WHERE state='open'")
        found = row.fetchone()
        return None if found is None else (str(found[0]), bytes(found[1]))

    def answer(self, offer_id: str) -> bytes | None:
        row = self._db.execute("SELECT answer FROM offers WHERE offer_id=?", (offer_id,))
        found = row.fetchone()
        return None if found is None or found[0] is None else bytes(found[0])

    def close(self) -> None:
        self._db.close()


# --- the worker ----------------------------------------------------------------------------


@dataclass(slots=True)
class MakerStatus(WorkStatus):
    """``/status`` of a maker: the transfer fields it shares (``backlog`` = swaps in
    flight, ``relayed`` = swaps answered since start) and its own."""

    offer_id: str = ""
    """The open offer's id ("" when none is published)."""
    offer_expires_ms: int = 0
    """When it expires (Unix ms)."""
    swaps: dict[str, str] = field(default_factory=dict)
    """Swaps in flight: swap id -> state."""
    budget: BudgetLeft = BudgetLeft(None, None)
    """Budget left."""
    spent: Spent = Spent()
    """Budget spent, over the maker's whole life."""
    refused: int = 0
    """Acceptances refused since start."""

    def to_json(self) -> dict[str, JSONValue]:
        out = WorkStatus.to_json(self)  # slots dataclass: no zero-argument super()
        out["maker"] = {
            "offer_id": self.offer_id or None,
            "offer_expires_in_s": (
                round(max(0, self.offer_expires_ms - now_ms()) / 1000, 1) if self.offer_id else None
            ),
            "swaps_in_flight": dict(self.swaps),
            "budget_left": {"swaps": self.budget.swaps, "give": self.budget.give},
            "spent": {"swaps": self.spent.swaps, "given": self.spent.given},
            "refused": self.refused,
        }
        return out


class MakerWorker:
    """One ``[[makers]]`` entry: its standing offer and every swap it answered."""

    def __init__(
        self,
        entry: MakerEntry,
        key: PrivateKey,
        a: ChainHandle,
        b: ChainHandle,
        bus: Bus,
        metrics: Metrics,
        home: Path,
        *,
        stop: asyncio.Event | None = None,
        ctx: WorkerContext | None = None,
        trust_dir: Path | None = None,
    ) -> None:
        self.entry = entry
        self.key = key
        self.a, self.b = a, b
        self.bus = bus
        self.metrics = metrics
        self.home = home
        """``DATA_DIR/makers/NAME``."""
        self.name = entry.work
        self.mstatus = MakerStatus(self.name)
        self.status: WorkStatus = self.mstatus  # the supervisor's view of the same object
        self._stop = stop or asyncio.Event()
        self._ctx = ctx
        self.book = OfferBook()
        self.offer: Offer | None = None
        self.spent = Spent()
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._no_funds_until = 0.0
        self.trust_dir = trust_dir or home / "trust"
        """Where the verified readers' trust files are (``interlock.trust``)."""
        self._prover: ProvenLocks | None = None
        self._prover_opened = False
        self.nonces = {
            c.chain_id: NonceSequence(c, key, on_failure=self._failure_counter(c.chain_id))
            for c in (a, b)
        }
        """The key's one nonce sequence per chain, shared by every swap's driver."""

    def _failure_counter(self, chain_id: str) -> Callable[[str], None]:
        def count(code: str) -> None:
            self.metrics.maker_tx_failures.labels(self.name, chain_id, code).inc()

        return count

    async def prover(self) -> ProvenLocks | None:
        """What the drivers prove the taker's lock with: verified readers of both chains,
        anchored in the trust files (first use: the chains' final headers then, logged
        loudly); None over in-process handles (the demo's, the tests'), which are believed."""
        if not self._prover_opened:
            self._prover = await open_prover((self.a, self.b), self.trust_dir, log.warning)
            self._prover_opened = True
        return self._prover

    @property
    def swaps_dir(self) -> Path:
        return self.home / "swaps"

    def store_path(self, offer_id: str) -> Path:
        return self.swaps_dir / f"{offer_id}.{Role.INITIATOR.value}.sqlite"

    async def resolve_path(self) -> None:
        """Nothing to resolve: the chains answer or the supervisor waits (their ids are
        checked against the config when the daemon starts)."""
        await self.a.latest_height()
        await self.b.latest_height()

    def _busy(self, on: bool) -> None:
        if self._ctx is not None:
            self._ctx.busy(self.name, on)

    def _refresh(self) -> None:
        self.mstatus.spent = self.spent
        self.mstatus.budget = get_budget_left(self.entry, self.spent)
        self.mstatus.offer_id = "" if self.offer is None else self.offer.offer_id.hex()
        self.mstatus.offer_expires_ms = 0 if self.offer is None else self.offer.expires_ms
        self.mstatus.backlog = len(self.mstatus.swaps)
        self.mstatus.last_progress = time.time()

    # --- the loop -------------------------------------------------------------------
    async def follow(self) -> None:
        store = MakerStore(self.home / "maker.sqlite")
        try:
            async with messages(self.bus, ACCEPTS_FILTER) as accepts:
                await self._resume(store)
                self.mstatus.state = "running"
                self.mstatus.last_error = ""
                while not self._stop.is_set():
                    self._raise_failed_driver()
                    await self._renew_offer(store)
                    self._refresh()
                    wake = time.monotonic() + WAKE_S
                    if self.offer is not None:
                        left = (self.offer.expires_ms - now_ms()) / 1000
                        wake = time.monotonic() + max(0.0, min(WAKE_S, left))
                    msg = await next_message(accepts, wake)
                    if msg is not None:
                        await self._on_message(store, msg)
        finally:
            await self._stop_drivers()
            store.close()

    async def _resume(self, store: MakerStore) -> None:
        """Count what was begun from the swap stores, resume each unfinished swap, and
        re-publish its answer and the open offer."""
        self.spent = Spent()
        self.book = OfferBook()
        paths = sorted(self.swaps_dir.glob(f"*.{Role.INITIATOR.value}.sqlite"))
        for path in paths:
            oid = path.name.split(".", 1)[0]
            swap_store = SQLiteSwapStore(path, key=self.key)
            try:
                swaps = swap_store.all()
            except BaseException:
                swap_store.close()
                raise
            for swap in swaps:
                self.spent = self.spent.add(swap.terms.a.amount)
                self.book.taken[bytes.fromhex(oid)] = b""
            active = [s for s in swaps if not s.is_terminal]
            if not active or oid in self._drivers:
                swap_store.close()
                continue
            answer = store.answer(oid)
            if answer is not None:  # retained: a taker that missed it still finds it
                await self.bus.publish(ANSWERS_TOPIC.format(offer_id=oid), answer, retain=True)
            safety = await measure_safety(self.a, self.b)
            driver = SwapDriver(
                Party(self.key, self.key), self.a, self.b, swap_store, safety,
                prover=await self.prover(), nonces=self.nonces,
            )  # fmt: skip
            try:
                await driver.resume()
            except BaseException:
                swap_store.close()
                raise
            log.info("%s: resumed swap %s (%s)", self.name, active[0].swap_id[:16], oid[:16])
            self._start_driver(oid, driver, active[0].swap_id, safety.a.block_interval_ms / 2000)
        stored = store.open_offer()
        if stored is not None:
            oid, payload = stored
            try:
                offer = parse_offer(payload, now_ms=now_ms(), offer_id=oid)
            except OfferError:  # expired while we were down: withdraw it
                await self._withdraw(store, oid)
            else:
                if offer.offer_id in self.book.taken:  # its swap was stored, then a crash
                    store.set_taken(oid, None)
                else:
                    self.offer = offer
                    await self.bus.publish(
                        OFFERS_TOPIC.format(offer_id=offer.offer_id.hex()), payload, retain=True
                    )
                    log.info("%s: offer %s re-published", self.name, offer.offer_id.hex()[:16])
        self._refresh()

    async def _withdraw(self, store: MakerStore, offer_id: str) -> None:
        await self.bus.publish(OFFERS_TOPIC.format(offer_id=offer_id), b"", retain=True)
        store.set_withdrawn(offer_id)

    async def _renew_offer(self, store: MakerStore) -> None:
        now = now_ms()
        budget = get_budget_left(self.entry, self.spent)
        if self.offer is not None and self.offer.expires_ms <= now:
            oid = self.offer.offer_id.hex()
            self.offer = None
            await self._withdraw(store, oid)
            log.info("%s: offer %s expired untaken (withdrawn)", self.name, oid[:16])
        if not is_offer_due(self.offer, budget, now) or time.monotonic() < self._no_funds_until:
            return
        amount, denom, give_chain = self.entry.give
        t_amount, t_denom, take_chain = self.entry.take
        try:
            await check_funds(self.a, self.key.address, denom, amount)
        except CommandError as exc:
            self._no_funds_until = time.monotonic() + NO_FUNDS_RETRY_S
            if self.mstatus.last_error != str(exc):
                log.warning("%s: %s", self.name, exc)
            self.mstatus.last_error = str(exc)
            return
        made = make_offer(
            self.key,
            Leg(give_chain, denom, amount, self.key.address),
            Leg(take_chain, t_denom, t_amount, self.key.address),
            expires_ms=now + int(self.entry.offer_lifetime_s * 1000),
        )
        oid = made.offer_id.hex()
        store.add_open(made)  # before it is published: a restart re-publishes it
        await self.bus.publish(OFFERS_TOPIC.format(offer_id=oid), encode(made), retain=True)
        self.offer = made
        self.mstatus.last_error = ""
        log.info(
            "%s: offer %s: give %d%s@%s, take %d%s@%s",
            self.name, oid, amount, denom, give_chain, t_amount, t_denom, take_chain,
        )  # fmt: skip

    async def _on_message(self, store: MakerStore, msg: BusMessage) -> None:
        offer_id = msg.topic.rsplit("/", 1)[-1]
        try:
            acc = validate_acceptance(self.book, self.offer, offer_id, msg.payload, now=now_ms())
        except OfferError as exc:  # untrusted: one line, a count, nothing changed
            reason = get_refusal_reason(exc)
            self.metrics.maker_refused.labels(self.name, reason).inc()
            self.mstatus.refused += 1
            log.warning("%s: refused an acceptance of %s...: %s", self.name, offer_id[:16], exc)
            return
        if acc is None or self.offer is None:
            return  # another maker's offer
        await self._take(store, self.offer, acc)

    async def _take(self, store: MakerStore, made: Offer, acc: Acceptance) -> None:
        oid = made.offer_id.hex()
        self._busy(True)  # a stop lets the answer finish (bounded)
        try:
            swap_store = SQLiteSwapStore(self.store_path(oid), key=self.key)
            try:
                opened = await open_answer(
                    made, acc, self.key, self.a, self.b, swap_store,
                    prover=await self.prover(), nonces=self.nonces,
                )  # fmt: skip
            except BaseException:
                swap_store.close()
                raise
            # from here the swap is stored: the budget is spent and the offer taken
            self.book.record(acc)
            self.spent = self.spent.add(made.give.amount)
            self.offer = None
            store.set_taken(oid, encode(opened.answer))
            await publish_answer(self.bus, made, opened.answer)
            self.metrics.maker_swaps.labels(self.name, "answered").inc()
            self.mstatus.relayed += 1
            t = opened.terms
            log.info(
                "%s: offer %s accepted by %s: swap %s, timelocks %s %d, %s %d",
                self.name, oid[:16], acc.address_b, t.swap_id[:16],
                t.a.chain_id, t.a.timelock, t.b.chain_id, t.b.timelock,
            )  # fmt: skip
            interval = opened.safety.a.block_interval_ms / 2000
            self._start_driver(oid, opened.driver, t.swap_id, interval)
        finally:
            self._busy(False)
        self._refresh()

    # --- the swaps ------------------------------------------------------------------
    def _start_driver(self, oid: str, driver: SwapDriver, swap_id: str, interval: float) -> None:
        self.mstatus.swaps[swap_id] = driver.swaps[swap_id].state.value
        task = asyncio.create_task(
            self._drive(driver, swap_id, interval), name=f"{self.name}:{swap_id[:12]}"
        )
        self._drivers[oid] = task

    async def _drive(self, driver: SwapDriver, swap_id: str, interval: float) -> None:
        async def idle() -> None:
            swap = driver.swaps.get(swap_id)
            if swap is not None and self.mstatus.swaps.get(swap_id) != swap.state.value:
                self.mstatus.swaps[swap_id] = swap.state.value
                log.info(
                    "%s: swap %s: %s (%s)", self.name, swap_id[:16], swap.state.value, swap.note
                )
            await asyncio.sleep(interval)

        try:
            await driver.run(idle)
            await driver.drain()
            final: Swap | None = driver.store.get(swap_id)
            end = "unknown" if final is None else final.state.value
            self.metrics.maker_swaps.labels(self.name, end).inc()
            log.info("%s: swap %s ended: %s", self.name, swap_id[:16], end)
            self.mstatus.swaps.pop(swap_id, None)
        finally:
            await driver.aclose()
            driver.store.close()

    def _raise_failed_driver(self) -> None:
        """A driver that failed (its store, a bug) stops the worker: the supervisor logs
        it and starts again, resuming every swap from its store."""
        for oid, task in list(self._drivers.items()):
            if not task.done():
                continue
            del self._drivers[oid]
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc

    async def _stop_drivers(self) -> None:
        tasks = list(self._drivers.values())
        self._drivers.clear()
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        self.mstatus.swaps.clear()


def maker_kind(keys: Mapping[str, PrivateKey]) -> WorkerKind:
    """The daemon's maker workers (``Daemon(kinds=[maker_kind(keys)])``); ``keys`` by
    maker name."""

    def build(ctx: WorkerContext) -> list[tuple[Worker, FollowFn]]:
        out: list[tuple[Worker, FollowFn]] = []
        for m in ctx.settings.makers:
            w = MakerWorker(
                m, keys[m.name], ctx.handles[m.give[2]], ctx.handles[m.take[2]], ctx.bus,
                ctx.metrics, ctx.settings.data_dir / "makers" / m.name, stop=ctx.stop, ctx=ctx,
                trust_dir=ctx.settings.data_dir / "trust",
            )  # fmt: skip
            out.append((w, w.follow))
        return out

    return build

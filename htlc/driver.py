"""A thin async driver: runs one party's swaps against two chains, across restarts.

The loop is *observe → transition → persist → act*:

1. Read both tips; feed every ``htlc.*`` event of the *final* blocks since the stored
   cursor (up to ``tip - finality_depth`` of that chain's :class:`~htlc.swap.ChainParams`;
   a BFT chain's block is final once committed, depth 0) to the swaps it concerns (matched
   by lock id, or by hashlock for a lock posing as the counter leg), then a
   :class:`~htlc.swap.Tick` with both tips. Events first, so a party back from a long
   sleep sees a final claim before its timeout tick could make it refund; a lock or claim
   of the counterparty that is not final yet is not acted on (a reorganisation could
   take it back after we locked or revealed against it).
2. Persist every transition (``store.update_many``) *before* submitting any action, then
   advance the cursors. A crash anywhere replays inputs the engine ignores, or re-issues an
   action the chain refuses to double (deterministic lock ids, locks close once).
3. Submit actions as owned tasks, one nonce sequence per chain and key
   (:class:`NonceSequence`; drivers signing with one key share it, see below).

On start (:meth:`SwapDriver.resume`) and after a failed or refused transaction the driver
*reconciles* a swap: it queries both of its locks and feeds what the chain says
(:class:`~htlc.swap.LockObserved` / :class:`~htlc.swap.LockAbsent`), then re-issues the
pending action only if the state still needs it and, for a lock, only if it still leaves
the safety margins at fresh tips (:func:`~htlc.swap.resend_action` refuses a late lock
with :class:`~htlc.errors.InsufficientTime`, kept in :attr:`SwapDriver.rejected`). A
query answer is state at one endpoint's tip, so it is fed only from a chain whose tip is
final (depth 0).

*Absence is never taken from a query.* Behind a multi-endpoint handle, ``latest_height``
and ``query`` may be answered by different endpoints, one of them lagging: its "no such
lock" at another endpoint's height once aborted a swap whose lock existed (left unrefunded).
A lock is absent up to height ``h`` only when the driver itself fed every event of every
final block up to ``h`` (its cursor) and saw none: blocks are read by height, and an
endpoint that lacks one answers "unavailable", which stops the scan there. So
:class:`~htlc.swap.LockAbsent` and :class:`~htlc.swap.LockFailed` carry the cursor, a
final height, never a tip. When our own lock transaction comes back with a failed
receipt and no lock with our terms exists up to a final height at or past the failing
block, the swap is aborted (:class:`~htlc.swap.LockFailed`); if it does (an earlier
submission of the same lock landed, e.g. from before a restart), the lock is observed as
usual.

A tick carries the heights up to which events were scanned, never more, and a block
that cannot be read stops the scan there (it is retried next poll); such a tick is
flagged incomplete, so the engine refunds on it but never locks or reveals on heights
that lag the tip. A chain that cannot be reached is treated the same way (its height
stays where the events stop), so work on the other chain, such as a refund or a claim
with a learnt secret, goes on meanwhile. A poll is assumed to
take well under the policy's reaction time (the margins budget one reaction per decision).

*Proofs* (optional: ``prover``). Without one, the driver believes its chain handles, as
a wallet believes its node. Given a :class:`LockProver` (``interlock.trust.ProvenLocks``:
light-client-verified headers and event proofs), every observation of the
*counterparty's* lock (open, claimed, refunded: what makes a party lock, reveal, or stop)
is held back until the prover shows the event that made it, in a final header verified
from the party's trust anchor; an observation it cannot prove is refused (in
:attr:`SwapDriver.rejected`, as :class:`~htlc.errors.LockNotProven`) and tried again
next poll. Observations of our own lock, and a secret (which proves itself against the
hashlock), are not held back.

*One key, several drivers* (the daemon's maker runs a driver per swap, all signing with
its key). A driver that counted its own nonces from the chain numbered its transaction
like every other driver of the key that acted before the next block: the node admitted one
and refused the rest (``BadNonce``), each refused one was re-sent a poll later, and so the
key got one transaction per block; a lock re-sent after the plan's slack was used up was
refused by the margin check and the swap aborted (tests/htlc/test_shared_key.py). Drivers
given the same :class:`NonceSequence` per chain number under one lock, each transaction
handed to the chain before the next is numbered, so they never collide among themselves.

No clock and no sockets here: chains are :class:`chains.handle.ChainHandle`-shaped
objects, and the caller passes ``idle`` (how to wait between polls).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chains.crypto import PrivateKey
from chains.errors import ConfigError, EncodingError, InterlockError, TxRejected
from chains.handle import ChainHandle
from chains.types import Block, Receipt, Tx
from htlc.errors import InsufficientTime, InvalidTerms, LockNotProven, SwapError
from htlc.store import SwapStore
from htlc.swap import (
    Action,
    Input,
    LockAbsent,
    LockFailed,
    LockObserved,
    Role,
    Safety,
    SubmitLock,
    Swap,
    SwapState,
    SwapTerms,
    Tick,
    build_tx,
    is_secret,
    new_swap,
    resend_action,
    transition,
)
from htlc.types import Lock, LockStatus, lock_from_event

__all__ = ["LockProver", "NonceSequence", "Party", "SwapDriver"]

log = logging.getLogger("interlock.htlc")


@dataclass(frozen=True, slots=True)
class Party:
    """One party's signing keys on the two chains."""

    key_a: PrivateKey
    """Signs on chain A."""
    key_b: PrivateKey
    """Signs on chain B."""


class LockProver(Protocol):
    """Proves a lock's state on its chain from light-client-verified headers."""

    async def prove_lock(self, lock: Lock) -> None:
        """Return once an event proven against a final, verified header shows ``lock``
        (every term, its status, a claim's preimage); raise an ``InterlockError`` else."""


class NonceSequence:
    """One key's transaction numbers on one chain, for every driver that signs with it.

    Numbers are given under a lock and each transaction is handed to the chain before the
    next one is numbered, so the node admits them in order. A refusal (or a submission
    whose fate is unknown) ends the current *epoch*: the next number is read again from
    the chain's pending count (which counts what it admitted meanwhile). Transactions
    numbered in the ended epoch after the refused one are refused too (a node admits the
    next nonce only); they end nothing more. The refused actions themselves are re-sent
    by their drivers (a reconcile at the next poll)."""

    def __init__(
        self,
        chain: ChainHandle,
        key: PrivateKey,
        *,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.chain = chain
        self.key = key
        self._lock = asyncio.Lock()
        self._next: int | None = None
        self._epoch = 0
        self.sent = 0
        """Transactions handed to the chain."""
        self.failures: Counter[str] = Counter()
        """Transactions refused, failed to send, or failed in a block, by error code."""
        self._on_failure = on_failure  # e.g. a metrics counter's

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    async def send(self, build: Callable[[int], Tx]) -> tuple[asyncio.Future[Receipt], int]:
        """Number, build and hand over one transaction; returns the future of its receipt
        and the epoch it was numbered in. Raises an ``InterlockError`` if the chain's count
        cannot be read (nothing was sent)."""
        async with self._lock:
            if self._next is None:
                self._next = await self.chain.pending_nonce(self.key.address)
            tx = build(self._next)
            self._next += 1
            self.sent += 1
            fut = asyncio.ensure_future(self.chain.submit(tx))
            await asyncio.sleep(0)  # hand the tx over before the next one is numbered
            return fut, self._epoch

    def reset(self, epoch: int, code: str) -> None:
        """A transaction numbered in ``epoch`` was refused (``code``) or its fate is
        unknown: renumber from the chain's count, unless that was done already."""
        self.record_failure(code)
        if epoch == self._epoch:
            self._epoch += 1
            self._next = None

    def record_failure(self, code: str) -> None:
        """Count a transaction of this key that did not do its work (``code``)."""
        self.failures[code] += 1
        if self._on_failure is not None:
            self._on_failure(code)


class SwapDriver:
    """Drives all active swaps of one party in one store. ``prover``: see the module
    docstring (None: the chain handles are believed)."""

    def __init__(
        self,
        party: Party,
        chain_a: ChainHandle,
        chain_b: ChainHandle,
        store: SwapStore,
        safety: Safety,
        *,
        history: int = 10_000,
        prover: LockProver | None = None,
        nonces: Mapping[str, NonceSequence] | None = None,
    ) -> None:
        if (chain_a.chain_id, chain_b.chain_id) != (safety.a.chain_id, safety.b.chain_id):
            raise ConfigError(
                f"chain handles {chain_a.chain_id}, {chain_b.chain_id} do not match the "
                f"safety rules' chains {safety.a.chain_id}, {safety.b.chain_id}"
            )
        self.party = party
        self.chains = {chain_a.chain_id: chain_a, chain_b.chain_id: chain_b}
        self.keys = {chain_a.chain_id: party.key_a, chain_b.chain_id: party.key_b}
        given = dict(nonces or {})
        for cid, seq in given.items():
            if cid not in self.chains or seq.chain_id != cid:
                raise ConfigError(f"a nonce sequence of {seq.chain_id} given for {cid}")
            if seq.key.address != self.keys[cid].address:
                raise ConfigError(f"the nonce sequence of {cid} is of another key")
        self.nonces = {
            cid: given.get(cid) or NonceSequence(chain, self.keys[cid])
            for cid, chain in self.chains.items()
        }
        """Per chain: the key's nonce sequence (``nonces``: shared with other drivers of
        the same key; default: this driver's own)."""
        self.a, self.b = chain_a, chain_b
        self.store = store
        self.safety = safety
        self.depth = {safety.a.chain_id: safety.a.finality_depth}
        self.depth[safety.b.chain_id] = safety.b.finality_depth
        """Blocks on top of the including one before it is final, per chain."""
        self.swaps: dict[str, Swap] = {}
        self.rejected: deque[tuple[str, SwapError]] = deque(maxlen=history)
        """The latest hostile inputs and late re-sends refused (swap id, error)."""
        self.submitted: deque[tuple[str, Action]] = deque(maxlen=history)
        """The latest actions handed to a chain, in order."""
        self.counts = {"transitions": 0, "submitted": 0, "rejected": 0}
        """Running totals (for metrics; the deques above keep only recent history)."""
        self._by_hash: dict[str, str] = {}  # hashlock hex -> swap id
        self._dirty: list[Swap] = []
        self._actions: list[tuple[str, Action]] = []
        self._tasks: dict[tuple[str, Action], asyncio.Task[None]] = {}
        self._reconcile: dict[str, bool] = {}  # swap id -> re-send the pending action?
        # swap id -> (height, code) of a failed receipt of our lock, until the chain has
        # said whether the lock exists (in memory only: after a restart the lock is re-sent
        # and fails, or is found, the same way)
        self._lock_failed: dict[str, tuple[int, str]] = {}
        self.prover = prover
        # counterparty lock observations waiting for their proof, and those proven
        self._unproven: dict[tuple[str, LockStatus], Lock] = {}
        self._proven: set[tuple[bytes, LockStatus]] = set()
        self._proof_failed: set[tuple[str, LockStatus]] = set()  # logged once each

    # --- lifecycle ------------------------------------------------------------------
    async def open(self, terms: SwapTerms, role: Role, secret: bytes | None = None) -> Swap:
        """Start a new swap (refuses a reused swap id or hashlock, and terms that are not
        this party's: see :meth:`validate_terms`) and look at both locks."""
        (swap,) = await self.open_many([(terms, role, secret)])
        return swap

    async def open_many(self, swaps: Sequence[tuple[SwapTerms, Role, bytes | None]]) -> list[Swap]:
        """:meth:`open` for several swaps, stored in one write (all or none)."""
        fresh = [new_swap(terms, role, secret) for terms, role, secret in swaps]
        for swap in fresh:
            self.validate_terms(swap)
        for chain in self.chains.values():
            if self.store.get_cursor(chain.chain_id) is None:
                final = await chain.latest_height() - self.depth[chain.chain_id]
                self.store.set_cursor(chain.chain_id, max(0, final))
        self.store.create_many(fresh)
        for swap in fresh:
            self.watch(swap)
            await self._reconcile_swap(swap.swap_id, relaunch=False)
        await self._flush()
        return [self.swaps[s.swap_id] for s in fresh]

    def validate_terms(self, swap: Swap) -> None:
        """Raise :class:`InvalidTerms` unless the swap's locks are on this driver's chains
        (A, B in order), ours is debited from our key and the counter lock pays our key.

        Terms come from a counterparty's offer: one that puts its own address where ours
        belongs would be paid by our claim (which reveals the secret), and a lock whose
        sender is not our key can never be the one our key signs."""
        own, counter = swap.own, swap.counter
        if (swap.terms.a.chain_id, swap.terms.b.chain_id) != (self.a.chain_id, self.b.chain_id):
            raise InvalidTerms(
                f"terms are for {swap.terms.a.chain_id}->{swap.terms.b.chain_id}, "
                f"this driver for {self.a.chain_id}->{self.b.chain_id}"
            )
        if own.sender != self.keys[own.chain_id].address:
            raise InvalidTerms(f"our lock on {own.chain_id} is not sent by our key")
        if counter.receiver != self.keys[counter.chain_id].address:
            raise InvalidTerms(f"the counter lock on {counter.chain_id} does not pay our key")

    async def resume(self) -> None:
        """Load active swaps from the store and reconcile each with the chains."""
        for swap in self.store.active():
            self.watch(swap)
        for swap_id in list(self.swaps):
            await self._reconcile_swap(swap_id, relaunch=True)
        await self._flush()

    async def aclose(self) -> None:
        """Cancel in-flight submissions (their transactions may still commit)."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    async def drain(self) -> None:
        """Wait for every in-flight submission to get its receipt (or fail)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def run(
        self,
        idle: Callable[[], Awaitable[None]],
        until: Callable[[SwapDriver], bool] | None = None,
    ) -> None:
        """Poll, then ``await idle()``, until ``until(self)`` (default: no active swaps)."""
        done = until or (lambda d: not d.active())
        while True:
            await self.poll()
            if done(self):
                return
            await idle()

    def active(self) -> list[Swap]:
        return [s for s in self.swaps.values() if not s.is_terminal]

    def forget_finished(self) -> int:
        """Drop terminal swaps from memory (the store keeps them); returns how many."""
        done = [s for s in self.swaps.values() if s.is_terminal]
        for swap in done:
            del self.swaps[swap.swap_id]
            self._by_hash.pop(swap.terms.hashlock.hex(), None)
        return len(done)

    # --- one pass -------------------------------------------------------------------
    async def poll(self) -> None:
        """Observe both chains once, persist transitions, then act."""
        # a chain that failed once is not asked again until the next poll: each try may
        # take a handle's whole retry budget, and the other chain's work must not wait
        down: set[str] = set()
        tips: dict[str, int] = {}
        complete = True
        for chain in (self.a, self.b):
            cid = chain.chain_id
            cursor = self.store.get_cursor(cid)
            tip: int | None = None
            if cid not in down:
                try:
                    tip = await chain.latest_height()
                except InterlockError as exc:  # down: the other chain's work goes on
                    log.warning("%s: unreachable (%s); will retry", cid, exc)
                    down.add(cid)
            if tip is None:
                tips[cid] = cursor or 0  # nothing new seen; the tick takes the max
                complete = False
                continue
            final = max(0, tip - self.depth[cid])  # act on final blocks only
            scanned = final if cursor is None else cursor
            for height in range(scanned + 1, final + 1):
                try:
                    block = await chain.get_block(height)
                except InterlockError:
                    block = None
                if block is None:
                    log.warning("%s: block %d unavailable; will retry", cid, height)
                    break  # never skip a block: it may hold the claim we wait for
                self._feed_events(cid, block)
                scanned = height
            done = scanned >= final
            # the tick never runs ahead of the events seen, save the blocks not final
            # yet; nor, unflagged, behind the tip (no late lock or reveal)
            tips[cid] = tip if done else scanned
            complete &= done
            await self._flush()
            if scanned != cursor:
                self.store.set_cursor(cid, scanned)  # only after the transitions it caused
        # reconciled after the scan: an absence is judged at the cursor just advanced
        todo, self._reconcile = self._reconcile, {}
        for swap_id, relaunch in todo.items():
            await self._reconcile_swap(swap_id, relaunch=relaunch, down=down)
        await self._flush()
        await self._prove_pending()
        await self._flush()
        tick = Tick(tips[self.a.chain_id], tips[self.b.chain_id], complete)
        for swap_id, swap in list(self.swaps.items()):
            if not swap.is_terminal:
                self._feed(swap_id, tick)
        await self._flush()

    def _feed_events(self, chain_id: str, block: Block) -> None:
        for event in block.events:
            if not event.type.startswith("htlc."):
                continue
            hashlock = event.attributes.get("hashlock")
            swap_id = self._by_hash.get(hashlock) if isinstance(hashlock, str) else None
            if swap_id is None:
                continue  # one swap per hashlock: not a lock of any of ours
            swap = self.swaps.get(swap_id)
            if swap is None:
                continue
            terms = swap.terms
            try:
                lock = lock_from_event(chain_id, event, (terms.a, terms.b))
            except EncodingError as exc:
                log.warning("%s: ignoring malformed %s: %s", chain_id, event.type, exc)
                continue
            if lock is not None:
                self._feed(swap_id, LockObserved(lock))

    def feed(self, swap_id: str, event: Input) -> None:
        """Hand the engine one input directly (persisted and acted on at the next flush)."""
        self._feed(swap_id, event)

    def _feed(self, swap_id: str, event: Input) -> None:
        swap = self.swaps.get(swap_id)
        if swap is None:
            return
        if isinstance(event, LockObserved) and self._needs_proof(swap, event.lock):
            self._unproven[(swap_id, event.lock.status)] = event.lock  # acted on once proven
            return
        try:
            step = transition(swap, event, self.safety)
        except SwapError as exc:  # hostile input: refused, nothing changes
            self._refuse(swap_id, exc)
            return
        self.swaps[swap_id] = step.swap
        if step.transitioned:
            log.info(
                "swap %s: %s -> %s (%s)",
                swap_id[:12],
                swap.state.value,
                step.swap.state.value,
                step.swap.note,
            )
            self._dirty.append(step.swap)
            self.counts["transitions"] += 1
        if step.action is not None:
            self._actions.append((swap_id, step.action))

    def _needs_proof(self, swap: Swap, lock: Lock) -> bool:
        """An observation of the counterparty's lock that would move the swap, not yet
        proven (a replay of an audited lock, or a terminal swap, moves nothing)."""
        if self.prover is None or lock.terms != swap.counter or swap.is_terminal:
            return False
        if lock.status is LockStatus.LOCKED and swap.counter_audited:
            return False
        return (lock.lock_id, lock.status) not in self._proven

    async def _prove_pending(self) -> None:
        """Prove the held observations; feed those proven. One that fails stays held
        (the event may not be final or indexed yet) and is refused, logged once."""
        if self.prover is None:
            return
        for key, lock in list(self._unproven.items()):
            swap_id = key[0]
            swap = self.swaps.get(swap_id)
            if swap is None or swap.is_terminal:
                del self._unproven[key]
                continue
            try:
                await self.prover.prove_lock(lock)
            except InterlockError as exc:
                err = LockNotProven(lock.lock_id.hex(), lock.status.value, str(exc))
                if key not in self._proof_failed:
                    self._proof_failed.add(key)
                    self._refuse(swap_id, err)
                else:
                    log.debug("swap %s: %s", swap_id[:12], err)
                continue
            del self._unproven[key]
            self._proof_failed.discard(key)
            self._proven.add((lock.lock_id, lock.status))
            self._feed(swap_id, LockObserved(lock))

    def _refuse(self, swap_id: str, exc: SwapError) -> None:
        log.warning("swap %s: refused: %s", swap_id[:12], exc)
        self.rejected.append((swap_id, exc))
        self.counts["rejected"] += 1

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        actions, self._actions = self._actions, []
        if dirty:
            self.store.update_many(dirty)  # must precede the side effects below
        for swap_id, action in actions:
            await self._launch(swap_id, action)

    # --- reconciling with the chain -------------------------------------------------
    async def _reconcile_swap(
        self, swap_id: str, *, relaunch: bool, down: set[str] | None = None
    ) -> None:
        """Query both locks and tick with fresh tips; chains in ``down`` (and any that
        fails now, which is added to it) are skipped and the swap is looked at again."""
        swap = self.swaps.get(swap_id)
        if swap is None or swap.is_terminal:
            return
        down = set() if down is None else down
        tips: dict[str, int] = {}  # the chains reached (a down one must not stall the other)
        for cid, chain in self.chains.items():
            if cid in down:
                continue
            try:
                tips[cid] = await chain.latest_height()
            except InterlockError as exc:
                log.warning("swap %s: %s unreachable (%s)", swap_id[:12], cid, exc)
                down.add(cid)
        own_claimed = False
        own_absent = False
        for terms in (swap.own, swap.counter):
            if terms.chain_id not in tips:
                continue
            try:
                raw = await self.chains[terms.chain_id].query(
                    "htlc", "lock", {"lock_id": terms.lock_id.hex()}
                )
            except InterlockError as exc:
                log.warning("swap %s: %s unreachable (%s)", swap_id[:12], terms.chain_id, exc)
                del tips[terms.chain_id]
                down.add(terms.chain_id)
                continue
            final_tip = max(0, tips[terms.chain_id] - self.depth[terms.chain_id])
            if raw is None:
                # absent as far as our own scan of final blocks says, never further: this
                # answer may come from a lagging endpoint (see the module docstring)
                height = min(self.store.get_cursor(terms.chain_id) or 0, final_tip)
                own_absent |= terms is swap.own
                failed = self._lock_failed.get(swap_id) if terms is swap.own else None
                if failed is not None:
                    # our lock tx failed and the lock is not there, queried by its id
                    # (a lock with our hashlock but other terms is not ours)
                    at, code = failed
                    self._feed(swap_id, LockFailed(terms.chain_id, terms.lock_id, at, height, code))
                self._feed(swap_id, LockAbsent(terms.chain_id, terms.lock_id, height))
                continue
            if terms is swap.own:
                self._lock_failed.pop(swap_id, None)  # it exists: the failure was a duplicate
            if self.depth[terms.chain_id] > 0:
                continue  # state at the tip is not final: the scan of final blocks feeds it
            try:
                lock = Lock.from_json({**raw, "chain_id": terms.chain_id})
            except (EncodingError, TypeError) as exc:
                log.warning("swap %s: malformed lock query answer: %s", swap_id[:12], exc)
                continue
            # untrusted answer: only our very lock, claimed with the secret, makes it public
            own_claimed |= (
                terms is swap.own
                and lock.terms == terms
                and lock.status is LockStatus.CLAIMED
                and lock.preimage is not None
                and is_secret(terms.hashlock, lock.preimage)
            )
            self._feed(swap_id, LockObserved(lock))
        # decide with fresh heights: a long sleep may have made a pending action unsafe
        reached = len(tips) == len(self.chains)
        a, b = self.a.chain_id, self.b.chain_id
        self._feed(swap_id, Tick(tips.get(a, 0), tips.get(b, 0), reached))
        lock_failed = swap_id in self._lock_failed
        if lock_failed and self.swaps[swap_id].state is not SwapState.LOCKING:
            del self._lock_failed[swap_id]
            lock_failed = False
        if not reached or lock_failed:  # look again next poll (a failing block not yet final)
            self._reconcile[swap_id] = relaunch or self._reconcile.get(swap_id, False)
        if relaunch and not lock_failed:  # re-sending a lock that failed would fail again
            after = self.swaps[swap_id]
            try:
                action = resend_action(after, self.safety, secret_public=own_claimed)
            except InsufficientTime as exc:  # too late to lock: never send it now
                self._refuse(swap_id, exc)
                action = None
            if isinstance(action, SubmitLock) and not reached:
                action = None  # the time left needs both chains' fresh tips; looked at again
            if (
                action is not None
                and _chain_of(action) in tips  # judged on that chain's fresh height
                and not any(x == action for _, x in self._actions)
            ):
                self._actions.append((swap_id, action))
        if (
            own_absent
            and self.swaps[swap_id].state is SwapState.LOCKING
            and not any(sid == swap_id for sid, _ in (*self._tasks, *self._actions))
        ):
            # our lock is not seen and not on its way (a late re-send was refused): look
            # each poll until it shows up (an earlier copy) or is absent at T - 1, final
            self._reconcile.setdefault(swap_id, False)

    # --- acting -----------------------------------------------------------------------
    async def _launch(self, swap_id: str, action: Action) -> None:
        key = (swap_id, action)
        if key in self._tasks:
            return  # already on its way
        chain_id = _chain_of(action)
        sign = functools.partial(build_tx, action, self.keys[chain_id])
        try:
            fut, epoch = await self.nonces[chain_id].send(sign)
        except InterlockError as exc:  # unreachable: re-send after reconciling
            log.warning("swap %s: cannot reach %s (%s)", swap_id[:12], chain_id, exc)
            self._reconcile[swap_id] = True
            return
        self.submitted.append((swap_id, action))
        self.counts["submitted"] += 1
        task = asyncio.create_task(
            self._await_receipt(swap_id, action, fut, epoch), name=f"htlc:{swap_id[:12]}"
        )
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: tuple[str, Action], _task: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)

    async def _await_receipt(
        self, swap_id: str, action: Action, fut: asyncio.Future[Receipt], epoch: int
    ) -> None:
        nonces = self.nonces[_chain_of(action)]
        try:
            receipt = await fut
        except TxRejected as exc:  # never entered a block: renumber and send again
            log.info("swap %s: tx refused (%s); will retry", swap_id[:12], exc)
            nonces.reset(epoch, exc.code)
            self._reconcile[swap_id] = True
            return
        except InterlockError as exc:  # e.g. the node stopped before committing it
            log.warning("swap %s: submission failed: %s", swap_id[:12], exc)
            nonces.reset(epoch, exc.code)
            self._reconcile[swap_id] = True
            return
        if not receipt.ok:
            # executed and failed (a race, a timeout): ask the chain what happened, and let
            # the state machine decide; re-sending the same call would fail the same way
            log.info("swap %s: tx failed: %s", swap_id[:12], receipt.error)
            nonces.record_failure(receipt.code)
            if isinstance(action, SubmitLock):
                # if no lock with our terms exists, the reconcile aborts the swap: else it
                # would sit in LOCKING, never re-sent, until a reconcile near T - 1
                self._lock_failed[swap_id] = (receipt.height, receipt.code)
            self._reconcile.setdefault(swap_id, False)

    # --- bookkeeping ------------------------------------------------------------------
    def watch(self, swap: Swap) -> None:
        """Hold ``swap`` in memory and feed it its chain events (``open``/``resume`` do)."""
        self.swaps[swap.swap_id] = swap
        self._by_hash[swap.terms.hashlock.hex()] = swap.swap_id


def _chain_of(action: Action) -> str:
    return action.terms.chain_id if isinstance(action, SubmitLock) else action.chain_id

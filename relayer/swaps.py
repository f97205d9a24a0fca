"""The swap worker: ``swap:chain-a<->chain-b`` finishes HTLC swaps for parties who left.

A shell around :class:`htlc.watch.Watchtower`. It follows both chains' verified streams
(shared with the daemon's other workers on those chains; only ``htlc.*`` events are
decoded for it), feeds every block's events to the watchtower, and submits what the
watchtower says anyone may submit: a ``claim`` with a secret revealed on the other chain
(it pays the receiver, whoever sends it) or a ``refund`` of an expired lock (it pays the
sender). No party's keys are needed: the relayer pays nothing and gains nothing, it only
makes sure an offline party is not robbed by the clock.

Per chain, a cursor; with it, atomically, the watchtower's snapshot, so a restart (even
after ``kill -9``) resumes with every open lock and every revealed secret it knew.

Finality comes from each chain's engine (``ChainHandle.get_consensus``, read at every
start): the subscriber yields a proof-of-work block only once ``finality_depth`` blocks
are on it, and the watchtower waits that many blocks past a timelock before a refund.
The operator's ``finality_depth`` in the relayer config may only raise it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from chains.encoding import JSONValue
from chains.engine import get_finality_depth
from chains.errors import InterlockError
from chains.handle import ChainHandle
from chains.service.fanout import SharedStream
from chains.service.subscriber import VerifiedBlock
from chains.types import Receipt
from htlc.watch import Action, Watchtower
from relayer.feed import Feed
from relayer.metrics import Metrics
from relayer.start import find_swap_start
from relayer.store import RelayerStore
from relayer.submitter import Call, Submitter
from relayer.transfer import WorkStatus

__all__ = ["SwapWorker"]

log = logging.getLogger("interlock.relayer")

MAX_ATTEMPTS = 3
"""A claim or refund the chain refused this many times is left alone (and logged)."""


class SwapWorker:
    """Watches the HTLCs of two chains and finishes what anyone may finish."""

    def __init__(
        self,
        handles: Mapping[str, ChainHandle],
        submitters: Mapping[str, Submitter],
        store: RelayerStore,
        metrics: Metrics,
        *,
        min_finality: Mapping[str, int] | None = None,
        feed: Feed | None = None,
    ) -> None:
        self.chains = sorted(handles)
        self.handles = handles
        self.submitters = submitters
        self.store = store
        self.metrics = metrics
        self.feed = feed or Feed()
        self.name = "swap:" + "<->".join(self.chains)
        self.status = WorkStatus(self.name)
        self.min_finality = dict(min_finality or {})
        """The operator's floor of each chain's finality depth (the engine's may be more)."""
        finality = {c: self.min_finality.get(c, 0) for c in self.chains}
        raw = store.snapshot(self.name)
        tower: Watchtower | None = None
        if raw is not None:
            try:
                tower = Watchtower.from_json(raw)
            except InterlockError as exc:
                log.warning("%s: stored watchtower unreadable (%s); rescanning", self.name, exc)
                for cid in self.chains:
                    self.store.set_cursor(self._cursor_name(cid), 0)
        if tower is not None:
            tower.configure(finality=finality)  # the config may have changed since
        self.tower = tower or Watchtower(self.chains, finality=finality)
        self._saved_revision = -1
        self.heights: dict[str, int] = {}
        """Per chain, the last (final) block processed: the cursor."""
        self.heads: dict[str, int] = {}
        """Per chain, its verified head: where a claim or refund sent now lands (on a PoW
        chain ``finality_depth`` blocks past the last final block)."""
        self._failures: dict[str, int] = {}

    def _cursor_name(self, chain_id: str) -> str:
        return f"{self.name}@{chain_id}"

    async def resolve_path(self) -> None:
        finality: dict[str, int] = {}
        for cid, h in self.handles.items():
            await h.query("htlc", "params", {})  # the chain runs the htlc module
            depth = get_finality_depth((await h.get_consensus()).engine)
            finality[cid] = max(depth, self.min_finality.get(cid, 0))
        if any(self.store.cursor(self._cursor_name(cid)) is None for cid in self.chains):
            await self._start_fresh(finality)
        for cid in self.chains:
            self.heights[cid] = self.store.cursor(self._cursor_name(cid)) or 0
        if finality != self.tower.finality:
            log.info("%s: finality depths %s (each chain's engine)", self.name, finality)
            self.tower.configure(finality=finality)

    async def _start_fresh(self, finality: Mapping[str, int]) -> None:
        """A chain without a cursor: begin at the oldest lock open or secret revealed
        that the watchtower needs (:mod:`relayer.start`), not at genesis; made once."""
        starts = await find_swap_start(self.handles, finality)
        shown: dict[str, JSONValue] = {}
        for cid, start in starts.items():
            if self.store.cursor(self._cursor_name(cid)) is not None:
                continue  # resumes from its own cursor
            log.info("%s: %s: %s", self.name, cid, start.describe())
            shown[cid] = start.to_json()
            self.store.set_cursor(self._cursor_name(cid), start.cursor)
        self.status.start = shown

    async def follow(
        self,
        streams: Mapping[str, SharedStream],
        stop: asyncio.Event,
        busy: Callable[[str, bool], None],
    ) -> None:
        queue: asyncio.Queue[tuple[str, list[VerifiedBlock], int]] = asyncio.Queue(maxsize=8)

        async def feed(cid: str) -> None:
            cursor = self.store.cursor(self._cursor_name(cid)) or 0
            async with streams[cid].follow(self._cursor_name(cid), cursor) as follower:
                while True:
                    blocks = await follower.next_batch()
                    await queue.put((cid, blocks, follower.head))

        async with asyncio.TaskGroup() as tg:
            feeders = [tg.create_task(feed(cid), name=f"{self.name}:{cid}") for cid in self.chains]
            self.status.state = "running"
            try:
                while not stop.is_set():
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        [getter, *feeders], return_when=asyncio.FIRST_COMPLETED
                    )
                    if getter not in done:
                        getter.cancel()
                        break  # a feeder failed: the TaskGroup raises its error
                    cid, blocks, head = getter.result()
                    busy(self.name, True)
                    try:
                        await self.process(cid, blocks, head)
                    finally:
                        busy(self.name, False)
            finally:
                for f in feeders:
                    f.cancel()

    async def process(self, cid: str, blocks: list[VerifiedBlock], head: int = 0) -> None:
        """Feed final ``blocks`` of ``cid`` to the watchtower and submit what is due,
        timed by the chain's verified ``head``: a claim must land below its timelock, and
        on a PoW chain the head is ``finality_depth`` blocks past the final ones (judged
        by those, a claim near expiry would be sent too late)."""
        for b in blocks:
            events = b.events
            self.tower.observe(cid, b.height, events)
            self.feed.record_htlc(cid, b.header, events, time.time(), [p.index for p in b.proofs])
        self.heights[cid] = blocks[-1].height
        self.heads[cid] = max(head, self.heights[cid])
        actions = [
            a
            for a in self.tower.actions({**self.heights, **self.heads})
            if self._failures.get(a.lock_id, 0) < MAX_ATTEMPTS
        ]
        by_chain: dict[str, list[Action]] = {}
        for a in actions:
            by_chain.setdefault(a.chain_id, []).append(a)
        for chain_id, acts in by_chain.items():
            calls = [Call("htlc", a.method, dict(a.args)) for a in acts]
            results = await self.submitters[chain_id].submit(calls)
            for a, r in zip(acts, results, strict=True):
                self._settle(a, r)
        self.store.set_cursor(
            self._cursor_name(cid), self.heights[cid], (self.name, self.tower.to_json())
        )
        self.status.source_height = min(self.heights.get(c, 0) for c in self.chains)
        self.status.backlog = self.tower.open_locks
        self.status.last_progress = time.time()

    def _settle(self, a: Action, r: Receipt | InterlockError) -> None:
        if isinstance(r, Receipt) and r.ok:
            log.info("%s: %s on %s: %s", self.name, a.method, a.chain_id, a.reason)
            self.metrics.swap_actions.labels(self.name, a.method).inc()
            self.status.relayed += 1
            with contextlib.suppress(Exception):
                self.tower.settled(a.chain_id, a.lock_id)
            self._failures.pop(a.lock_id, None)
            return
        why = f"{r.code}: {r.error}" if isinstance(r, Receipt) else str(r)
        if isinstance(r, Receipt) and r.code == "LockClosed":
            # a party that was online finished it first: the race a watchtower expects
            log.info(
                "%s: %s %s on %s: done by someone else",
                self.name,
                a.method,
                a.lock_id[:16],
                a.chain_id,
            )
            with contextlib.suppress(Exception):
                self.tower.settled(a.chain_id, a.lock_id)
            return
        self._failures[a.lock_id] = self._failures.get(a.lock_id, 0) + 1
        self.status.last_error = f"{a.method} {a.lock_id[:16]} on {a.chain_id}: {why}"
        log.warning("%s: %s", self.name, self.status.last_error)

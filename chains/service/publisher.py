"""The block publisher: a node's committed blocks onto the bus, every height, in order.

For each height the publisher sends, at QoS 1, the ``headers`` message and then the
block's ``events`` message(s) (see :mod:`chains.service.wire`); every ``status_every`` heights,
and at start and stop, it refreshes the retained ``status`` topic. When the node
reorganises (:class:`~chains.node.ChainReorganised`, a proof-of-work chain) it sends a
``reorgs`` message (fork height, new tip) and then republishes every height above the
fork: followers check the new branch themselves, the notice only tells them to look.

It never skips a height. It remembers the next height to send; when the node's
subscription overflows (:class:`~chains.node.SubscriptionLagged`: the bus was slow or
down), or a block arrives ahead of that height, it re-reads the missing heights from the
node's store. Publishing blocks while the broker is down (``MqttBus.publish`` waits for
the reconnection), so an outage ends in a catch-up from the store, not in a gap.

Across restarts: with a ``cursor`` file it records the last acknowledged height (every
``status_every`` heights and at stop) and the next run starts right after it, so heights
committed while no publisher ran (a crash, a broker outage then a restart) still go out;
a crash republishes at most ``status_every`` heights (QoS 1 is at least once anyway).

Up to ``window`` publishes are in flight at once (about 50 is aiomqtt's sweet spot).
Shutdown closes the input (the node subscription), lets in-flight publishes finish
within a bounded time, and never cancels a task inside aiomqtt's ``publish`` unless that
bound runs out (see MEASURED: such a cancel can hang).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time as _time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from chains.node import ChainReorganised, Subscription, SubscriptionLagged
from chains.service.bus import Bus, BusClosed, LastWill
from chains.service.wire import (
    encode_events,
    encode_header,
    encode_reorg,
    encode_status,
    events_topic,
    headers_topic,
    reorgs_topic,
    status_topic,
)
from chains.tasks import stop_within
from chains.types import Block, ValidatorSet

__all__ = ["BlockSource", "Publisher", "status_will"]

log = logging.getLogger("interlock.publisher")


class _Abandoned(Exception):
    """The input closed and the bus did not answer within the stop timeout."""


class BlockSource(Protocol):
    """What the publisher needs of a node (:class:`chains.node.Node` is one)."""

    @property
    def chain_id(self) -> str: ...

    @property
    def height(self) -> int: ...

    def subscribe(self, maxsize: int = 4096) -> Subscription: ...

    def unsubscribe(self, sub: Subscription) -> None: ...

    def get_block(self, height: int) -> Block | None: ...

    def get_validators(self, height: int) -> ValidatorSet | None: ...


def status_will(chain_id: str) -> LastWill:
    """The retained status topic of a chain's publisher, for the bus connection's will."""
    return LastWill(
        status_topic(chain_id),
        online=encode_status(chain_id, "online", None, None),
        offline=encode_status(chain_id, "offline", None, None),
    )


class Publisher:
    """``async with Publisher(node, bus):`` publishes until the node stops or exit."""

    def __init__(
        self,
        node: BlockSource,
        bus: Bus,
        *,
        from_height: int | None = None,
        cursor: Path | None = None,
        window: int = 50,
        queue: int = 1024,
        status_every: int = 10,
        stop_timeout: float = 5.0,
    ) -> None:
        if window < 1 or queue < 1 or status_every < 1:
            raise ValueError("window, queue and status_every must be >= 1")
        self.node = node
        self.bus = bus
        self.chain_id = node.chain_id
        self.from_height = from_height
        """First height to publish; default: after the cursor's height, else the node's
        head when started (or 1)."""
        self.cursor = cursor
        """File holding the last acknowledged height (decimal), or ``None``."""
        self.window = window
        self.queue = queue
        self.status_every = status_every
        self.stop_timeout = stop_timeout
        self.next_height = 0
        """The next height to send (every lower one has been handed to the bus)."""
        self.published_height = 0
        """The highest height whose messages (and all before) the bus acknowledged."""
        self.messages = 0
        """Messages acknowledged by the bus."""
        self.catch_ups = 0
        """Times the publisher re-read heights from the store."""
        self.reorgs = 0
        """Reorganisations announced (``reorgs`` messages sent)."""
        self.on_sent: Callable[[int], None] | None = None
        """Called with a height once all its messages are acknowledged (benchmarks)."""
        self._inflight: collections.deque[tuple[asyncio.Future[None], int]] = collections.deque()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._abandoned = False

    # --- lifecycle --------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _is_stopping(self) -> bool:
        return self._stopping

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._sub = self.node.subscribe(self.queue)  # before reading the head: no gap
            self._task = asyncio.create_task(self.run(), name=f"publisher:{self.chain_id}")
        return self._task

    async def stop(self) -> None:
        """Close the input, finish in-flight publishes (bounded), publish ``offline``."""
        self._stopping = True
        if self._sub is not None:
            self.node.unsubscribe(self._sub)
        task, self._task = self._task, None
        if task is None:
            return
        if not await stop_within(task, self.stop_timeout + 2, cancel=False):
            log.warning("%s: publisher did not stop in time; cancelling it", self.chain_id)
            task.cancel()
            await stop_within(task, 2, cancel=False)
        elif not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, BusClosed):
                log.info("%s: publisher ended: the bus was closed first", self.chain_id)
            else:
                raise exc

    async def wait_published(self, height: int) -> None:
        """Return once every height up to ``height`` was acknowledged (tests, tools)."""
        while self.published_height < height:
            if self._task is not None and self._task.done():
                raise RuntimeError(f"publisher stopped at height {self.published_height}")
            await asyncio.sleep(0.005)

    # --- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        sub = self._sub if self._sub is not None else self.node.subscribe(self.queue)
        self._sub = sub
        head = max(1, self.node.height)
        saved = self._load_cursor()
        start = self.from_height or (head if saved is None else min(saved + 1, head))
        self.next_height = start
        self.published_height = start - 1
        self._abandoned = False
        self._enqueue_status("online")  # not awaited: the broker may be down right now
        try:
            await self._catch_up(self.node.height)
            while not self._is_stopping():
                try:
                    block = await self._next_block(sub)
                except SubscriptionLagged as exc:
                    # a lag, or a reorganisation (ChainReorganised): republish from the
                    # store from where the chain may differ from what was sent
                    log.info("%s: %s; re-reading from the store", self.chain_id, exc)
                    if isinstance(exc, ChainReorganised):
                        self._announce_reorg(exc)
                    self.next_height = min(self.next_height, exc.next_height)
                    self.published_height = min(self.published_height, self.next_height - 1)
                    self.node.unsubscribe(sub)
                    sub = self._sub = self.node.subscribe(self.queue)
                    if self._is_stopping():
                        break
                    await self._catch_up(self.node.height)
                    continue
                except StopAsyncIteration:
                    break
                if block.height < self.next_height:
                    continue
                if block.height > self.next_height:
                    await self._catch_up(block.height - 1)
                vals = self.node.get_validators(block.height)
                if vals is None:
                    log.error("%s: no validator set stored for %d", self.chain_id, block.height)
                    continue
                await self._send(block, vals)
        except _Abandoned:
            log.warning(
                "%s: input closed while the bus was unreachable; stopped at height %d "
                "(a restart republishes the rest from the store)",
                self.chain_id,
                self.published_height,
            )
        finally:
            if not self._abandoned:
                await self._drain()
                await stop_within(self._status("offline"), self.stop_timeout)
            else:
                self._forget_inflight()
            self._save_cursor()

    async def _next_block(self, sub: Subscription) -> Block:
        """The next block; meanwhile settle publishes as the bus acknowledges them, so
        ``published_height`` (and the cursor) do not wait for the next block."""
        nxt = asyncio.ensure_future(sub.__anext__())
        try:
            while self._inflight and not nxt.done():
                either: set[asyncio.Future[Any]] = {nxt, self._inflight[0][0]}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                self._settle_done()
            return await nxt
        finally:
            nxt.cancel()  # a queue read: safe to cancel (never a publish)

    async def _catch_up(self, upto: int) -> None:
        if self.next_height <= upto:
            self.catch_ups += 1
        while self.next_height <= upto:
            h = self.next_height
            block, vals = self.node.get_block(h), self.node.get_validators(h)
            if block is None or vals is None:
                log.error("%s: height %d missing from the store", self.chain_id, h)
                return
            await self._send(block, vals)

    async def _send(self, block: Block, vals: ValidatorSet) -> None:
        h = block.height
        cid = self.chain_id
        msgs = [(headers_topic(cid), encode_header(block, vals))]
        msgs += [(events_topic(cid), p) for p in encode_events(block)]
        for i, (topic, payload) in enumerate(msgs):
            fut = asyncio.ensure_future(self.bus.publish(topic, payload, qos=1))
            self._inflight.append((fut, h if i == len(msgs) - 1 else 0))
            while len(self._inflight) >= self.window:
                await self._settle_oldest()
        self.next_height = h + 1
        if h % self.status_every == 0:
            self._enqueue_status("online")
        self._settle_done()

    def _enqueue_status(self, state: Literal["online", "offline"]) -> None:
        self._enqueue(status_topic(self.chain_id), self._status_payload(state), retain=True)

    def _enqueue(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        fut = asyncio.ensure_future(self.bus.publish(topic, payload, qos=1, retain=retain))
        self._inflight.append((fut, 0))

    def _announce_reorg(self, notice: ChainReorganised) -> None:
        """The ``reorgs`` message, before the heights above the fork go out again."""
        tip = self.node.get_block(notice.new_height) or self.node.get_block(self.node.height)
        if tip is None or tip.height <= notice.fork_height:
            return  # replaced again meanwhile: the next notice covers it
        fork, old, now = notice.fork_height, notice.old_height, int(_time.time() * 1000)
        payload = encode_reorg(self.chain_id, fork, old, tip.header, now)
        self._enqueue(reorgs_topic(self.chain_id), payload)
        self.reorgs += 1

    def _input_closed(self) -> bool:
        return self._stopping or (self._sub is not None and self._sub.closed)

    async def _settle_oldest(self) -> None:
        """Wait for the oldest publish; give up once the input has closed and the bus has
        not answered for ``stop_timeout`` (a down broker must not hold a shutdown)."""
        fut, h = self._inflight[0]
        loop = asyncio.get_running_loop()
        closed_at: float | None = None
        while not fut.done():
            # never cancels ``fut``: a cancelled publisher leaves it running
            await stop_within(fut, 0.25, cancel=False)
            if not fut.done() and self._input_closed():
                closed_at = closed_at if closed_at is not None else loop.time()
                if loop.time() - closed_at >= self.stop_timeout:
                    self._abandoned = True
                    raise _Abandoned()
        self._inflight.popleft()
        self._acknowledged(fut, h)

    def _settle_done(self) -> None:
        while self._inflight and self._inflight[0][0].done():
            fut, h = self._inflight.popleft()
            self._acknowledged(fut, h)

    def _acknowledged(self, fut: asyncio.Future[None], h: int) -> None:
        fut.result()  # a BusClosed or BadTopic ends the publisher
        self.messages += 1
        if h:
            self.published_height = h
            if h % self.status_every == 0:
                self._save_cursor()
            if self.on_sent is not None:
                self.on_sent(h)

    async def _drain(self) -> None:
        if not self._inflight:
            return
        futs = [f for f, _ in self._inflight]
        _, pending = await asyncio.wait(futs, timeout=self.stop_timeout)
        if pending:
            log.warning(
                "%s: %d publishes unacknowledged at stop (resent on next start from the store)",
                self.chain_id,
                len(pending),
            )
        try:
            self._settle_done()
        finally:
            self._forget_inflight()

    def _forget_inflight(self) -> None:
        """Stop tracking publishes still in flight (they finish or fail on their own)."""
        for f, _ in self._inflight:
            if not f.done():
                f.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight.clear()

    def _load_cursor(self) -> int | None:
        if self.cursor is None:
            return None
        try:
            text = self.cursor.read_text().strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning(
                "%s: cannot read %s (%s); starting at the head", self.chain_id, self.cursor, exc
            )
            return None
        if not (text.isascii() and text.isdigit()):
            log.warning("%s: %s is not a height; starting at the head", self.chain_id, self.cursor)
            return None
        return int(text)

    def _save_cursor(self) -> None:
        if self.cursor is None or self.published_height < 1:
            return
        tmp = self.cursor.with_name(self.cursor.name + ".tmp")
        try:  # no fsync: a cursor lost to a power cut only republishes (at least once)
            tmp.write_text(f"{self.published_height}\n")
            os.replace(tmp, self.cursor)
        except OSError as exc:
            log.warning("%s: cannot write %s: %s", self.chain_id, self.cursor, exc)

    def _status_payload(self, state: Literal["online", "offline"]) -> bytes:
        height = max(self.published_height, self.next_height - 1) or None
        return encode_status(self.chain_id, state, height, int(_time.time() * 1000))

    async def _status(self, state: Literal["online", "offline"]) -> None:
        payload = self._status_payload(state)
        await self.bus.publish(status_topic(self.chain_id), payload, qos=1, retain=True)

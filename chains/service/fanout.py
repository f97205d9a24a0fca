"""One verified stream per chain, fanned out to the followers of that chain.

A relayer's workers often follow the same chain: the transfer worker of ``A -> B``, the
acknowledgements and refunds of ``B -> A`` that come from ``A`` too, the swap watcher of
the pair. Each with a verifying subscriber of its own, every block of ``A`` was decoded
and verified once per worker. A :class:`SharedStream` verifies it once (one
:class:`~chains.service.subscriber.ChainSubscriber`, with the union of its followers'
event types) and hands the same :class:`~chains.service.subscriber.VerifiedBlock` to
each :class:`Follower`:

* each follower has its own cursor and its own bounded queue, and gets every block above
  its cursor, in height order, exactly once;
* the stream never waits for a follower: a block that finds a follower's queue full is
  not queued for it (the others get it), and that follower later reads the gap from the
  chain's handle itself, verified as a restart is (trust at its last height, then every
  header's commit and every block's events checked through the handle). A follower whose
  cursor is behind the stream (it started later, or restarted from an older cursor)
  fills the gap the same way. So a slow follower costs only itself;
* a follower never sees a block the stream's subscriber did not verify, or one its gap
  fill did not: forged or garbage bus messages reach no follower;
* the stream starts with its first follower, trusting the chain at that follower's
  cursor; if it fails (the chain unreachable at start), every follower's next read
  raises the error, and the next :meth:`SharedStream.follow` starts it again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from chains.errors import InterlockError
from chains.handle import ChainHandle
from chains.service.bus import Bus
from chains.service.subscriber import ChainSubscriber, VerifiedBlock, subscriber_at
from chains.tasks import stop_within

__all__ = ["Follower", "GapNotFilled", "SharedStream"]

log = logging.getLogger("interlock.subscriber")


class GapNotFilled(InterlockError):
    """A follower missed heights and the chain's handle did not serve them (yet)."""

    code = "gap_not_filled"

    def __init__(self, chain_id: str, first: int, last: int) -> None:
        self.chain_id, self.first, self.last = chain_id, first, last
        super().__init__(f"{chain_id}: heights {first}..{last} could not be read from the chain")


class SharedStream:
    """``async with SharedStream(bus, handle, want=...) as stream:`` then, per follower,
    ``async with stream.follow(name, cursor) as f: batch = await f.next_batch()``.

    ``want``: the event types any follower acts on (None: all), fixed for the stream's
    life: a block's events of other types are checked, not decoded nor handed out.
    ``options`` go to the stream's :class:`ChainSubscriber` (``idle_timeout``, ...).
    """

    def __init__(
        self,
        bus: Bus,
        handle: ChainHandle,
        *,
        want: Callable[[str], bool] | None = None,
        **options: Any,
    ) -> None:
        self.bus = bus
        self.handle = handle
        self.chain_id = handle.chain_id
        self.want = want
        self.options = options
        self.name = f"stream:{self.chain_id}"
        self.sub: ChainSubscriber | None = None
        """The stream's subscriber, once started (its ``stats`` count what it refused)."""
        self._followers: list[Follower] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await stop_within(task, 5, cancel=False)

    @property
    def head(self) -> int:
        """The highest header the stream verified (see ``ChainSubscriber.head``)."""
        return 0 if self.sub is None else self.sub.head

    def follow(self, name: str, cursor: int, *, maxsize: int = 64) -> Follower:
        """A follower of every block above ``cursor``, holding at most ``maxsize``
        blocks it has not taken (use as an async context manager)."""
        return Follower(self, name, cursor, maxsize)

    def _attach(self, f: Follower) -> None:
        self._followers.append(f)
        if self._task is None or self._task.done():
            self.sub = None
            self._task = asyncio.create_task(self._run(f.delivered), name=self.name)

    def _detach(self, f: Follower) -> None:
        if f in self._followers:
            self._followers.remove(f)

    async def _run(self, cursor: int) -> None:
        try:
            sub = await subscriber_at(self.bus, self.handle, cursor, want=self.want, **self.options)
            self.sub = sub
            async with sub:
                async for block in sub:
                    for f in self._followers:
                        f._offer(block)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the followers' supervisors retry; a new follow restarts
            log.warning("%s: stream stopped: %s", self.name, exc)
            for f in self._followers:
                f._fail(exc)


class Follower:
    """One consumer of a :class:`SharedStream`: its blocks above its cursor, in order."""

    def __init__(self, stream: SharedStream, name: str, cursor: int, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.stream = stream
        self.name = name
        self.maxsize = maxsize
        self.delivered = cursor
        """The last height handed out (the cursor at first)."""
        self.filled = 0
        """Blocks this follower read from the chain's handle itself (gaps)."""
        self.dropped = 0
        """Blocks the stream could not queue for this follower (its queue was full)."""
        self._queue: collections.deque[VerifiedBlock] = collections.deque()
        self._queued = cursor  # the highest height queued or handed out
        self._missed = cursor  # the highest height not queued for lack of room
        self._wake = asyncio.Event()
        self._error: BaseException | None = None
        self._own: ChainSubscriber | None = None  # reads gaps from the handle

    async def __aenter__(self) -> Self:
        self.stream._attach(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stream._detach(self)

    @property
    def head(self) -> int:
        """The chain's highest verified header, as far as this follower knows."""
        own = 0 if self._own is None else self._own.head
        return max(self.stream.head, own, self.delivered)

    @property
    def subscriber(self) -> ChainSubscriber | None:
        """The stream's subscriber (its counters), once started."""
        return self.stream.sub

    # --- called by the stream: never waits ----------------------------------------------
    def _offer(self, block: VerifiedBlock) -> None:
        if block.height <= self._queued:
            return
        if len(self._queue) >= self.maxsize:
            self.dropped += 1  # read from the handle later: see next_batch
            self._missed = max(self._missed, block.height)
            self._wake.set()
            return
        self._queue.append(block)
        self._queued = block.height
        self._wake.set()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._wake.set()

    # --- called by the follower's owner -------------------------------------------------
    async def next_batch(self) -> list[VerifiedBlock]:
        """The next blocks in height order, right after the last handed out, waiting for
        the first; at most ``maxsize``. A gap before the next queued block (missed while
        the queue was full, or below where the stream started) is read from the handle
        first, and so are heights missed after the last queued one. Raises the stream's
        error if it stopped."""
        while True:
            while self._queue and self._queue[0].height <= self.delivered:
                self._queue.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._queue or self._missed > self.delivered:
                break
            self._wake.clear()
            await self._wake.wait()
        if not self._queue:
            return await self._fill(self._missed)
        if self._queue[0].height > self.delivered + 1:
            return await self._fill(self._queue[0].height - 1)
        batch: list[VerifiedBlock] = []
        while self._queue and self._queue[0].height == self.delivered + 1:
            batch.append(self._queue.popleft())
            self.delivered = batch[-1].height
        return batch

    async def _fill(self, upto: int) -> list[VerifiedBlock]:
        """Heights after the last handed out, up to ``upto`` at most, from the handle,
        verified from the chain's own header at the last height handed out."""
        own = self._own
        if own is None or own.height != self.delivered:
            stream = self.stream
            own = await subscriber_at(
                stream.bus,  # never subscribed: the gap is read from the handle only
                stream.handle,
                self.delivered,
                want=stream.want,
                max_pending=self.maxsize,
            )
            self._own = own
        blocks = [b for b in await own.fill_to(upto) if b.height > self.delivered]
        if not blocks:
            raise GapNotFilled(self.stream.chain_id, self.delivered + 1, upto)
        if blocks[0].height != self.delivered + 1:  # never: the subscriber yields in order
            raise GapNotFilled(self.stream.chain_id, self.delivered + 1, blocks[0].height - 1)
        self.filled += len(blocks)
        self.delivered = blocks[-1].height
        self._queued = max(self._queued, self.delivered)
        return blocks

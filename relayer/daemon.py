"""The relayer daemon: a supervisor of workers, one submitter per chain, an HTTP API.

``interlock start --config configs/relayer.toml`` builds a :class:`Daemon` and runs it
until SIGTERM/SIGINT. Its parts:

* one :class:`~relayer.submitter.Submitter` per chain (the relayer's key and nonces);
* one worker per (path, kind), named like ``transfer:chain-a->chain-b`` in task names,
  logs and metric labels; each follows its source chain(s) and acts through the chains'
  RPC;
* one verified stream per chain followed (:class:`~chains.service.fanout.SharedStream`):
  one verifying subscriber (bus first, gaps filled over RPC) decodes and checks each
  block once, only the event types some worker acts on decoded, and hands it to every
  worker following that chain, each with its own cursor and bounded queue (a slow one
  reads what it missed from the chain itself, verified, and holds no other back);
* a supervisor loop per worker: a failure (a chain unreachable, a path not registered
  yet) stops only that worker, which retries with jittered backoff and resumes from its
  cursor when the chain is back;
* the HTTP API (``/healthz``, ``/status``, ``/metrics``), loopback by default.

Stop: the stop event makes every worker finish its in-flight batches, in order (bounded
by ``stop_timeout``; past it they are abandoned, and their destination re-checked at the
next start), cursors are already persisted per batch, and ``run`` returns.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.relay import is_packet_event
from chains.crypto import PrivateKey
from chains.errors import ConfigError, InterlockError
from chains.handle import ChainHandle
from chains.service.bus import Bus, BusSubscription, open_bus
from chains.service.fanout import Follower, SharedStream
from chains.service.retry import Backoff
from chains.service.rpc_client import HttpChain
from chains.service.subscriber import ChainSubscriber, VerifiedBlock
from chains.service.wire import WireError, chain_filter, open_envelope
from htlc.watch import is_htlc_event
from relayer.config import RelayerSettings
from relayer.feed import Feed
from relayer.metrics import Metrics
from relayer.store import DataDirLock, RelayerStore
from relayer.submitter import Submitter
from relayer.transfer import Batch, TransferWorker, WorkStatus

__all__ = ["Daemon", "WorkerContext", "WorkerKind", "WrongEndpoint"]

log = logging.getLogger("interlock.relayer")

RETRY = Backoff(initial=0.2, maximum=10.0)
STUCK_AFTER = 60.0
"""A batch running longer than this marks the daemon unhealthy."""
UNREACHABLE_AFTER = 30.0
"""A worker waiting for its chains longer than this marks the daemon unhealthy."""


class WrongEndpoint(ConfigError):
    """An RPC endpoint answers for another chain than the config says."""

    code = "wrong_endpoint"

    def __init__(self, endpoint: str, expected: str, got: str) -> None:
        self.endpoint, self.expected, self.got = endpoint, expected, got
        super().__init__(f"{endpoint} answers for chain {got!r}, the config says {expected!r}")


class Worker(Protocol):
    """What the supervisor needs of a worker."""

    name: str
    status: WorkStatus

    async def resolve_path(self) -> None: ...


@dataclass(slots=True)
class _Running:
    """The supervisor's view of one worker."""

    worker: Worker
    busy_since: float | None = None
    waiting_since: float | None = None


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What a worker kind registered from above (``Daemon(kinds=...)``) builds its
    workers from: the daemon's chains, bus, metrics and stop signal."""

    settings: RelayerSettings
    """The daemon's validated config."""
    handles: Mapping[str, ChainHandle]
    """Each configured chain's handle."""
    bus: Bus
    """The daemon's bus connection."""
    metrics: Metrics
    """The daemon's metrics registry."""
    feed: Feed
    """The console's feed."""
    stop: asyncio.Event
    """Set when the daemon stops."""
    busy: Callable[[str, bool], None]
    """``busy(name, True)`` around work the stop should let finish (bounded)."""


FollowFn = Callable[[], Awaitable[None]]
WorkerKind = Callable[[WorkerContext], list[tuple[Worker, FollowFn]]]
"""A kind of work the composition adds (the relayer package cannot import it): given the
context, its workers and their loops, supervised as the daemon's own."""


def shared_headers(group: str, chain_id: str) -> str:
    """The MQTT 5 shared subscription that splits a chain's heights among a group."""
    return f"$share/{group}/{chain_filter(chain_id).removesuffix('+')}headers"


class Ownership:
    """Which source heights this member of a share group was handed by the broker.

    Every member follows and verifies every block (the verifying subscriber); the shared
    subscription on the headers topic hands each height to one member, which acts on it
    at once. The others act on it only after ``takeover_delay``, when a pending check at
    the destination usually finds it delivered (one query, no transaction), and deliver
    it themselves if its owner died. Ownership is an optimisation, never trust: a forged
    header on the shared topic can only make a member act early, and the destination
    refuses anything delivered twice."""

    def __init__(self, sub: BusSubscription, limit: int = 65_536) -> None:
        self.sub = sub
        self.limit = limit
        self._heights: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def owns(self, height: int) -> bool:
        return height in self._heights

    async def __aenter__(self) -> Ownership:
        await self.sub.start()
        self._task = asyncio.create_task(self._run(), name="relayer:ownership")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sub.aclose(), 5)

    async def _run(self) -> None:
        async for msg in self.sub:
            try:
                env = open_envelope(msg.topic, msg.payload)
            except WireError:
                continue  # a stranger's garbage: the verifying subscriber counts it
            if env.kind == "headers" and env.height is not None:
                self._heights[env.height] = None
                while len(self._heights) > self.limit:
                    self._heights.popitem(last=False)


@dataclass(frozen=True, slots=True)
class SubscriberCounts:
    """A verifying subscriber's counters at one moment (they only grow)."""

    rejected: int = 0
    """Bus payloads refused."""
    reorg_notices: int = 0
    """``reorgs`` messages read (unverified)."""
    reorgs: int = 0
    """Reorganisations followed, checked through the chain's RPC."""

    @classmethod
    def of(cls, sub: ChainSubscriber) -> SubscriberCounts:
        st = sub.stats
        return cls(sum(st.rejected.values()), st.reorg_notices, st.reorgs)


def _any_of(wants: list[Callable[[str], bool]]) -> Callable[[str], bool]:
    return lambda event_type: any(w(event_type) for w in wants)


class Daemon:
    """One relayer process. ``handles`` and ``bus`` are injected for in-process use (the
    demo and tests); otherwise they are opened from the settings."""

    def __init__(
        self,
        settings: RelayerSettings,
        keys: Mapping[str, PrivateKey],
        *,
        handles: Mapping[str, ChainHandle] | None = None,
        bus: Bus | None = None,
        idle_timeout: float = 1.0,
        stop_timeout: float = 10.0,
        kinds: Sequence[WorkerKind] = (),
    ) -> None:
        missing = [c for c in settings.chains if c not in keys]
        if missing:
            raise ConfigError(f"no relayer key for chain {missing[0]!r}")
        self.settings = settings
        self.keys = keys
        self.metrics = Metrics()
        self.feed = Feed()
        """What the workers saw happen, for the console (bounded, in memory)."""
        self.idle_timeout = idle_timeout
        self.stop_timeout = stop_timeout
        self.handles: dict[str, ChainHandle] = dict(handles or {})
        self._own_handles = handles is None
        self._bus = bus
        self.running: dict[str, _Running] = {}
        self.work: tuple[str, ...] = ()
        """The names of the work this daemon runs, once started."""
        self.api_port: int | None = None
        self.started = time.time()
        self._stop = asyncio.Event()
        self.kinds = tuple(kinds)
        """Worker kinds registered by the composition (e.g. the swap makers)."""

    # --- status -----------------------------------------------------------------------
    def health(self) -> tuple[bool, list[str]]:
        now = time.time()
        problems = []
        for name, r in self.running.items():
            if r.busy_since is not None and now - r.busy_since > STUCK_AFTER:
                problems.append(f"{name}: a batch has run for {now - r.busy_since:.0f} s")
            if r.waiting_since is not None and now - r.waiting_since > UNREACHABLE_AFTER:
                problems.append(f"{name}: {r.worker.status.last_error}")
        return not problems, problems

    def status(self) -> dict[str, Any]:
        ok, problems = self.health()
        return {
            "ok": ok,
            "problems": problems,
            "uptime_s": round(time.time() - self.started, 1),
            "chains": {
                cid: {"rpc": list(c.rpc), "relayer_address": self.keys[cid].address}
                for cid, c in self.settings.chains.items()
            },
            "work": [r.worker.status.to_json() for r in self.running.values()],
        }

    # --- running ----------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self, ready: Callable[[Daemon], None] | None = None) -> None:
        s = self.settings
        with DataDirLock(s.data_dir):
            store = RelayerStore(s.data_dir / "relayer.sqlite3")
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if self._own_handles:
                        for cid, c in s.chains.items():
                            http = HttpChain(cid, c.rpc)
                            await stack.enter_async_context(http)
                            self.handles[cid] = http
                        await self._check_endpoints()
                    if self._bus is not None:
                        bus: Bus = self._bus
                    else:
                        opened = open_bus(s.bus_url)
                        await stack.enter_async_context(opened)
                        bus = opened
                    from relayer.api import serve  # the API imports the daemon's types

                    self.api_port = await stack.enter_async_context(serve(self))
                    submitters = {
                        cid: Submitter(self.handles[cid], self.keys[cid], self.metrics)
                        for cid in s.chains
                    }
                    streams = self._streams(bus)
                    for stream in streams.values():
                        await stack.enter_async_context(stream)
                    tasks = self._workers(bus, streams, store, submitters)
                    self.work = tuple(w.name for w, _ in tasks)
                    if ready is not None:
                        ready(self)
                    await self._supervise(tasks)
            finally:
                store.close()

    async def _check_endpoints(self) -> None:
        """Refuse to start when an endpoint answers for another chain (a reachable one
        that is wrong is a config error; an unreachable one is only waited for)."""
        for cid, c in self.settings.chains.items():
            for url in c.rpc:
                probe = HttpChain("?", [url], timeout=3.0, retry=Backoff(attempts=0))
                try:
                    status = await probe.status()
                except InterlockError as exc:
                    log.warning("%s: %s not reachable yet (%s)", cid, url, exc)
                    continue
                finally:
                    await probe.close()
                got = status.get("chain_id")
                if got != cid:
                    raise WrongEndpoint(url, cid, str(got))

    def _swap_pairs(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for p in self.settings.paths:
            pair = tuple(sorted((p.src, p.dst)))
            if "swaps" in p.kinds and pair not in pairs:
                pairs.append((pair[0], pair[1]))
        return pairs

    def _streams(self, bus: Bus) -> dict[str, SharedStream]:
        """One verified stream per chain some worker follows, decoding the event types
        its workers act on: bridge packets for a transfer worker from that chain,
        ``htlc.*`` for a swap watcher of a pair with that chain."""
        wants: dict[str, list[Callable[[str], bool]]] = {}
        for p in self.settings.paths:
            if "transfers" in p.kinds:
                wants.setdefault(p.src, []).append(is_packet_event)
        for pair in self._swap_pairs():
            for cid in pair:
                wants.setdefault(cid, []).append(is_htlc_event)
        return {
            cid: SharedStream(
                bus, self.handles[cid], want=_any_of(w), idle_timeout=self.idle_timeout
            )
            for cid, w in wants.items()
        }

    def _workers(
        self,
        bus: Bus,
        streams: Mapping[str, SharedStream],
        store: RelayerStore,
        submitters: Mapping[str, Submitter],
    ) -> list[tuple[Worker, Callable[[], Awaitable[None]]]]:
        out: list[tuple[Worker, Callable[[], Awaitable[None]]]] = []
        for p in self.settings.paths:
            if "transfers" in p.kinds:
                w = TransferWorker(
                    self.handles[p.src],
                    self.handles[p.dst],
                    submitters[p.dst],
                    store,
                    self.metrics,
                    denoms=p.denoms,
                    feed=self.feed,
                )
                out.append((w, self._follow_transfers(w, bus, streams[p.src])))
        out.extend(self._swap_workers(streams, store, submitters))
        ctx = WorkerContext(
            self.settings, self.handles, bus, self.metrics, self.feed, self._stop, self._busy
        )
        for kind in self.kinds:
            out.extend(kind(ctx))
        return out

    def _swap_workers(
        self,
        streams: Mapping[str, SharedStream],
        store: RelayerStore,
        submitters: Mapping[str, Submitter],
    ) -> list[tuple[Worker, Callable[[], Awaitable[None]]]]:
        from relayer.swaps import SwapWorker

        out: list[tuple[Worker, Callable[[], Awaitable[None]]]] = []
        for a, b in self._swap_pairs():
            floor = {c: self.settings.chains[c].finality_depth for c in (a, b)}
            w = SwapWorker(
                {a: self.handles[a], b: self.handles[b]},
                {a: submitters[a], b: submitters[b]},
                store,
                self.metrics,
                min_finality=floor,
                feed=self.feed,
            )
            out.append((w, functools.partial(w.follow, streams, self._stop, self._busy)))
        return out

    def _count(self, name: str, f: Follower, seen: SubscriberCounts) -> SubscriberCounts:
        """Carry what the stream's subscriber counted since ``seen`` into the metrics
        (every worker following the stream counts what it refused, as each worker's own
        subscriber did)."""
        sub = f.subscriber
        if sub is None:
            return seen
        now = SubscriberCounts.of(sub)
        self.metrics.bus_rejected.labels(name).inc(now.rejected - seen.rejected)
        self.metrics.reorg_notices.labels(name).inc(now.reorg_notices - seen.reorg_notices)
        if now.reorgs > seen.reorgs:
            self.metrics.reorgs.labels(name).inc(now.reorgs - seen.reorgs)
            log.warning(
                "%s: the source reorganised above the last final block (%d so far): the "
                "blocks replaced were held, never relayed",
                name,
                now.reorgs,
            )
        return now

    def _busy(self, name: str, busy: bool) -> None:
        r = self.running.get(name)
        if r is not None:
            r.busy_since = time.time() if busy else None

    def _follow_transfers(
        self, w: TransferWorker, bus: Bus, stream: SharedStream
    ) -> Callable[[], Awaitable[None]]:
        group = self.settings.share_group
        delay = self.settings.takeover_delay

        async def follow() -> None:
            # The stream reads and verifies in a task of its own, so blocks that arrive
            # while a batch waits for the destination's commit make up the next batch.
            # Past batch_blocks queued, this worker reads the rest from the chain later.
            # Batches are pipelined: the next one is planned and admitted while up to
            # w.batches_in_flight - 1 earlier ones wait for their commit (towards a BFT
            # client; a PoW or PoS client takes one at a time); they are settled
            # (accounted, cursor saved) strictly in the order sent, and an error settling
            # one drops the later ones unsettled, so the cursor never passes a batch that
            # did not settle.
            sub = stream.follow(w.name, w.cursor, maxsize=self.settings.batch_blocks)
            inflight: collections.deque[Batch] = collections.deque()
            read: asyncio.Future[list[VerifiedBlock]] | None = None
            async with sub, contextlib.AsyncExitStack() as stack:
                owner: Ownership | None = None
                if group:
                    owner = Ownership(bus.subscribe(shared_headers(group, w.src.chain_id)))
                    await stack.enter_async_context(owner)
                w.status.state = "running"
                self.running[w.name].waiting_since = None
                seen = SubscriberCounts()
                deferred: list[tuple[float, VerifiedBlock]] = []

                async def settle_oldest() -> None:
                    await w.settle(inflight.popleft())
                    self._busy(w.name, bool(inflight))

                async def take(wait_for: float | None) -> list[VerifiedBlock]:
                    try:
                        async with asyncio.timeout(wait_for):
                            return await sub.next_batch()
                    except TimeoutError:
                        return []

                try:
                    while not self._stop.is_set():
                        if read is None:
                            # with deferred blocks pending, wake up to take them over in time
                            read = asyncio.ensure_future(take(delay / 4 if deferred else None))
                        if inflight and not read.done():
                            # new blocks or the oldest batch's commit, whichever comes first
                            committed = asyncio.ensure_future(inflight[0].wait())
                            either: list[asyncio.Future[Any]] = [read, committed]
                            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                            committed.cancel()
                            if not read.done():
                                await settle_oldest()
                                continue
                        batch, read = await read, None
                        if owner is None:
                            ready = batch
                        else:
                            now = time.monotonic()
                            deferred.extend((now, b) for b in batch)
                            ready = sorted(
                                (
                                    b
                                    for t, b in deferred
                                    if owner.owns(b.height) or now - t >= delay
                                ),
                                key=lambda b: b.height,
                            )
                            taken = {b.height for b in ready}
                            deferred = [(t, b) for t, b in deferred if b.height not in taken]
                        upto = min(b.height for _, b in deferred) - 1 if deferred else None
                        n = self.settings.batch_blocks
                        for i in range(0, len(ready), n):
                            while len(inflight) >= w.batches_in_flight:
                                await settle_oldest()
                            self._busy(w.name, True)
                            chunk = ready[i : i + n]
                            end = chunk[-1].height if upto is None else min(upto, chunk[-1].height)
                            sent = await w.send(chunk, upto=end, alone=not inflight)
                            if sent is not None:
                                inflight.append(sent)
                            self._busy(w.name, bool(inflight))
                            if self._stop.is_set():
                                break
                        seen = self._count(w.name, sub, seen)
                    # stopping: what was sent is settled, in order (bounded by the wind-down)
                    while inflight:
                        await settle_oldest()
                finally:
                    if read is not None:
                        read.cancel()
                    self._busy(w.name, False)

        return follow

    async def _supervise(self, tasks: list[tuple[Worker, Callable[[], Awaitable[None]]]]) -> None:
        async def guard(worker: Worker, follow: Callable[[], Awaitable[None]]) -> None:
            delays = RETRY.delays()
            while not self._stop.is_set():
                try:
                    await worker.resolve_path()
                    await follow()
                except asyncio.CancelledError:
                    raise
                except (InterlockError, OSError, TimeoutError) as exc:
                    r = self.running[worker.name]
                    if r.waiting_since is None:
                        r.waiting_since = time.time()
                    worker.status.state = "waiting"
                    worker.status.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("%s: %s; retrying", worker.name, worker.status.last_error)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), next(delays))
                    continue
                delays = RETRY.delays()
            worker.status.state = "stopped"

        running: dict[str, asyncio.Task[None]] = {}
        for worker, follow in tasks:
            self.running[worker.name] = _Running(worker)
            running[worker.name] = asyncio.create_task(guard(worker, follow), name=worker.name)
            log.info("%s: started", worker.name)
        stop = asyncio.create_task(self._stop.wait(), name="relayer:stop")
        try:
            await asyncio.wait([stop, *running.values()], return_when=asyncio.FIRST_COMPLETED)
            # a worker ends before the stop only on something unexpected (a bug): loudly
            for t in running.values():
                if t.done() and not t.cancelled() and (exc := t.exception()) is not None:
                    raise exc
        finally:
            await self._wind_down(running)
            stop.cancel()

    async def _wind_down(self, running: Mapping[str, asyncio.Task[None]]) -> None:
        """Let busy workers finish their batch within the bound, then cancel the rest."""
        busy = []
        for name, task in running.items():
            if self.running[name].busy_since is None:
                task.cancel()  # idle: waiting for a block, nothing in flight
            else:
                busy.append(task)
        if busy:
            _, late = await asyncio.wait(busy, timeout=self.stop_timeout)
            for task in late:
                log.warning("%s: abandoning the in-flight batch at stop", task.get_name())
                task.cancel()
        if running:
            await asyncio.wait(running.values(), timeout=self.stop_timeout)

"""The transfer worker: ``transfer:SRC->DST`` carries SRC's proven bridge packets to DST.

The shell around :mod:`bridge.relay`'s pure planner. For each batch of SRC's verified
blocks (from the daemon's shared verified stream of SRC, only bridge packet events
decoded; gaps filled over RPC):

1. select the packets for DST (``bridge.locked``/``burned`` towards DST, and
   ``bridge.expired`` records of DST's transfers, which DST turns into refunds);
2. ask DST which are still to do (``bridge/pending``): a second relayer on the path, or
   this one before a crash, may have delivered some; those cost one query, not a failed
   transaction;
3. give DST's light client of SRC the header of every height that has such a packet
   (sequential or skipping updates, all in the same batch as the deliveries, in height
   order), and refresh it when its trusted state nears the end of the trusting period;
4. send ``mint``/``release``/``refund``/``acknowledge`` with as many proof bundles as fit in a
   transaction, through DST's one submitter;
5. advance the cursor, in SQLite, only after DST committed. Packets that DST refused for a
   reason that may pass (a pause, a rate limit, a race) are kept, with the cursor, and
   retried with the next batch and after a restart.

Steps 1-4 are :meth:`TransferWorker.send`, which returns once DST *admitted* the batch,
and step 5 is :meth:`TransferWorker.settle`, so the daemon pipelines: up to
:data:`BATCHES_IN_FLIGHT` batches are sent and not yet settled, and they settle in the
order sent. A batch sent while another waits for its commit is planned from what DST has
committed (its header updates trust the client's committed latest height, so it needs
nothing of the batch before it) and leaves the kept packets alone (the batch before may
be delivering them). Its transactions still execute after the earlier batch's: the one
submitter gives them the next nonces, and DST's mempool takes a sender's transactions
into blocks in nonce order.

A client of a PoW or PoS source (``pow-<n>``, ``pos-<n>``) follows work or stake instead
of commits: step 3 gives it runs of SRC's headers up to SRC's tip (``chains.powplan``;
a PoS client with the stake tables the run names, ``plan_stake_tables``), and a packet is
delivered only once its height is final in the client.

A header that DST's client already holds at a height but that differs from SRC's own
(verified) header is misbehaviour: the worker submits the real header, which the
on-chain client checks and, finding two valid commits for one height, freezes on; it
says so in the log, in ``/metrics`` and in ``/status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.relay import (
    MAX_PENDING_QUERY,
    METHODS,
    Packet,
    drop_delivered,
    heights_needed,
    pack_deliveries,
    pending_query,
    select_proven_packets,
    select_refusals,
)
from chains.encoding import JSONValue
from chains.errors import ConsensusStateNotFound, InterlockError
from chains.handle import ChainHandle
from chains.lcplan import LightBlock, UpdatePlanner, needs_refresh
from chains.lightclient import MAX_POW_BEST_QUERY, HeaderUpdate, get_chain_store
from chains.posclient import MAX_TABLES_PER_UPDATE, is_pos_client
from chains.powclient import MAX_HEADERS_PER_UPDATE, is_pow_client
from chains.powplan import is_provable, plan_pow_headers, plan_stake_tables
from chains.service.subscriber import VerifiedBlock
from chains.types import Commit, EventProof, Header, Receipt, ValidatorSet
from relayer.feed import Feed
from relayer.metrics import Metrics
from relayer.start import find_transfer_start
from relayer.store import RelayerStore
from relayer.submitter import Call, Sent, Submitter

__all__ = ["BATCHES_IN_FLIGHT", "Batch", "PathNotReady", "TransferWorker", "WorkStatus"]

log = logging.getLogger("interlock.relayer")

MAX_KEPT = 10_000
"""Most refused packets kept for retry per worker (oldest dropped, with a log line)."""
PENDING_PER_QUERY = MAX_PENDING_QUERY // 2
"""Packets asked about per ``bridge/pending`` query: at most ~30 bytes of JSON each, so
2,048 fit the RPC's 68 KiB query body (``RpcLimits.max_tx_bytes``); the module's own
4,096 did not once nonces passed ~10,000 (413, and the batch retried forever)."""
POW_HEADERS_AT_ONCE = 64
"""Source headers read at once when a PoW or PoS client needs many (a catch-up)."""
RETRY_KEPT_AFTER = 5.0
"""Seconds before packets the destination refused are sent again."""
COMMIT_TIMES = 4
"""Destination heights per batch whose block time is read for the console (the rest, and
any not read within :data:`COMMIT_TIME_WAIT` s, get the time their receipt came back)."""
COMMIT_TIME_WAIT = 1.0
BATCHES_IN_FLIGHT = 2
"""Most batches a transfer worker has sent and not yet settled (the daemon pipelines:
the next batch is planned and admitted while the last waits for its commit)."""


class PathNotReady(InterlockError):
    """The destination has no bridge path (or client) for the source yet."""

    code = "path_not_ready"


@dataclass(slots=True)
class Batch:
    """A batch sent and not yet settled: what :meth:`TransferWorker.settle` needs."""

    cursor: int
    """Where the cursor moves once it is settled."""
    tip: Header
    """The batch's last source header."""
    headers: dict[int, Header]
    """Its verified source headers, by height."""
    latest: int
    """The destination client's latest height when the batch was planned."""
    retrying: bool
    """The kept packets went into this batch."""
    todo: list[Packet] = field(default_factory=list)
    """The packets sent."""
    later: list[Packet] = field(default_factory=list)
    """Packets not final in a PoW or PoS client yet: kept."""
    deliveries: list[tuple[str, list[JSONValue]]] = field(default_factory=list)
    """The delivery transactions, by method, after the header updates."""
    updates: int = 0
    """Header updates first in the transactions."""
    covered: set[int] = field(default_factory=set)
    """Source heights the header updates were for (the console's "relayed")."""
    sent: Sent | None = None
    """The transactions, admitted; None when there were none."""
    frozen_kept: list[Packet] | None = None
    """The client was frozen: these packets are kept, nothing was sent."""

    async def wait(self) -> None:
        """Return once the destination answered for every transaction (never raises)."""
        if self.sent is not None:
            await self.sent.wait()


@dataclass(slots=True)
class WorkStatus:
    """What ``/status`` shows of one worker (mutable: the worker's bookkeeping)."""

    name: str
    """``transfer:chain-a->chain-b``."""
    state: str = "starting"
    """starting, running, waiting (for a chain or a path), stopped."""
    source_height: int = 0
    """Last source height processed."""
    client_id: str = ""
    """The destination's client of the source."""
    client_height: int = 0
    """Its latest height, as last read."""
    trusting_left_s: float | None = None
    """Seconds until its latest trusted header expires, as last read."""
    backlog: int = 0
    """Packets seen and not yet delivered."""
    oldest_pending_since: float | None = None
    """Wall time (s) the oldest of those was first seen."""
    relayed: int = 0
    """Packets delivered by this worker."""
    last_error: str = ""
    """The last failure, one line."""
    last_progress: float = field(default_factory=time.time)
    """Wall time (s) of the last completed batch or idle check."""
    misbehaviour: str = ""
    """Set when a conflicting header was found and reported."""
    start: dict[str, JSONValue] | None = None
    """Where the worker began without a cursor, and why (``relayer.start.FreshStart``);
    None when it resumed from one."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "state": self.state,
            "source_height": self.source_height,
            "client_id": self.client_id,
            "client_height": self.client_height,
            "trusting_period_left_s": self.trusting_left_s,
            "backlog": self.backlog,
            "oldest_pending_age_s": (
                None
                if self.oldest_pending_since is None
                else round(time.time() - self.oldest_pending_since, 3)
            ),
            "relayed": self.relayed,
            "last_error": self.last_error,
            "misbehaviour": self.misbehaviour,
            "start": self.start,
        }


def _field(obj: Any, key: str, kind: type) -> Any:
    """A field of an RPC answer (untrusted): present and of the expected type."""
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
        raise InterlockError(f"malformed answer: {key!r} missing or not {kind.__name__}")
    value = obj[key]
    if kind is int and isinstance(value, bool):
        raise InterlockError(f"malformed answer: {key!r} is not an int")
    return value


class TransferWorker:
    """Relays one direction of one bridge path."""

    def __init__(
        self,
        src: ChainHandle,
        dst: ChainHandle,
        submitter: Submitter,
        store: RelayerStore,
        metrics: Metrics,
        *,
        denoms: frozenset[str] = frozenset(),
        feed: Feed | None = None,
    ) -> None:
        self.src, self.dst = src, dst
        self.name = f"transfer:{src.chain_id}->{dst.chain_id}"
        self.submitter = submitter
        self.store = store
        self.metrics = metrics
        self.denoms = denoms
        self.feed = feed or Feed()
        self.status = WorkStatus(self.name)
        self.client_id = ""
        self.trusting_period_ms = 0
        self.max_clock_drift_ms = 0
        self.trust_level = (1, 3)
        self._kept: list[Packet] = self._load_kept()
        self._first_seen: dict[tuple[str, int], float] = {}
        self._vals: dict[int, ValidatorSet] = {}
        self._retry_at = 0.0
        self._commits: dict[int, Commit] = {}
        self._last_headers: list[dict[int, Header]] = []

    @property
    def batches_in_flight(self) -> int:
        """How many batches this worker may have sent and not yet settled.

        :data:`BATCHES_IN_FLIGHT` towards a BFT client, whose updates may each be trusted
        from any height it holds. A PoW or PoS client takes runs of headers that extend
        its own best chain: a run planned before the batch ahead of it committed starts
        below that batch's run, and the client refuses it as a fork below its finality
        (``ForkBelowFinality``), so there one batch at a time."""
        if is_pow_client(self.client_id) or is_pos_client(self.client_id):
            return 1
        return BATCHES_IN_FLIGHT

    # --- cursor and kept packets ------------------------------------------------------
    @property
    def cursor(self) -> int:
        return self.store.cursor(self.name) or 0

    def _load_kept(self) -> list[Packet]:
        raw = self.store.snapshot(self.name)
        kept: list[Packet] = []
        if isinstance(raw, list):
            for item in raw[:MAX_KEPT]:
                try:
                    if not isinstance(item, dict):
                        raise InterlockError("kept packet is not an object")
                    proof = EventProof.from_json(item.get("proof"))
                    kept.append(Packet(str(item.get("action")), int(item.get("nonce", 0)), proof))
                except (InterlockError, TypeError, ValueError) as exc:
                    log.warning("%s: dropping an unreadable kept packet: %s", self.name, exc)
        return kept

    def _save(self, height: int) -> None:
        snapshot: list[JSONValue] = [
            {"action": p.action, "nonce": p.nonce, "proof": p.proof.to_json()} for p in self._kept
        ]
        self.store.set_cursor(self.name, height, (self.name, snapshot))
        self.status.source_height = height
        self.metrics.source_height.labels(self.name).set(height)

    # --- reading the destination ------------------------------------------------------
    async def resolve_path(self) -> None:
        """Read the destination's client of the source from its bridge path (never guess)."""
        try:
            path = await self.dst.query("bridge", "path", {"remote_chain": self.src.chain_id})
        except InterlockError as exc:
            raise PathNotReady(
                f"{self.dst.chain_id} has no bridge path from {self.src.chain_id} ({exc})"
            ) from None
        self.client_id = str(_field(path, "client_id", str))
        client = await self._client()
        self.trusting_period_ms = int(_field(client, "trusting_period", int))
        self.max_clock_drift_ms = int(_field(client, "max_clock_drift", int))
        level = _field(client, "trust_level", list)
        if len(level) != 2 or not all(isinstance(x, int) for x in level):
            raise InterlockError("malformed answer: trust_level")
        self.trust_level = (int(level[0]), int(level[1]))
        got = str(_field(client, "chain_id", str))
        if got != self.src.chain_id:
            raise PathNotReady(
                f"{self.dst.chain_id}'s client {self.client_id} tracks {got!r}, "
                f"not {self.src.chain_id!r}"
            )
        self.status.client_id = self.client_id
        if self.store.cursor(self.name) is None:
            await self._start_fresh()

    async def _start_fresh(self) -> None:
        """No cursor: begin at the oldest work in flight, not at genesis
        (:mod:`relayer.start`); the choice becomes the cursor, so it is made once."""
        start = await find_transfer_start(self.src, self.dst)
        log.info("%s: %s", self.name, start.describe())
        self.status.start = start.to_json()
        self.store.set_cursor(self.name, start.cursor)
        self.status.source_height = start.cursor

    async def _client(self) -> Any:
        return await self.dst.query("lightclient", "client", {"client_id": self.client_id})

    async def _consensus(self, height: int) -> dict[str, Any] | None:
        try:
            got = await self.dst.query(
                "lightclient", "consensus_state", {"client_id": self.client_id, "height": height}
            )
        except ConsensusStateNotFound:
            return None
        except InterlockError as exc:
            if getattr(exc, "code", "") in ("consensus_state_not_found", "not_found"):
                return None
            raise
        if not isinstance(got, dict):
            raise InterlockError("malformed consensus state")
        return got

    async def _validators(self, height: int) -> ValidatorSet:
        vals = self._vals.get(height)
        if vals is None:
            got = await self.src.get_validators(height)
            if got is None:
                raise InterlockError(f"{self.src.chain_id} has no validators at {height}")
            vals = got
            if len(self._vals) > 4096:
                self._vals.clear()
            self._vals[height] = vals
        return vals

    # --- one batch ----------------------------------------------------------------------
    async def process(self, blocks: Sequence[VerifiedBlock], *, upto: int | None = None) -> None:
        """Relay everything the batch holds (heights in order, after the cursor); then
        the cursor moves to ``upto`` (default: the last block's height). A daemon in a
        share group passes a lower ``upto`` while heights below wait for their owner."""
        batch = await self.send(blocks, upto=upto)
        if batch is not None:
            await self.settle(batch)

    async def send(
        self, blocks: Sequence[VerifiedBlock], *, upto: int | None = None, alone: bool = True
    ) -> Batch | None:
        """The first half of :meth:`process`: select, ask, plan, and send the batch's
        transactions; return once the destination admitted them (not committed).

        ``alone``: no earlier batch of this worker is still waiting for its commit. A
        batch sent while one is (pipelining) is planned from what the destination has
        committed, not from what the earlier batch will add: its header updates trust the
        client's committed latest height, so it needs nothing of the earlier batch, and it
        does not retry the kept packets (the earlier batch may be delivering them). Then
        :meth:`settle` batches strictly in the order sent: only it moves the cursor."""
        if not blocks:
            return None
        by_height = {b.header.height: b for b in blocks}
        headers: dict[int, Header] = {h: b.header for h, b in by_height.items()}
        self._commits = {b.header.height: b.commit for b in blocks}
        for b in blocks:
            self._vals[b.header.height] = b.validators
        now = time.time()
        # packets the destination refused are retried with the next batch after a pause
        retrying = alone and now >= self._retry_at
        packets = list(self._kept) if retrying else []
        for b in blocks:
            packets.extend(
                p
                # proven by the subscriber already: their audit paths are reused
                for p in select_proven_packets(b.proofs, self.src.chain_id, self.dst.chain_id)
                if self._wanted(p)
            )
        for p in packets:
            self._first_seen.setdefault((p.action, p.nonce), now)
        # the client's state is read while the pending query runs: one round trip fewer
        asked = asyncio.ensure_future(self._client())
        try:
            todo = await self._undelivered(packets)
        except BaseException:
            asked.cancel()
            raise
        self.feed.record_packets(self.name, packets, now=now, headers=headers, todo=todo)
        client = await asked
        latest = int(_field(client, "latest_height", int))
        frozen = int(_field(client, "frozen_height", int))
        tip = blocks[-1].header
        cursor = tip.height if upto is None else upto
        if frozen:
            # nothing can be proven through a frozen client: keep the packets (governance
            # must replace the client) and follow on, without sending what cannot pass
            if not self.status.misbehaviour:
                self.status.misbehaviour = f"client {self.client_id} frozen at height {frozen}"
                log.error(
                    "%s: %s; not relaying until it is replaced", self.name, self.status.misbehaviour
                )
            self.status.state = "frozen"
            return Batch(cursor, tip, headers, latest, retrying, frozen_kept=todo)
        needed = heights_needed(todo)
        later: list[Packet] = []
        chain_client = get_chain_store(self.client_id) is not None
        if chain_client:
            # a PoW or PoS client follows work or stake: runs of headers up to the
            # source's tip, and events are proven only at heights that are then final
            updates, latest = await self._chain_updates(client, headers)
            later = [p for p in todo if not is_provable(latest, p.proof.height)]
            todo = [p for p in todo if is_provable(latest, p.proof.height)]
            needed = [tip.height] if updates else []
        else:
            if not needed and await self._needs_refresh(latest, tip):
                needed = [tip.height]
            # the client's latest is usually a recent batch's tip: its verified header
            # saves an RPC to the source (the busiest process) per batch
            updates = await self._header_updates(needed, latest, {**self._recent(), **headers})
        self._remember(headers)
        deliveries = pack_deliveries(todo)
        calls = [
            *updates,
            *(Call("bridge", method, {"bundles": bundles}) for method, bundles in deliveries),
        ]
        # a header update goes before the packets it proves: consecutive nonces, which
        # the destination's mempool takes into blocks in order
        sent = await self.submitter.send(calls)
        self.metrics.headers.labels(self.name).inc(len(updates))
        return Batch(
            cursor,
            tip,
            headers,
            latest,
            retrying,
            todo=todo,
            later=later,
            deliveries=deliveries,
            updates=len(updates),
            covered=({p.proof.height for p in todo} if chain_client else set(needed)),
            sent=sent,
        )

    async def settle(self, batch: Batch) -> None:
        """The second half of :meth:`process`: wait for the batch's commit, account for
        it, and move the cursor (persisted). Batches must be settled in the order sent;
        a batch that raises here leaves the cursor before it, whatever later batches did
        (the caller drops them: a restart redoes them, the destination refuses what it
        has)."""
        tip, headers, latest = batch.tip, batch.headers, batch.latest
        if batch.frozen_kept is not None:
            self._kept = [*([] if batch.retrying else self._kept), *batch.frozen_kept][-MAX_KEPT:]
            self._after_batch(batch.frozen_kept, {}, tip.height, latest, {})
            self._save(batch.cursor)
            return
        results = await batch.sent.results() if batch.sent is not None else []
        todo, deliveries, n = batch.todo, batch.deliveries, batch.updates
        delivered_ok, refusals = self._account(results[n:], deliveries, todo)
        committed = await self._commit_times(results)
        updated = [r for r in results[:n] if isinstance(r, Receipt) and r.ok]
        # "header relayed": when the destination committed the client's update, for the
        # heights it was needed at (a PoW or PoS client's run covers every packet it makes
        # final)
        relayed = {h: committed[updated[-1].height] for h in batch.covered} if updated else {}
        self.feed.record_packets(
            self.name,
            todo,
            now=max(committed.values(), default=time.time()),
            headers=headers,
            relayed=relayed,
            delivered=delivered_ok,
            refusals=refusals,
            error=self.status.last_error,
        )
        # a packet without a valid nonce was refused for good: it is not kept
        failed = [p for p in todo if p.nonce and (p.action, p.nonce) not in delivered_ok]
        failed.extend(batch.later)
        if failed:
            self._retry_at = time.time() + RETRY_KEPT_AFTER
        if not batch.retrying:
            failed = [*self._kept, *failed]  # not retried this batch: still kept
        self._kept = failed[-MAX_KEPT:]
        self._after_batch(todo, delivered_ok, tip.height, latest, headers)
        self._save(batch.cursor)

    def _recent(self) -> dict[int, Header]:
        out: dict[int, Header] = {}
        for headers in self._last_headers:
            out.update(headers)
        return out

    def _remember(self, headers: dict[int, Header]) -> None:
        """Keep the verified headers of the last few batches: the client's latest height
        is one of their tips (an earlier one while later batches are in flight)."""
        self._last_headers.append(headers)
        del self._last_headers[: -(BATCHES_IN_FLIGHT + 1)]

    def _wanted(self, p: Packet) -> bool:
        if not self.denoms or p.action in ("refund", "acknowledge"):  # about our transfers
            return True
        return p.proof.event.attributes.get("denom") in self.denoms

    async def _undelivered(self, packets: list[Packet]) -> list[Packet]:
        todo: list[Packet] = []
        for i in range(0, len(packets), PENDING_PER_QUERY):
            chunk = packets[i : i + PENDING_PER_QUERY]
            answer = await self.dst.query(
                "bridge", "pending", pending_query(self.src.chain_id, chunk)
            )
            left = drop_delivered(chunk, answer)
            self.metrics.redundant.labels(self.name).inc(len(chunk) - len(left))
            todo.extend(left)
        return todo

    async def _needs_refresh(self, latest: int, tip: Header) -> bool:
        if latest >= tip.height or not self.trusting_period_ms:
            return False
        cons = await self._consensus(latest)
        if cons is None:
            return True
        held, now_ms = int(_field(cons, "time", int)), int(time.time() * 1000)
        self.status.trusting_left_s = round((self.trusting_period_ms - (now_ms - held)) / 1000, 1)
        return needs_refresh(held, now_ms, self.trusting_period_ms)

    async def _header_updates(
        self, heights: Sequence[int], latest: int, headers: Mapping[int, Header]
    ) -> list[Call]:
        """update_client calls giving the client every height in ``heights``."""
        calls: list[Call] = []
        trusted = latest  # each update in the batch is trusted from the one before it
        trusted_header: Header | None = headers.get(latest)
        for h in heights:
            header = headers.get(h) or await self._header(h)
            if h <= latest:
                cons = await self._consensus(h)
                if cons is not None:
                    if str(_field(cons, "header_hash", str)) != header.hash.hex():
                        await self._misbehaviour(h, header, cons)
                        calls.extend(await self._fill_in(h, header))
                    continue
                calls.extend(await self._fill_in(h, header))
                continue
            if trusted_header is None:
                trusted_header = await self._header(trusted)
            calls.extend(await self._update(header, trusted, trusted_header))
            trusted, trusted_header = h, header
        return calls

    async def _chain_updates(
        self, client: Any, verified: Mapping[int, Header]
    ) -> tuple[list[Call], int]:
        """``update_pow_client`` (``update_pos_client``) calls taking the destination's
        PoW (PoS) client to the source's tip (``chains.powplan``), and the client's final
        height after them."""
        best = int(_field(client, "best_height", int))
        final = int(_field(client, "final_height", int))
        params = _field(client, "params", dict)
        depth = int(_field(params, "finality_depth", int))
        pos = is_pos_client(self.client_id)
        per_update = MAX_HEADERS_PER_UPDATE
        if pos:
            # a run of (tables - 1) epochs and one header spans at most the tables an
            # update carries, whatever the stake does
            epoch = int(_field(params, "epoch_length", int))
            per_update = min(per_update, (MAX_TABLES_PER_UPDATE - 1) * epoch + 1)
        top = await self.src.latest_height()
        hashes: dict[int, bytes] = {}
        for lo in range(final, best + 1, MAX_POW_BEST_QUERY):
            args = {"client_id": self.client_id, "from": lo, "to": best}
            got = await self.dst.query("lightclient", "pow_best", args)
            if not isinstance(got, dict):
                raise InterlockError("malformed answer: pow_best")
            hashes.update({int(h): bytes.fromhex(str(v)) for h, v in got.items()})
        source: dict[int, Header] = {}
        wanted = [h for h in range(final, top + 1) if h not in verified]
        for i in range(0, len(wanted), POW_HEADERS_AT_ONCE):
            chunk = wanted[i : i + POW_HEADERS_AT_ONCE]
            got = await asyncio.gather(*map(self._header, chunk))
            source.update(zip(chunk, got, strict=True))
        source.update((h, x) for h, x in verified.items() if h >= final)
        runs = plan_pow_headers(best, final, hashes, source, top, per_update)
        calls = [await self._run_update(run, pos) for run in runs]
        return calls, max(final, top - depth) if runs else final

    async def _run_update(self, run: Sequence[Header], pos: bool) -> Call:
        """One run of headers for a PoW client, or for a PoS client with the stake tables
        the run names (each read once from the source: its validator set there)."""
        update: dict[str, JSONValue] = {
            "client_id": self.client_id,
            "headers": [h.to_json() for h in run],
        }
        if not pos:
            return Call("lightclient", "update_pow_client", update)
        by_hash: dict[bytes, ValidatorSet] = {}
        table_at: dict[int, ValidatorSet] = {}
        for h in run:
            table = by_hash.get(h.validators_hash)
            if table is None:
                table = by_hash[h.validators_hash] = await self._validators(h.height)
            table_at[h.height] = table
        update["tables"] = [t.to_json() for t in plan_stake_tables(run, table_at)]
        return Call("lightclient", "update_pos_client", update)

    async def _header(self, height: int) -> Header:
        header = await self.src.get_header(height)
        if header is None or header.chain_id != self.src.chain_id:
            raise InterlockError(f"{self.src.chain_id} has no header at {height}")
        return header

    async def _update(self, header: Header, trusted: int, trusted_header: Header) -> list[Call]:
        """update_client calls taking the client from ``trusted`` to ``header``: one
        update when the trusted next set signed it (the usual case: a set that did not
        change), else the planner's skipping and bisecting steps (``chains.lcplan``)."""
        vals = await self._validators(header.height)
        if header.height == trusted + 1 or vals.hash == trusted_header.next_validators_hash:
            commit = await self._commit(header)
            tv = None if header.height == trusted + 1 else vals
            return [self._call(HeaderUpdate(header, commit, vals, trusted, tv))]
        planner = UpdatePlanner(
            await self._light_block(trusted_header),
            header.height,
            trust_level=self.trust_level,
            now=int(time.time() * 1000),
            trusting_period=self.trusting_period_ms,
            max_clock_drift=self.max_clock_drift_ms,
            trusted_hash=trusted_header.hash,
        )
        while (h := planner.next_height()) is not None:
            at = header if h == header.height else await self._header(h)
            planner.provide(await self._light_block(at))
        return [self._call(u) for u in planner.updates()]

    def _call(self, update: HeaderUpdate) -> Call:
        args: dict[str, JSONValue] = {"client_id": self.client_id, "update": update.to_json()}
        return Call("lightclient", "update_client", args)

    async def _commit(self, header: Header) -> Commit:
        commit = self._commits.get(header.height)
        if commit is None:
            got = await self.src.get_block(header.height)
            if got is None or got.header.hash != header.hash:
                raise InterlockError(f"{self.src.chain_id} has no block {header.height} to prove")
            commit = got.commit
        return commit

    async def _light_block(self, header: Header) -> LightBlock:
        vals = await self._validators(header.height)
        nxt = (
            vals
            if vals.hash == header.next_validators_hash
            else await self._validators(header.height + 1)
        )
        return LightBlock(header, await self._commit(header), vals, nxt)

    async def _fill_in(self, height: int, header: Header) -> list[Call]:
        """A header below the client's latest: trusted from the nearest stored one below
        (the on-chain client also checks it against the nearest one above)."""
        below = await self.dst.query(
            "lightclient", "consensus_below", {"client_id": self.client_id, "height": height}
        )
        if below is None:
            raise InterlockError(
                f"{self.dst.chain_id}'s client {self.client_id} stores no header below "
                f"{height} to verify it from"
            )
        t = int(_field(below, "height", int))
        return await self._update(header, t, await self._header(t))

    async def _misbehaviour(self, height: int, header: Header, cons: Mapping[str, Any]) -> None:
        msg = (
            f"MISBEHAVIOUR: {self.dst.chain_id}'s client {self.client_id} holds header "
            f"{cons.get('header_hash')!s:.16} at {self.src.chain_id} height {height}, the chain "
            f"says {header.hash.hex():.16}; submitting the real header to freeze the client"
        )
        log.error("%s: %s", self.name, msg)
        self.metrics.misbehaviour.labels(self.name).inc()
        self.status.misbehaviour = msg

    async def _commit_times(self, results: Sequence[Receipt | InterlockError]) -> dict[int, float]:
        """The destination's block time (s) of each height that committed one of
        ``results``, for the console; a header that cannot be read at once is given the
        time its receipt came back (the console's view never holds a batch up)."""
        heights = sorted({r.height for r in results if isinstance(r, Receipt)})
        out = dict.fromkeys(heights, time.time())
        wanted = heights[-COMMIT_TIMES:]
        if not wanted:
            return out
        # read at once, under one bound: a slow destination costs the batch 1 s, not 4
        reads = [asyncio.ensure_future(self.dst.get_header(h)) for h in wanted]
        await asyncio.wait(reads, timeout=COMMIT_TIME_WAIT)
        for h, read in zip(wanted, reads, strict=True):
            if not read.done():
                read.cancel()
                continue
            if read.cancelled() or read.exception() is not None:
                continue
            header = read.result()
            if header is not None:
                out[h] = header.time / 1000
        return out

    def _account(
        self,
        results: Sequence[Receipt | InterlockError],
        deliveries: Sequence[tuple[str, list[JSONValue]]],
        todo: Sequence[Packet],
    ) -> tuple[dict[tuple[str, int], str], dict[int, str]]:
        """Which packets landed (with their transaction's hash) and which of them the
        destination's policy refused (the rule, by nonce); log and count the rest (kept
        for the next batch)."""
        done: dict[tuple[str, int], str] = {}
        refused: dict[int, str] = {}
        # pack_deliveries groups by method, keeping each method's packets in order
        queues = {m: [p for p in todo if p.action == m] for m in METHODS}
        for (method, bundles), result in zip(deliveries, results, strict=False):
            chunk = queues[method][: len(bundles)]
            del queues[method][: len(bundles)]
            if isinstance(result, Receipt) and result.ok:
                tx = result.tx_hash.hex()
                done.update(((p.action, p.nonce), tx) for p in chunk)
                self.metrics.packets.labels(self.name, method).inc(len(chunk))
                for r in select_refusals(result.events):
                    if r.src_chain == self.src.chain_id:
                        refused[r.nonce] = r.rule
                    # delivered, and refused there: the refund comes back on the other path
                    self.metrics.refusals.labels(self.name, r.rule).inc()
                    log.info(
                        "%s: transfer %s:%s:%d refused by %s: %s (%s); refund follows",
                        self.name,
                        self.src.chain_id,
                        self.dst.chain_id,
                        r.nonce,
                        self.dst.chain_id,
                        r.rule,
                        r.detail,
                    )
                continue
            why = result.error if isinstance(result, Receipt) else str(result)
            code = result.code if isinstance(result, Receipt) else type(result).__name__
            self.status.last_error = f"{method} of {len(chunk)} packets: {code}: {why}"
            log.warning("%s: %s", self.name, self.status.last_error)
        return done, refused

    def _after_batch(
        self,
        todo: Sequence[Packet],
        done: Mapping[tuple[str, int], str],
        height: int,
        latest: int,
        headers: Mapping[int, Header],
    ) -> None:
        now = time.time()
        for p in todo:
            if (p.action, p.nonce) in done and p.action != "acknowledge":  # transfers only
                header = headers.get(p.proof.height)
                if header is not None:
                    self.metrics.latency.labels(self.name).observe(
                        max(0.0, now - header.time / 1000)
                    )
        self.status.relayed += len(done)
        self.status.backlog = len(self._kept)
        self.metrics.backlog.labels(self.name).set(len(self._kept))
        self.status.oldest_pending_since = min(
            (self._first_seen.get((p.action, p.nonce), now) for p in self._kept), default=None
        )
        if not self._kept:
            self._first_seen.clear()
        self.status.client_height = max(latest, height if todo else latest)
        self.metrics.client_lag.labels(self.name).set(max(0, height - self.status.client_height))
        self.status.last_progress = now

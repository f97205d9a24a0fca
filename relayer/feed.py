"""The console's event feed: what the workers saw happen, in memory and bounded.

The workers publish to one :class:`Feed` per daemon: a transfer worker every packet it
saw, queued or delivered (``locked → header relayed → minted``, ``expired → refunded``),
the swap worker every ``htlc.*`` event of either chain (a swap's legs, keyed by their
hashlock). The feed keeps the latest state of the latest :data:`MAX_ITEMS` transfers and
swaps, and a log of which changed (sequence numbers), so the console's ``/events`` stream
sends only what changed since it last looked, or a fresh snapshot when it fell behind.

It also keeps what the console shows that ``/status`` does not: each chain's height and
reachability per RPC endpoint (:func:`probe_chains` records them), and samples of the
``/metrics`` counters for the latency and throughput chart (:func:`sample_metrics`).

Pure bookkeeping: every method takes the time as an argument; nothing here touches the
event loop except :func:`probe_chains`, the one coroutine, owned by the API's app.
Everything stored is public (chain events, heights); an HTLC's preimage is never kept.

Errors::

    InterlockError
     └── FeedError   a hostile or malformed publication, refused whole
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from chains.encoding import JSONValue
from chains.engine import get_engine_name, parse_engine
from chains.errors import InterlockError
from chains.types import Event, Header

if TYPE_CHECKING:
    from bridge.relay import Packet
    from relayer.metrics import Metrics

__all__ = [
    "ChainProbe",
    "ChartPoint",
    "Feed",
    "FeedError",
    "MetricSample",
    "compute_chart",
    "get_item_key",
    "parse_probe",
    "probe_chains",
    "public_url",
    "sample_metrics",
]

MAX_ITEMS = 500
"""Transfers and swaps kept (the oldest changed is forgotten first)."""
MAX_LOG = 4096
"""Changes remembered for the streams; a stream further behind gets a snapshot."""
MAX_SAMPLES = 300
"""Metric samples kept for the chart (10 min at one per 2 s)."""
MAX_HISTORY = 16
"""State changes kept per item."""
MAX_TEXT = 300
"""Longest error text kept (one line)."""
MAX_DENOMS = 8
"""Balances shown per chain (the first denoms in order)."""

TRANSFER_SEEN = {"mint": "locked", "release": "burned", "refund": "expired"}
TRANSFER_DONE = {"mint": "minted", "release": "released", "refund": "refunded"}
FINAL = frozenset({"minted", "released", "refunded", "claimed"})
BRIDGE_EVENTS = frozenset(
    {"bridge.locked", "bridge.burned", "bridge.expired", "bridge.minted", "bridge.released"}
    | {"bridge.refunded", "bridge.refused", "bridge.acknowledged"}
)
HTLC_STATES = {"htlc.locked": "locked", "htlc.claimed": "claimed", "htlc.refunded": "refunded"}
# attributes a console may show: a preimage is public once claimed, but it is not ours to show
TRANSFER_FIELDS = ("sender", "recipient", "denom", "amount", "timeout_height")
LEG_FIELDS = ("lock_id", "sender", "receiver", "denom", "amount", "timelock", "claimer")


class FeedError(InterlockError):
    """A publication the feed refuses (malformed or hostile); nothing was recorded."""

    code = "bad_feed_input"


@dataclass(frozen=True, slots=True)
class MetricSample:
    """The ``/metrics`` counters at one moment."""

    t: float
    """Wall time (s)."""
    relayed: float
    """``interlock_packets_relayed_total`` plus ``interlock_swap_actions_total``."""
    latency_sum: float
    """``interlock_relay_latency_seconds_sum``, all work."""
    latency_count: float
    """``interlock_relay_latency_seconds_count``, all work."""


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One interval of the chart."""

    t: float
    """End of the interval (wall time, s)."""
    throughput: float
    """Packets and swap actions per second over the interval."""
    latency: float | None
    """Mean relay latency (s) of the packets delivered in it; None if none were."""


@dataclass(frozen=True, slots=True)
class ChainProbe:
    """What one endpoint of a chain answered to the console's probe."""

    height: int
    """Its latest height."""
    engine: str
    """The consensus engine's name (``bft``, ``pow``, ``pos``)."""
    block_interval: float | None
    """Seconds per block the chain aims at (None if it did not say)."""
    balances: Mapping[str, int]
    """The relayer key's balances on the chain, by denom (at most :data:`MAX_DENOMS`)."""


def parse_probe(status: object, balances: object) -> ChainProbe:
    """A probe from an endpoint's ``/status`` and its ``bank/balances`` answer for the
    relayer's address (both untrusted); raises :class:`FeedError` if either is malformed."""
    if not isinstance(status, Mapping):
        raise FeedError("status: expected an object")
    height = status.get("height")
    if not isinstance(height, int) or isinstance(height, bool) or height < 0:
        raise FeedError("status: height is not a non-negative integer")
    try:
        engine = parse_engine(status.get("consensus"))
    except InterlockError as exc:
        raise FeedError(f"status: {exc}") from None
    interval = status.get("block_interval")
    if engine is not None:
        interval = engine.block_interval_ms / 1000
    elif not isinstance(interval, int | float) or isinstance(interval, bool) or interval < 0:
        interval = None
    if not isinstance(balances, Mapping) or not all(
        isinstance(d, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for d, v in balances.items()
    ):
        raise FeedError("balances: expected an object of denoms to non-negative integers")
    return ChainProbe(height, get_engine_name(engine), interval, balances)


def compute_chart(samples: Sequence[MetricSample]) -> list[ChartPoint]:
    """Rates between consecutive samples (a counter that went down means a restart: the
    interval is skipped rather than drawn negative)."""
    out: list[ChartPoint] = []
    for a, b in itertools.pairwise(samples):
        dt = b.t - a.t
        dn, ds = b.relayed - a.relayed, b.latency_sum - a.latency_sum
        dc = b.latency_count - a.latency_count
        if dt <= 0 or dn < 0 or dc < 0 or ds < 0:
            continue
        out.append(ChartPoint(b.t, round(dn / dt, 3), round(ds / dc, 3) if dc else None))
    return out


def sample_metrics(metrics: Metrics, now: float) -> MetricSample:
    """Sum the chart's counters over all work, from the registry ``/metrics`` renders."""
    totals: dict[str, float] = collections.defaultdict(float)
    for family in metrics.registry.collect():
        for s in family.samples:
            totals[s.name] += s.value
    return MetricSample(
        now,
        totals["interlock_packets_relayed_total"] + totals["interlock_swap_actions_total"],
        totals["interlock_relay_latency_seconds_sum"],
        totals["interlock_relay_latency_seconds_count"],
    )


def public_url(url: str) -> str:
    """An endpoint as the console may show it: no user, password, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(unparsable endpoint)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_TEXT else line[: MAX_TEXT - 1] + "…"


def _scalar(value: JSONValue) -> JSONValue:
    # untrusted chain data: only short scalars reach the page
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value
    # the usual case, cheaply: a short printable line whose spaces need no folding
    if (
        isinstance(value, str)
        and len(value) <= 128
        and value.isprintable()
        and "  " not in value
        and value.strip(" ") == value
    ):
        return value
    return _one_line(str(value))[:128]


@dataclass(slots=True)
class _Item:
    """One transfer or swap as the feed keeps it (mutable: the feed's own record)."""

    key: str
    fields: dict[str, JSONValue]
    """What is shown besides the state: proofs, legs, tx hashes."""
    first_seen: float
    attributes: Mapping[str, JSONValue] | None = None
    """A transfer's event attributes (untrusted), cut to :data:`TRANSFER_FIELDS` when read."""
    state: str = ""
    history: list[tuple[str, float]] = field(default_factory=list)
    updated: float = 0.0
    error: str = ""

    def to_json(self) -> dict[str, JSONValue]:
        a = self.attributes
        shown = {} if a is None else {f: _scalar(a.get(f)) for f in TRANSFER_FIELDS}
        return {
            "id": self.key,
            **shown,
            **self.fields,
            "state": self.state,
            "history": [{"state": s, "t": t} for s, t in self.history],
            "first_seen": self.first_seen,
            "updated": self.updated,
            "error": self.error,
        }


def get_item_key(event: Event, chain_id: str = "") -> str | None:
    """The feed's key of the transfer or swap an event of ``chain_id`` belongs to (None:
    neither): a transfer by its path and nonce, a swap by its hashlock (both legs share
    it). A transfer's events on its own chains name only the other one."""
    a = event.attributes
    if event.type in HTLC_STATES:
        hashlock = a.get("hashlock")
        return f"swap:{hashlock}" if isinstance(hashlock, str) and len(hashlock) <= 128 else None
    if event.type in BRIDGE_EVENTS:
        nonce = a.get("nonce")
        if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 1:
            return None
        src, dst = a.get("src_chain", chain_id), a.get("dst_chain", chain_id)
        if isinstance(src, str) and isinstance(dst, str):
            return f"{_transfer_prefix(src, dst)}{nonce}"
        return f"transfer:{_scalar(src)}->{_scalar(dst)}#{nonce}"
    return None


@functools.lru_cache(maxsize=256)
def _transfer_prefix(src: str, dst: str) -> str:
    # a path's prefix is the same for all its packets: cut the untrusted names once
    return f"transfer:{_scalar(src)}->{_scalar(dst)}#"


class Feed:
    """One daemon's feed (the one mutable store of the console's view).

    Per packet the bookkeeping is a few dictionary operations: an item's fields are
    built once, when it is first seen; a later state change moves only its state and
    history (both bounded); listeners are woken once per call, not per item. Items are
    turned into JSON only when read (a stream's snapshot or changes)."""

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        if max_items < 1:
            raise FeedError(f"max_items must be positive, got {max_items}")
        self.max_items = max_items
        self.seq = 0
        self._items: collections.OrderedDict[str, _Item] = collections.OrderedDict()
        self._log: collections.deque[tuple[int, str]] = collections.deque(maxlen=MAX_LOG)
        self.chains: dict[str, dict[str, dict[str, JSONValue]]] = {}
        self.samples: collections.deque[MetricSample] = collections.deque(maxlen=MAX_SAMPLES)
        self.listeners: list[Callable[[], None]] = []

    # --- reading ------------------------------------------------------------------------
    def items(self) -> list[dict[str, JSONValue]]:
        """The kept transfers and swaps, latest change first."""
        return [v.to_json() for v in reversed(self._items.values())]

    def changes_since(self, seq: int) -> list[dict[str, JSONValue]] | None:
        """Items changed after ``seq`` (latest state, each once, in change order), or None
        when the log no longer reaches back that far (the reader needs a snapshot)."""
        if seq >= self.seq:
            return []
        if not self._log or self._log[0][0] > seq + 1:
            return None
        # sequence numbers in the log are consecutive: the reader's start is an offset
        start = seq + 1 - self._log[0][0]
        keys = dict.fromkeys(k for _, k in itertools.islice(self._log, start, None))
        return [self._items[k].to_json() for k in keys if k in self._items]

    def chain_view(self) -> list[dict[str, JSONValue]]:
        """Per chain: reachable if one endpoint answers; the height, engine, block
        interval and relayer balances of the endpoint furthest ahead."""
        out: list[dict[str, JSONValue]] = []
        for cid, endpoints in sorted(self.chains.items()):
            eps = list(endpoints.values())
            answered = [e for e in eps if e["reachable"]]
            best = max(answered, key=lambda e: int(e["height"] or 0), default={})
            out.append(
                {
                    "id": cid,
                    "height": best.get("height"),
                    "engine": best.get("engine"),
                    "block_interval": best.get("block_interval"),
                    "balances": best.get("balances"),
                    "reachable": bool(answered),
                    "endpoints": eps,
                }
            )
        return out

    def chart(self) -> list[dict[str, JSONValue]]:
        return [
            {"t": p.t, "throughput": p.throughput, "latency": p.latency}
            for p in compute_chart(list(self.samples))
        ]

    # --- recording ----------------------------------------------------------------------
    def record_sample(self, sample: MetricSample) -> None:
        if self.samples and sample.t <= self.samples[-1].t:
            raise FeedError(f"sample at {sample.t} is not after {self.samples[-1].t}")
        self.samples.append(sample)

    def record_probe(
        self,
        chain_id: str,
        endpoint: str,
        *,
        now: float,
        probe: ChainProbe | None = None,
        error: str = "",
    ) -> None:
        """One endpoint answered with ``probe``, or failed with ``error``."""
        if not chain_id or len(chain_id) > 128 or len(endpoint) > 2048:
            raise FeedError("chain id or endpoint out of bounds")
        if probe is not None and (isinstance(probe.height, bool) or probe.height < 0):
            raise FeedError(f"bad height {probe.height!r} for {chain_id}")
        entry: dict[str, JSONValue] = {
            "url": public_url(endpoint),
            "reachable": probe is not None,
            "height": None,
            # an error names the endpoint as configured, credentials and all
            "error": "" if probe else _one_line(error.replace(endpoint, public_url(endpoint))),
            "checked_at": round(now, 3),
        }
        if probe is not None:
            shown = sorted(probe.balances.items())[:MAX_DENOMS]
            entry.update(
                height=probe.height,
                engine=_scalar(probe.engine),
                block_interval=probe.block_interval,
                balances={str(_scalar(d)): v for d, v in shown},
            )
        self.chains.setdefault(chain_id, {})[endpoint] = entry

    def record_packets(
        self,
        work: str,
        packets: Sequence[Packet] | Iterable[Packet],
        *,
        now: float,
        headers: Mapping[int, Header] | None = None,
        todo: Iterable[Packet] | None = None,
        relayed: Mapping[int, float] | None = None,
        delivered: Mapping[tuple[str, int], str] | None = None,
        refusals: Mapping[int, str] | None = None,
        error: str = "",
    ) -> None:
        """A transfer worker's view of ``packets``: seen on the source (``todo`` the ones
        the destination still needs; the rest were delivered already, by anyone), or,
        with ``delivered`` (the delivering transaction's hash by packet), the outcome of
        sending ``packets``: ``relayed`` gives, per source height, when the destination
        committed the client update for it; ``refusals`` the rule by nonce of transfers
        the destination's compliance policy refused on arrival (refunded later)."""
        todo_keys = None if todo is None else {(p.action, p.nonce) for p in todo}
        roots: dict[int, JSONValue] = {}
        changed = False
        # each item recorded moves to the front: of more than the bound, the earlier ones
        # would only be built to be forgotten within this call
        shown = packets if isinstance(packets, Sequence) else list(packets)
        for p in shown[-self.max_items :]:
            if p.action not in TRANSFER_SEEN or not p.nonce:
                continue  # the destination refuses a packet without a nonce: not a transfer
            pk = (p.action, p.nonce)
            key = get_item_key(p.proof.event)
            if key is None:
                continue
            tx = ""
            if delivered is not None:
                tx = delivered.get(pk, "")
                rule = (refusals or {}).get(p.nonce) if tx else None
                if rule is not None:
                    state = f"refused: {_one_line(rule)[:64]}"
                else:
                    state = TRANSFER_DONE[p.action] if tx else "refused"
            elif todo_keys is not None and pk not in todo_keys:
                state = TRANSFER_DONE[p.action]
            else:
                state = TRANSFER_SEEN[p.action]
            item = self._items.get(key)
            if item is None:
                item = self._new_transfer(key, work, p, now)
            if tx:
                item.fields[f"{p.action}_tx"] = tx
            proof_key = f"{p.kind}_proof"
            proof = item.fields.get(proof_key)
            if not isinstance(proof, dict) or proof.get("height") != p.proof.height:
                proof = item.fields[proof_key] = {
                    "chain": p.proof.chain_id,
                    "height": p.proof.height,
                    "index": p.proof.index,
                    "event": p.proof.event.type,
                }
            if "root" not in proof and headers is not None:
                h = p.proof.height
                if h not in roots:
                    header = headers.get(h)
                    roots[h] = None if header is None else header.event_root.hex()
                if roots[h] is not None:
                    proof["root"] = roots[h]
            if relayed is not None and p.proof.height in relayed:
                changed |= self._move(item, "header relayed", relayed[p.proof.height], "")
            changed |= self._move(item, state, now, _one_line(error) if state == "refused" else "")
        if changed:
            self._notify()

    def _new_transfer(self, key: str, work: str, p: Packet, now: float) -> _Item:
        a = p.proof.event.attributes
        fields: dict[str, JSONValue] = {
            "kind": "transfer",
            "work": work,
            "src": _scalar(a.get("src_chain")),
            "dst": _scalar(a.get("dst_chain")),
            "nonce": p.nonce,
        }
        return _Item(key, fields, round(now, 3), a)

    def record_htlc(
        self,
        chain_id: str,
        header: Header,
        events: Sequence[Event],
        now: float,
        indices: Sequence[int] | None = None,
    ) -> None:
        """A block's ``htlc.*`` events: each moves one leg of the swap keyed by its
        hashlock (both legs of an atomic swap share it). ``indices``: each event's
        position in its block, when ``events`` are not all of the block's."""
        changed = False
        root = header.event_root.hex()
        at = range(len(events)) if indices is None else indices
        for index, e in zip(at, events, strict=True):
            leg_state = HTLC_STATES.get(e.type)
            key = get_item_key(e) if leg_state is not None else None
            if leg_state is None or key is None:
                continue
            item = self._items.get(key)
            if item is None:
                fields: dict[str, JSONValue] = {
                    "kind": "swap",
                    "hashlock": e.attributes["hashlock"],
                    "legs": {},
                }
                item = _Item(key, fields, round(now, 3))
            legs = item.fields["legs"]
            assert isinstance(legs, dict)  # the feed built it
            leg = {f: _scalar(e.attributes.get(f)) for f in LEG_FIELDS if f in e.attributes}
            leg.update(state=leg_state, height=header.height, index=index, root=root)
            legs[_one_line(chain_id)[:128]] = leg
            states = [str(v.get("state")) for v in legs.values() if isinstance(v, dict)]
            claimed = sorted(
                c for c, v in legs.items() if isinstance(v, dict) and v["state"] == "claimed"
            )
            if len(states) >= 2 and all(s == "claimed" for s in states):
                state = "claimed"
            elif all(s == "refunded" for s in states):
                state = "refunded"
            elif claimed:
                state = "secret revealed"
            else:
                state = "locked"
            item.fields["secret"] = (
                f"public on {', '.join(claimed)}" if claimed else "the initiator"
            )
            changed |= self._move(item, state, now, "", touched=True)
        if changed:
            self._notify()

    def _move(
        self, item: _Item, state: str, now: float, error: str, *, touched: bool = False
    ) -> bool:
        """Put ``item`` in ``state`` (latest first out of the bound); False when nothing
        changed (``touched``: its fields did, e.g. a swap's leg). A stale view (a batch
        redone after a restart) never moves a finished transfer back, and a compliance
        refusal is followed only by its refund."""
        same = item.state == state and item.error == error and item.key in self._items
        if same and not touched:
            return False
        if item.state in FINAL and state not in FINAL:
            return False
        if item.state.startswith("refused: ") and state != "refunded":
            return False
        if item.state != state:
            item.history.append((state, round(now, 3)))
            if len(item.history) > MAX_HISTORY:
                del item.history[0]
        item.state, item.error, item.updated = state, error, round(now, 3)
        self._items[item.key] = item
        self._items.move_to_end(item.key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        self.seq += 1
        self._log.append((self.seq, item.key))
        return True

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener()


async def probe_chains(
    feed: Feed,
    probes: Mapping[str, Mapping[str, Callable[[], Awaitable[ChainProbe]]]],
    *,
    interval: float = 1.0,
    probe_timeout: float = 2.0,
    metrics: Metrics | None = None,
) -> None:
    """Forever: probe every endpoint of every chain (``probes[chain][url]``),
    in parallel, each within ``probe_timeout``; record the answers (and a metrics sample)."""

    async def one(cid: str, url: str, probe: Callable[[], Awaitable[ChainProbe]]) -> None:
        try:
            async with asyncio.timeout(probe_timeout):
                got = await probe()
        except (InterlockError, OSError, TimeoutError) as exc:
            feed.record_probe(cid, url, now=time.time(), error=f"{type(exc).__name__}: {exc}")
        else:
            feed.record_probe(cid, url, now=time.time(), probe=got)

    ticks = 0
    while True:
        await asyncio.gather(
            *(one(cid, url, p) for cid, eps in probes.items() for url, p in eps.items())
        )
        if metrics is not None and ticks % 2 == 0:
            with contextlib.suppress(FeedError):  # a clock step back: skip one sample
                feed.record_sample(sample_metrics(metrics, time.time()))
        ticks += 1
        for listener in list(feed.listeners):
            listener()
        await asyncio.sleep(interval)

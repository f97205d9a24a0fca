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
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from chains.encoding import JSONValue
from chains.errors import InterlockError
from chains.types import Event, Header

if TYPE_CHECKING:
    from bridge.relay import Packet
    from relayer.metrics import Metrics

__all__ = [
    "ChartPoint",
    "Feed",
    "FeedError",
    "MetricSample",
    "compute_chart",
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

TRANSFER_SEEN = {"mint": "locked", "release": "burned", "refund": "expired"}
TRANSFER_DONE = {"mint": "minted", "release": "released", "refund": "refunded"}
FINAL = frozenset({"minted", "released", "refunded", "claimed"})
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
    return _one_line(str(value))[:128]


class Feed:
    """One daemon's feed (the one mutable store of the console's view)."""

    def __init__(self, max_items: int = MAX_ITEMS) -> None:
        if max_items < 1:
            raise FeedError(f"max_items must be positive, got {max_items}")
        self.max_items = max_items
        self.seq = 0
        self._items: collections.OrderedDict[str, dict[str, JSONValue]] = collections.OrderedDict()
        self._log: collections.deque[tuple[int, str]] = collections.deque(maxlen=MAX_LOG)
        self.chains: dict[str, dict[str, dict[str, JSONValue]]] = {}
        self.samples: collections.deque[MetricSample] = collections.deque(maxlen=MAX_SAMPLES)
        self.listeners: list[Callable[[], None]] = []

    # --- reading ------------------------------------------------------------------------
    def items(self) -> list[dict[str, JSONValue]]:
        """The kept transfers and swaps, latest change first."""
        return [dict(v) for v in reversed(self._items.values())]

    def changes_since(self, seq: int) -> list[dict[str, JSONValue]] | None:
        """Items changed after ``seq`` (latest state, each once, in change order), or None
        when the log no longer reaches back that far (the reader needs a snapshot)."""
        if seq >= self.seq:
            return []
        if not self._log or self._log[0][0] > seq + 1:
            return None
        keys = dict.fromkeys(k for s, k in self._log if s > seq)
        return [dict(self._items[k]) for k in keys if k in self._items]

    def chain_view(self) -> list[dict[str, JSONValue]]:
        """Per chain: the highest height any endpoint reported, reachable if one answers."""
        out: list[dict[str, JSONValue]] = []
        for cid, endpoints in sorted(self.chains.items()):
            eps = list(endpoints.values())
            heights = [e["height"] for e in eps if isinstance(e.get("height"), int)]
            out.append(
                {
                    "id": cid,
                    "height": max(heights, default=None),
                    "reachable": any(e.get("reachable") is True for e in eps),
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
        height: int | None = None,
        error: str = "",
    ) -> None:
        """One endpoint answered with ``height``, or failed with ``error``."""
        if not chain_id or len(chain_id) > 128 or len(endpoint) > 2048:
            raise FeedError("chain id or endpoint out of bounds")
        if height is not None and (isinstance(height, bool) or height < 0):
            raise FeedError(f"bad height {height!r} for {chain_id}")
        self.chains.setdefault(chain_id, {})[endpoint] = {
            "url": public_url(endpoint),
            "reachable": height is not None,
            "height": height,
            # an error names the endpoint as configured, credentials and all
            "error": _one_line(error.replace(endpoint, public_url(endpoint)))
            if height is None
            else "",
            "checked_at": round(now, 3),
        }

    def record_packets(
        self,
        work: str,
        packets: Iterable[Packet],
        *,
        now: float,
        headers: Mapping[int, Header] | None = None,
        todo: Iterable[Packet] | None = None,
        relaying: Iterable[int] = (),
        delivered: set[tuple[str, int]] | None = None,
        error: str = "",
    ) -> None:
        """A transfer worker's view of ``packets``: seen on the source (``todo`` the ones
        the destination still needs; the rest were delivered already, by anyone), their
        headers being relayed (``relaying``: source heights), or, with ``delivered``,
        the outcome of sending ``packets``."""
        todo_keys = None if todo is None else {(p.action, p.nonce) for p in todo}
        relaying = set(relaying)
        for p in packets:
            a = p.proof.event.attributes
            if p.action not in TRANSFER_SEEN or not p.nonce:
                continue  # the destination refuses a packet without a nonce: not a transfer
            if delivered is not None:
                ok = (p.action, p.nonce) in delivered
                state = TRANSFER_DONE[p.action] if ok else "refused"
            elif todo_keys is not None and (p.action, p.nonce) not in todo_keys:
                state = TRANSFER_DONE[p.action]
            elif p.proof.height in relaying:
                state = "header relayed"
            else:
                state = TRANSFER_SEEN[p.action]
            src, dst = _scalar(a.get("src_chain")), _scalar(a.get("dst_chain"))
            header = (headers or {}).get(p.proof.height)
            fields: dict[str, JSONValue] = {
                "kind": "transfer",
                "work": work,
                "src": src,
                "dst": dst,
                "nonce": p.nonce,
                **{f: _scalar(a.get(f)) for f in TRANSFER_FIELDS},
            }
            proof: dict[str, JSONValue] = {
                "chain": p.proof.chain_id,
                "height": p.proof.height,
                "index": p.proof.index,
                "event": p.proof.event.type,
            }
            key = f"transfer:{src}->{dst}#{p.nonce}"
            old = self._items.get(key, {}).get(f"{p.kind}_proof")
            if header is not None:
                proof["root"] = header.event_root.hex()
            elif isinstance(old, dict) and old.get("height") == p.proof.height and "root" in old:
                proof["root"] = old["root"]  # a later batch without that block's header
            self._update(
                key,
                state,
                now,
                fields,
                {f"{p.kind}_proof": proof},
                _one_line(error) if state == "refused" else "",
            )

    def record_htlc(
        self, chain_id: str, header: Header, events: Sequence[Event], now: float
    ) -> None:
        """A block's ``htlc.*`` events: each moves one leg of the swap keyed by its
        hashlock (both legs of an atomic swap share it)."""
        for index, e in enumerate(events):
            leg_state = HTLC_STATES.get(e.type)
            hashlock = e.attributes.get("hashlock")
            if leg_state is None or not isinstance(hashlock, str) or len(hashlock) > 128:
                continue
            key = f"swap:{hashlock}"
            item = self._items.get(key)
            legs: dict[str, JSONValue] = dict(item["legs"]) if item else {}
            leg = {f: _scalar(e.attributes.get(f)) for f in LEG_FIELDS if f in e.attributes}
            leg.update(
                state=leg_state,
                height=header.height,
                index=index,
                root=header.event_root.hex(),
            )
            legs[_one_line(chain_id)[:128]] = leg
            states = [str(v.get("state")) for v in legs.values() if isinstance(v, dict)]
            claimed = [
                c for c, v in legs.items() if isinstance(v, dict) and v["state"] == "claimed"
            ]
            if states and all(s == "claimed" for s in states) and len(states) >= 2:
                state = "claimed"
            elif states and all(s == "refunded" for s in states):
                state = "refunded"
            elif claimed:
                state = "secret revealed"
            else:
                state = "locked"
            secret = f"public on {', '.join(sorted(claimed))}" if claimed else "the initiator"
            fields: dict[str, JSONValue] = {"kind": "swap", "hashlock": hashlock, "secret": secret}
            self._update(key, state, now, fields, {"legs": legs}, "")

    def _update(
        self,
        key: str,
        state: str,
        now: float,
        fields: Mapping[str, JSONValue],
        extra: Mapping[str, JSONValue],
        error: str,
    ) -> None:
        item = self._items.pop(key, None)
        if item is None:
            item = {"id": key, "state": "", "history": [], "first_seen": round(now, 3)}
        elif item["state"] in FINAL and state not in FINAL:
            # a stale view (a batch retried after a restart) never moves a transfer back
            self._items[key] = item
            return
        history = list(item["history"])
        if item["state"] != state:
            history = [*history, {"state": state, "t": round(now, 3)}][-MAX_HISTORY:]
        item.update(fields)
        item.update(extra)
        item.update(state=state, history=history, updated=round(now, 3), error=error)
        self._items[key] = item
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        self.seq += 1
        self._log.append((self.seq, key))
        for listener in list(self.listeners):
            listener()


async def probe_chains(
    feed: Feed,
    probes: Mapping[str, Mapping[str, Callable[[], Awaitable[int]]]],
    *,
    interval: float = 1.0,
    probe_timeout: float = 2.0,
    metrics: Metrics | None = None,
) -> None:
    """Forever: ask every endpoint of every chain for its height (``probes[chain][url]``),
    in parallel, each within ``probe_timeout``; record the answers (and a metrics sample)."""

    async def one(cid: str, url: str, probe: Callable[[], Awaitable[int]]) -> None:
        try:
            async with asyncio.timeout(probe_timeout):
                height = await probe()
        except (InterlockError, OSError, TimeoutError) as exc:
            feed.record_probe(cid, url, now=time.time(), error=f"{type(exc).__name__}: {exc}")
        else:
            feed.record_probe(cid, url, now=time.time(), height=height)

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

"""Where a worker without a cursor starts: at the oldest work still to do, not at genesis.

A relayer with no cursor (a new operator, a new path, a wiped data dir) would otherwise
read every block of its source since height 1 before relaying the first packet. The
chains keep what is in flight (IBC's model: a ``sent`` record per transfer until its
delivery is acknowledged or it is refunded), and their event index finds the events of
one transfer by its id (``SRC:DST:NONCE``), so a worker can ask, as Hermes's packet
clearing does, where its work begins.

The rule for ``transfer:SRC->DST`` (:func:`find_transfer_start`), every read after the
first:

1. ``final``: SRC's latest height less its finality depth, read **first**. A transfer
   sent after that read is in a block above it, which the worker follows anyway; one
   sent before it is in the in-flight set read next, or already settled.
2. SRC's transfers to DST still in flight (``bridge/in_flight`` on SRC): the oldest is the
   lowest nonce (nonces are numbered in the order their locks execute), so one index
   search finds its ``bridge.locked``/``bridge.burned`` height.
3. DST's transfers to SRC still in flight (``bridge/in_flight`` on DST) that SRC already
   received (``bridge/pending`` on SRC): their delivery on SRC (``bridge.minted``,
   ``released`` or ``expired``) is still to be proven back to DST (acknowledge or
   refund); one index search each. One SRC has not received yet is delivered later,
   above ``final``; one queued in SRC's delay queue likewise.
4. The cursor: ``min(final, oldest event - 1)``; the worker follows from the next height.

Anything that cannot be answered soundly (a handle without an event index, a chain that
indexes no bridge events or has no ``in_flight`` query, an in-flight transfer whose event
the index does not hold, more deliveries to look up than :data:`MAX_LOOKUPS`) falls back
to genesis with one line saying why: starting too early is only slow (the chains refuse
a second delivery), starting too late would lose a transfer. An endpoint that does not
answer is not a reason to fall back: the error goes to the worker's supervisor, which
retries.

What is trusted: the source's and destination's RPC endpoints, as for the cursor's own
header (``chains.service.subscriber.trust_at``) and the ``pending`` query. An endpoint
that lies about what is in flight can make a new worker start late, as one that lies to
``pending`` can make a worker skip a packet: it loses work, never funds.

The rule for ``swap:A<->B`` (:func:`find_swap_start`), per chain: both chains' final
heights first, then every open HTLC lock on both (``htlc/open_locks``); a chain's cursor
is just below the oldest ``htlc.locked`` of a lock open on it and the oldest
``htlc.claimed`` on it revealing the secret of a lock open on either chain (the index
finds claims by ``hashlock``). What a watchtower fed from genesis would also know and
this one does not: secrets revealed before the start for no lock then open (a lock made
later with an already public hashlock is its receiver's to claim).

The choice (:class:`FreshStart`, built by the pure :func:`compute_start`) is logged once
and shown in ``/status``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from chains.encoding import JSONValue
from chains.engine import get_finality_depth
from chains.errors import InterlockError
from chains.handle import ChainHandle
from chains.service.rpc_client import RpcUnavailable
from chains.service.verified import EventSearch

__all__ = [
    "MAX_LOOKUPS",
    "FreshStart",
    "compute_start",
    "find_swap_start",
    "find_transfer_start",
    "from_genesis",
    "get_in_flight",
    "get_open_locks",
]

log = logging.getLogger("interlock.relayer")

MAX_LOOKUPS = 10_000
"""Most index searches one fresh start makes (one per delivery still to prove back);
past it, genesis."""
LOOKUPS_AT_ONCE = 16
"""Index searches in flight at once."""
IN_FLIGHT_PAGE = 1000
"""Sent records asked for per ``bridge/in_flight`` page (the module's most)."""
PENDING_AT_ONCE = 2048
"""Nonces asked about per ``bridge/pending`` query (fits the RPC's query body)."""
MAX_PAGES = 1000
"""``in_flight`` pages read at most (a million transfers): past it, genesis."""


class CannotStartFresh(InterlockError):
    """The chains cannot say soundly where the work begins; ``reason`` is one line."""

    code = "cannot_start_fresh"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class FreshStart:
    """Where a worker without a cursor begins, and why."""

    cursor: int
    """The height taken as done: the worker follows from ``cursor + 1`` (0: genesis)."""
    in_flight: int
    """Transfers found in flight that the worker may still act on."""
    oldest: tuple[int, str] | None
    """The height and kind (``locked``, ``minted``...) of the oldest event among them."""
    reason: str
    """Why, in one line (the log and ``/status``)."""

    @property
    def height(self) -> int:
        """The first height the worker follows."""
        return self.cursor + 1

    def describe(self) -> str:
        """``no cursor; starting at height 812 (3 transfers in flight, ...)``."""
        if self.cursor == 0:
            return f"no cursor; scanning from genesis ({self.reason})"
        return f"no cursor; starting at height {self.height} ({self.reason})"

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "height": self.height,
            "in_flight": self.in_flight,
            "oldest_height": None if self.oldest is None else self.oldest[0],
            "reason": self.reason,
        }


def from_genesis(reason: str) -> FreshStart:
    """Start at height 1, saying why."""
    return FreshStart(0, 0, None, reason)


def compute_start(
    final: int,
    events: Sequence[tuple[int, str]],
    in_flight: int,
    *,
    what: str = "transfers in flight",
) -> FreshStart:
    """The cursor of a worker whose source was final up to ``final`` when the in-flight
    set was read, and whose ``in_flight`` pieces of work (``what``: ``transfers in
    flight``, ``locks open``) have their oldest events at ``events`` (height, kind): just
    below the oldest event, and never above ``final``."""
    if final < 0 or any(h < 1 for h, _ in events):
        raise ValueError("heights start at 1")
    if not events:
        if in_flight:
            why = f"{in_flight} {what}, none to act on here yet; final height {final}"
        else:
            why = f"no {what} at final height {final}"
        return FreshStart(final, in_flight, None, why)
    oldest = min(events)
    cursor = min(final, oldest[0] - 1)
    if cursor == 0:
        return FreshStart(0, in_flight, oldest, f"the oldest event of the {what} is at height 1")
    why = f"{in_flight} {what}, the oldest {oldest[1]} at {oldest[0]}"
    return FreshStart(cursor, in_flight, oldest, why)


# --- reading the chains ----------------------------------------------------------------


async def get_in_flight(handle: ChainHandle, remote: str) -> list[int]:
    """The nonces of ``handle``'s transfers to ``remote`` still in flight, every page."""
    nonces: list[int] = []
    after: int | None = None
    for _ in range(MAX_PAGES):
        args: dict[str, JSONValue] = {"remote_chain": remote, "limit": IN_FLIGHT_PAGE}
        if after is not None:
            args["after"] = after
        page = await handle.query("bridge", "in_flight", args)
        got, nxt = _page(page)
        nonces.extend(got)
        if nxt is None:
            return nonces
        after = nxt
    raise CannotStartFresh(f"more than {MAX_PAGES * IN_FLIGHT_PAGE} transfers in flight")


def _page(page: Any) -> tuple[list[int], int | None]:
    if not isinstance(page, dict) or not isinstance(page.get("nonces"), list):
        raise CannotStartFresh("malformed bridge/in_flight answer")
    nonces, nxt = page["nonces"], page.get("next")
    if not all(_is_nonce(n) for n in nonces) or not (nxt is None or _is_nonce(nxt)):
        raise CannotStartFresh("malformed bridge/in_flight answer")
    return nonces, nxt


def _is_nonce(n: object) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 1


async def _oldest(
    index: EventSearch, types: Sequence[str], transfer: str
) -> tuple[int, str] | None:
    """The lowest height of an event of ``types`` with transfer id ``transfer`` (a
    resent packet has a later copy: every page is read; there are one or two)."""
    nonce = int(transfer.rpartition(":")[2])
    best: tuple[int, str] | None = None
    before: str | None = None
    for _ in range(16):
        found, before = await index.search_events(
            types, ("transfer", transfer), limit=20, before=before
        )
        for h, _, event in found:
            if event.type not in types or event.attributes.get("nonce") != nonce:
                raise CannotStartFresh(f"the index answered another event for {transfer}")
            kind = event.type.rpartition(".")[2]
            if best is None or h < best[0]:
                best = (h, kind)
        if before is None:
            return best
    raise CannotStartFresh(f"transfer {transfer} has more events than expected")


async def _received(src: ChainHandle, dst_id: str, nonces: Sequence[int]) -> list[int]:
    """Of DST's transfers ``nonces``, those ``src`` has received (``bridge/pending``
    answers the ones it has not)."""
    received: list[int] = []
    for i in range(0, len(nonces), PENDING_AT_ONCE):
        chunk = nonces[i : i + PENDING_AT_ONCE]
        asked: list[JSONValue] = [["locked", n] for n in chunk]
        answer = await src.query("bridge", "pending", {"remote_chain": dst_id, "packets": asked})
        if not isinstance(answer, list) or len(answer) > len(chunk):
            raise CannotStartFresh("malformed bridge/pending answer")
        todo = set()
        for item in answer:
            if not (isinstance(item, list) and len(item) == 2 and _is_nonce(item[1])):
                raise CannotStartFresh("malformed bridge/pending answer")
            todo.add(item[1])
        received.extend(n for n in chunk if n not in todo)
    return received


async def _gather_bounded(calls: Sequence[Callable[[], Awaitable[Any]]]) -> list[Any]:
    limit = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with limit:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


SENT_KINDS = ("bridge.locked", "bridge.burned")
DELIVERED_KINDS = ("bridge.minted", "bridge.released", "bridge.expired")


async def find_transfer_start(src: ChainHandle, dst: ChainHandle) -> FreshStart:
    """Where ``transfer:SRC->DST`` starts without a cursor (the module docstring's rule),
    or genesis with the reason. An unreachable chain raises (the supervisor retries)."""
    if getattr(src, "search_events", None) is None:
        return from_genesis(f"{src.chain_id} is reached without an event index")
    try:
        return await _transfer_start(src, dst, cast(EventSearch, src))
    except RpcUnavailable:
        raise
    except CannotStartFresh as exc:
        return from_genesis(exc.reason)
    except InterlockError as exc:  # no index, a type left out, no in_flight query, ...
        return from_genesis(f"{type(exc).__name__}: {exc}"[:200])


async def _transfer_start(src: ChainHandle, dst: ChainHandle, index: EventSearch) -> FreshStart:
    s, d = src.chain_id, dst.chain_id
    depth = get_finality_depth((await src.get_consensus()).engine)
    # first: whatever is sent after this read lies above it (see the module docstring)
    final = max(0, await src.latest_height() - depth)
    ours = await get_in_flight(src, d)
    theirs = await get_in_flight(dst, s)
    events: list[tuple[int, str]] = []
    if ours:
        first = min(ours)
        got = await _oldest(index, SENT_KINDS, f"{s}:{d}:{first}")
        if got is None:
            raise CannotStartFresh(f"{s}'s index has no lock of transfer {s}:{d}:{first}")
        events.append(got)
    received = await _received(src, d, theirs)
    if len(received) > MAX_LOOKUPS:
        raise CannotStartFresh(f"{len(received)} deliveries to prove back, over {MAX_LOOKUPS}")

    async def delivery(nonce: int) -> tuple[int, str] | None:
        key = f"{d}:{s}:{nonce}"
        got = await _oldest(index, DELIVERED_KINDS, key)
        if got is not None:
            return got
        status = await src.query("bridge", "received", {"remote_chain": d, "nonce": nonce})
        if status in (None, "queued"):
            return None  # delivered later, above `final`
        got = await _oldest(index, DELIVERED_KINDS, key)  # it may have landed meanwhile
        if got is None:
            raise CannotStartFresh(f"{s}'s index has no delivery of transfer {key} ({status})")
        return got

    found = await _gather_bounded([functools.partial(delivery, n) for n in received])
    events.extend(e for e in found if e is not None)
    return compute_start(final, events, len(ours) + len(received))


# --- swap watchers ------------------------------------------------------------------------

MAX_LOCK_PAGES = 1000
"""``htlc/open_locks`` pages read per chain at most (closed records are kept for ever, so
a page reads up to 1,000 records of any state): past it, genesis."""


async def get_open_locks(handle: ChainHandle) -> list[dict[str, Any]]:
    """Every open HTLC lock record of ``handle``'s chain, every page."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(MAX_LOCK_PAGES):
        args: dict[str, JSONValue] = {"limit": IN_FLIGHT_PAGE}
        if after is not None:
            args["after"] = after
        page = await handle.query("htlc", "open_locks", args)
        if not isinstance(page, dict) or not isinstance(page.get("locks"), list):
            raise CannotStartFresh("malformed htlc/open_locks answer")
        for record in page["locks"]:
            if not (
                isinstance(record, dict)
                and isinstance(record.get("hashlock"), str)
                and _is_nonce(record.get("opened"))
            ):
                raise CannotStartFresh("an open lock without its hashlock or height opened")
            out.append(record)
        nxt = page.get("next")
        if nxt is None:
            return out
        if not isinstance(nxt, str):
            raise CannotStartFresh("malformed htlc/open_locks answer")
        after = nxt
    raise CannotStartFresh(f"more than {MAX_LOCK_PAGES * IN_FLIGHT_PAGE} lock records")


async def _first_claim(index: EventSearch, hashlock: str) -> int | None:
    """The lowest height of an ``htlc.claimed`` revealing ``hashlock``'s secret (one per
    lock with that hashlock: one or two)."""
    best: int | None = None
    before: str | None = None
    for _ in range(16):
        found, before = await index.search_events(
            ("htlc.claimed",), ("hashlock", hashlock), limit=20, before=before
        )
        for h, _, event in found:
            if event.type != "htlc.claimed" or event.attributes.get("hashlock") != hashlock:
                raise CannotStartFresh(f"the index answered another event for {hashlock[:16]}")
            best = h if best is None else min(best, h)
        if before is None:
            return best
    raise CannotStartFresh(f"hashlock {hashlock[:16]} has more claims than expected")


async def find_swap_start(
    handles: Mapping[str, ChainHandle], finality: Mapping[str, int]
) -> dict[str, FreshStart]:
    """Where ``swap:A<->B`` starts on each chain without a cursor, or genesis with the
    reason (for both: the watchtower matches one chain's secrets to the other's locks).

    Per chain C: ``final_C`` (its latest height less ``finality[C]``), read first on both
    chains; then every open lock on both; C's cursor is just below the oldest of its
    events the watchtower needs: the ``htlc.locked`` of each lock open on C, and each
    ``htlc.claimed`` on C that revealed the secret of a lock open on either chain (found
    in C's index by hashlock). Never above ``final_C``."""
    for h in handles.values():
        if getattr(h, "search_events", None) is None:
            return dict.fromkeys(
                handles, from_genesis(f"{h.chain_id} is reached without an event index")
            )
    try:
        return await _swap_start(handles, finality)
    except RpcUnavailable:
        raise
    except CannotStartFresh as exc:
        return dict.fromkeys(handles, from_genesis(exc.reason))
    except InterlockError as exc:  # no index, htlc.claimed left out, no open_locks query
        return dict.fromkeys(handles, from_genesis(f"{type(exc).__name__}: {exc}"[:200]))


async def _swap_start(
    handles: Mapping[str, ChainHandle], finality: Mapping[str, int]
) -> dict[str, FreshStart]:
    final: dict[str, int] = {}
    for cid, h in handles.items():  # first: a lock or claim after these reads lies above
        final[cid] = max(0, await h.latest_height() - finality.get(cid, 0))
    open_locks = {cid: await get_open_locks(h) for cid, h in handles.items()}
    hashlocks = sorted({r["hashlock"] for locks in open_locks.values() for r in locks})
    if len(hashlocks) * len(handles) > MAX_LOOKUPS:
        raise CannotStartFresh(f"{len(hashlocks)} open hashlocks to look up, over {MAX_LOOKUPS}")
    n_open = sum(len(locks) for locks in open_locks.values())
    out: dict[str, FreshStart] = {}
    for cid, h in handles.items():
        events = [(int(r["opened"]), "locked") for r in open_locks[cid]]
        index = cast(EventSearch, h)
        claims = await _gather_bounded(
            [functools.partial(_first_claim, index, hl) for hl in hashlocks]
        )
        events.extend((c, "claimed") for c in claims if c is not None)
        out[cid] = compute_start(final[cid], events, n_open, what="locks open")
    return out

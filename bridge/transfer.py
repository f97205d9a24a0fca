"""The lock-mint transfer protocol as plain data and pure functions (no state, no clock).

A **packet** is what a source bridge commits to in its ``bridge.locked`` or
``bridge.burned`` event and what a destination bridge acts on once the event is proven:

    src_chain, dst_chain, nonce      (path, nonce) names the transfer; used at most once
    sender, recipient                addresses on the source / destination
    denom, amount                    the denom as named on the source; amount > 0
    timeout_height                   a destination height: deliverable while below it
    travel_rule (optional)           SHA-256 of the travel-rule data sealed to the
                                     destination's compliance key (:mod:`zk.registry`)

**Denom tracing** (as ICS-20 does it): a denom that arrives over the path from chain S is
minted as ``S/<denom as named on S>``. The name is one-to-one: one wrapped denom per
(path, source denom). Sending a wrapped denom back over the path it came from burns it,
and the origin releases the original from escrow, so a round trip never wraps twice:
``usd`` → ``chain-a/usd`` on B → ``usd`` on A. Sent onwards to C it becomes
``chain-b/chain-a/usd`` there, backed by B's escrow, not A's.

**A transfer's life** is an explicit state machine (:class:`Status`):
``SENT → DELIVERED``, ``SENT → QUEUED → DELIVERED`` (a large transfer waits out a delay),
or ``SENT → EXPIRED → REFUNDED`` (the destination passed the timeout before delivery and
recorded the expiry; the source proves it and refunds). ``QUEUED → EXPIRED`` is
governance cancelling a queued transfer that can no longer execute (a lowered cap, a
frozen client); it then ends as a timeout does. ``QUEUED → SENT`` is governance dropping
a queued packet proven under a client that then froze (it may be forged): the
destination forgets it, so the real transfer with that nonce can still be delivered.
``DELIVERED`` and ``REFUNDED`` are final and exclusive.

**Outflow limits**: funds leaving a bridge (mint, release, refund) are capped per
(path, local denom) over any ``window`` consecutive heights: a sliding window, so no
burst across a boundary moves more than the cap (fixed windows let up to twice the cap
through in ``window`` heights). The record keeps the outflow in ``FLOW_BUCKETS`` buckets
of ``ceil(window / FLOW_BUCKETS)`` heights and counts every bucket that overlaps the last
``window`` heights, so it is bounded in size and errs on the strict side by at most one
bucket of history. A refund larger than the current cap (governance lowered it after the
lock) passes alone in an otherwise empty window (:func:`compute_refund_flow`), else it
could never pass.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from bridge.errors import MalformedPacket, RateLimited
from chains.encoding import JSONValue, canonical
from chains.module import MAX_AMOUNT, is_address, is_chain_id, is_denom

__all__ = [
    "DEFAULT_LIMITS",
    "FLOW_BUCKETS",
    "MAX_DENOM",
    "PACKET_KEYS",
    "Limits",
    "Packet",
    "Status",
    "compute_flow",
    "compute_refund_flow",
    "compute_returning_denom",
    "compute_wrapped_denom",
    "is_chain_id",
    "is_conserved",
    "next_status",
]

MAX_DENOM = 128
MAX_CHAIN_ID = 64
PACKET_KEYS = frozenset(
    {"src_chain", "dst_chain", "nonce", "sender", "recipient", "denom", "amount", "timeout_height"}
)


_HASH = re.compile(r"[0-9a-f]{64}")


def _is_int(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


@dataclass(frozen=True, slots=True)
class Packet:
    """One cross-chain transfer, as the source committed to it."""

    src_chain: str
    """Chain that locked or burned."""
    dst_chain: str
    """Chain that mints or releases."""
    nonce: int
    """Per-path sequence number on the source, from 1."""
    sender: str
    """Address that paid on the source (and gets a refund)."""
    recipient: str
    """Address paid on the destination."""
    denom: str
    """Denom as named on the source chain."""
    amount: int
    """Amount, > 0."""
    timeout_height: int
    """Destination height from which the transfer can no longer be delivered."""
    travel_rule: bytes | None = None
    """SHA-256 of the travel-rule data (originator and beneficiary information sealed to
    the destination's compliance key), when the sender attached some; absent from the
    packet's JSON otherwise, so packets without it encode as they always did."""

    def to_json(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {
            "src_chain": self.src_chain,
            "dst_chain": self.dst_chain,
            "nonce": self.nonce,
            "sender": self.sender,
            "recipient": self.recipient,
            "denom": self.denom,
            "amount": self.amount,
            "timeout_height": self.timeout_height,
        }
        if self.travel_rule is not None:
            out["travel_rule"] = self.travel_rule.hex()
        return out

    @property
    def hash(self) -> bytes:
        return sha256(canonical(self.to_json())).digest()

    @classmethod
    def from_attributes(cls, attrs: Mapping[str, Any]) -> Packet:
        """Parse a proven event's attributes. Untrusted even when proven: the remote
        bridge is trusted to follow the protocol, not to be free of bugs."""
        keys = attrs.keys() - {"travel_rule"}
        if keys != PACKET_KEYS:
            extra = sorted(keys - PACKET_KEYS)
            missing = sorted(PACKET_KEYS - keys)
            raise MalformedPacket("*", f"unexpected keys {extra} / missing keys {missing}")
        travel = attrs.get("travel_rule")
        travel_rule = None
        if travel is not None:
            if not isinstance(travel, str) or not _HASH.fullmatch(travel):
                raise MalformedPacket("travel_rule", "expected a SHA-256 as 64 lowercase hex")
            travel_rule = bytes.fromhex(travel)
        src, dst = attrs["src_chain"], attrs["dst_chain"]
        if not is_chain_id(src):
            raise MalformedPacket("src_chain", "expected a chain id")
        if not is_chain_id(dst):
            raise MalformedPacket("dst_chain", "expected a chain id")
        nonce, amount, timeout = attrs["nonce"], attrs["amount"], attrs["timeout_height"]
        if not _is_int(nonce, 1, MAX_AMOUNT):
            raise MalformedPacket("nonce", "expected a positive integer")
        if not _is_int(amount, 1, MAX_AMOUNT):
            raise MalformedPacket("amount", f"expected an integer in [1, {MAX_AMOUNT}]")
        if not _is_int(timeout, 1, MAX_AMOUNT):
            raise MalformedPacket("timeout_height", "expected a positive integer")
        sender, recipient, denom = attrs["sender"], attrs["recipient"], attrs["denom"]
        if not is_address(sender):
            raise MalformedPacket("sender", "expected an address")
        if not is_address(recipient):
            raise MalformedPacket("recipient", "expected an address")
        if not is_denom(denom):
            raise MalformedPacket("denom", "expected a denom")
        return cls(src, dst, nonce, sender, recipient, denom, amount, timeout, travel_rule)


# --- denom tracing --------------------------------------------------------------------


def compute_wrapped_denom(src_chain: str, denom: str) -> str:
    """The local name of ``denom`` arriving from ``src_chain`` (may exceed MAX_DENOM;
    the sender checks before it locks)."""
    return f"{src_chain}/{denom}"


def compute_returning_denom(own_chain: str, denom: str) -> str | None:
    """The local denom a burned ``denom`` releases here, or None if it did not come from
    this chain (the remote side names our assets ``<own_chain>/<local denom>``)."""
    prefix = own_chain + "/"
    if denom.startswith(prefix) and is_denom(denom[len(prefix) :]):
        return denom[len(prefix) :]
    return None


# --- a transfer's life ----------------------------------------------------------------


class Status(enum.Enum):
    """Where one transfer (path, nonce) is. DELIVERED and REFUNDED are final, exclusive."""

    SENT = "sent"
    QUEUED = "queued"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    REFUNDED = "refunded"


_TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.SENT: frozenset({Status.QUEUED, Status.DELIVERED, Status.EXPIRED}),
    # expired: governance cancels; sent: governance drops a maybe forged packet (a frozen
    # client proved it), so the real one with that nonce can still arrive
    Status.QUEUED: frozenset({Status.DELIVERED, Status.EXPIRED, Status.SENT}),
    Status.EXPIRED: frozenset({Status.REFUNDED}),
    Status.DELIVERED: frozenset(),
    Status.REFUNDED: frozenset(),
}


def next_status(current: Status, target: Status) -> Status:
    """The one function that moves a transfer; refuses every other move."""
    if target not in _TRANSITIONS[current]:
        raise ValueError(f"a transfer cannot go from {current.value} to {target.value}")
    return target


# --- outflow limits ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """Outflow rules of one (path, denom)."""

    cap: int
    """Most that may leave per window (mint + release + refund)."""
    window: int
    """Window length in heights (windows are ``height // window``)."""
    delay_threshold: int
    """Transfers of at least this amount wait in the queue (0: never)."""
    delay: int
    """Heights a queued transfer waits before it executes."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "cap": self.cap,
            "window": self.window,
            "delay_threshold": self.delay_threshold,
            "delay": self.delay,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Limits:
        return cls(d["cap"], d["window"], d["delay_threshold"], d["delay"])

    def is_delayed(self, amount: int) -> bool:
        return 0 < self.delay_threshold <= amount


DEFAULT_LIMITS = Limits(cap=MAX_AMOUNT, window=100, delay_threshold=0, delay=0)


FLOW_BUCKETS = 16


def _window_outflow(
    record: Mapping[str, Any] | Sequence[int] | None, height: int, limits: Limits
) -> tuple[int, list[list[int]]]:
    """(bucket size, buckets ``[index, amount]`` that overlap the ``window`` heights
    ending at ``height``), from a stored record. A record kept under another window
    length is re-bucketed by each bucket's last height (counted as late as it could be:
    strict). A ``[window, used]`` pair is the fixed-window record of earlier versions."""
    size = -(-limits.window // FLOW_BUCKETS)
    first = max(0, height - limits.window + 1) // size
    if record is None:
        return size, []
    if isinstance(record, Mapping):
        old_size, old = int(record["size"]), record["buckets"]
    else:
        old_size, old = limits.window, [list(record)]
    merged: dict[int, int] = {}
    for index, amount in old:
        b = ((index + 1) * old_size - 1) // size
        if b >= first:
            merged[b] = merged.get(b, 0) + amount
    return size, [[b, merged[b]] for b in sorted(merged)]


def _with_outflow(size: int, buckets: list[list[int]], height: int, amount: int) -> JSONValue:
    b = height // size
    if buckets and buckets[-1][0] == b:
        buckets[-1][1] += amount
    else:
        buckets.append([b, amount])
    return {"size": size, "buckets": buckets}


def compute_flow(
    record: Mapping[str, Any] | Sequence[int] | None,
    height: int,
    limits: Limits,
    amount: int,
    *,
    remote_chain: str = "",
    denom: str = "",
) -> JSONValue:
    """The outflow record after ``amount`` leaves at ``height``; raises
    :class:`RateLimited` if the last ``window`` heights would then exceed the cap."""
    size, buckets = _window_outflow(record, height, limits)
    used = sum(a for _, a in buckets)
    if used + amount > limits.cap:
        raise RateLimited(remote_chain, denom, used, amount, limits.cap)
    return _with_outflow(size, buckets, height, amount)


def compute_refund_flow(
    record: Mapping[str, Any] | Sequence[int] | None,
    height: int,
    limits: Limits,
    amount: int,
    *,
    remote_chain: str = "",
    denom: str = "",
) -> JSONValue:
    """The outflow record after a refund of ``amount`` at ``height``.

    As :func:`compute_flow`, except that a refund larger than the cap passes when it is
    the window's only outflow, and then fills the window. ``lock`` refuses amounts above
    the cap in force, so this happens only when governance lowered the cap after the
    lock; without it the refund would be refused in every window and the sender's funds
    would stay in escrow for good. Outflow per window stays at most the larger of the cap
    and one such refund, which was within the cap when it was locked. To stop refunds
    altogether governance pauses the path.
    """
    size, buckets = _window_outflow(record, height, limits)
    if amount > limits.cap and not buckets:
        return _with_outflow(size, buckets, height, amount)
    return compute_flow(record, height, limits, amount, remote_chain=remote_chain, denom=denom)


def is_conserved(escrowed: int, wrapped_supply: int, in_flight: int) -> bool:
    """Invariant I1 for one (path, origin denom): what the origin holds in escrow is
    exactly what exists wrapped on the other side plus what is on its way."""
    return escrowed == wrapped_supply + in_flight and min(escrowed, wrapped_supply) >= 0

"""A bridge transfer's history, read from the chains' event indexes (``GET /events``).

The source prunes a transfer's ``sent`` record once it settles (acknowledged or
refunded) and the destination keeps only a status per nonce, so what a settled transfer
was (amount, sender, recipient, where it was locked and delivered) is only in the
events. Each chain indexes them by the derived ``transfer`` key ``SRC:DST:NONCE``
(:mod:`chains.service.eventindex`); this module asks both chains for the transfer's
events and checks each one it uses:

* checked: the event is leaf ``index`` of the block at ``height`` (its RFC 6962 audit
  path from ``GET /events/{height}/{index}`` leads to the ``event_root`` of that block's
  header, with the header's ``event_count`` as tree size), and it is the very event the
  index answered;
* not checked: that the header is the chain's. The header comes from the same endpoint,
  and no light client stands behind the command: an endpoint that lies about its
  headers can lie here too. The relayer, which moves funds, verifies headers with light
  clients; this is a read for a user.

Errors: an event whose proof fails is :class:`UnprovenEvent` (one line); a chain
without an index yields no history (the caller falls back to what state tells).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.errors import InterlockError
from chains.service.rpc_client import HttpChain, RpcError
from chains.service.subscriber import validate_event
from chains.types import Event
from interlock.errors import CommandError

__all__ = [
    "DELIVERY_TYPES",
    "SEND_TYPES",
    "SETTLE_TYPES",
    "FoundEvent",
    "TransferHistory",
    "UnprovenEvent",
    "find_events",
    "prove",
    "read_history",
]

SEND_TYPES = ("bridge.locked", "bridge.burned")
"""On the source: the transfer sent (a ``resend`` emits it again, later)."""
DELIVERY_TYPES = (
    "bridge.minted",
    "bridge.released",
    "bridge.queued",
    "bridge.refused",
    "bridge.expired",
)
"""On the destination: what became of it."""
SETTLE_TYPES = ("bridge.acknowledged", "bridge.refunded")
"""On the source: the record pruned, by an acknowledgement or a refund."""


class UnprovenEvent(CommandError):
    """An indexed event whose proof does not check out against its block's header."""

    def __init__(self, chain_id: str, height: int, index: int, reason: str) -> None:
        self.chain_id, self.height, self.index = chain_id, height, index
        super().__init__(
            f"{chain_id}: event {index} of height {height} does not prove: {reason[:200]}"
        )


@dataclass(frozen=True, slots=True)
class FoundEvent:
    """An event the index answered, with where it is."""

    chain_id: str
    """Chain that committed it."""
    height: int
    """Its block."""
    index: int
    """Its position among the block's events."""
    event: Event
    """The event."""
    proven: bool = False
    """Checked against the block's header (see the module docstring)."""

    @property
    def name(self) -> str:
        """``minted``, ``locked``...: the event type without its module."""
        return self.event.type.split(".", 1)[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain_id,
            "height": self.height,
            "index": self.index,
            "type": self.event.type,
            "attributes": dict(self.event.attributes),
            "proven": self.proven,
        }


@dataclass(frozen=True, slots=True)
class TransferHistory:
    """What both chains' events say of one transfer (None where they say nothing)."""

    sent: FoundEvent | None
    """The lock or burn on the source (the first, if it was resent)."""
    outcome: FoundEvent | None
    """The latest of minted / released / queued / refused / expired on the destination."""
    settled: FoundEvent | None
    """The acknowledgement or refund on the source."""
    indexed: bool
    """Both chains answered the search (False: a chain keeps no index)."""


async def find_events(
    chain: HttpChain,
    types: Sequence[str],
    attr: tuple[str, str] | None,
    *,
    limit: int = 20,
) -> list[FoundEvent] | None:
    """One page of the chain's index, newest first; None when it keeps none."""
    try:
        found, _ = await chain.search_events(types, attr, limit=limit)
    except RpcError as exc:
        # index_disabled / not_indexed: this chain keeps none of these; not_found: an
        # older node without GET /events
        if exc.code in ("index_disabled", "not_indexed", "not_found"):
            return None
        raise
    return [FoundEvent(chain.chain_id, h, i, e) for h, i, e in found]


async def prove(chain: HttpChain, found: FoundEvent) -> FoundEvent:
    """``found``, checked against the header of its block (or :class:`UnprovenEvent`)."""
    cid, h, i = chain.chain_id, found.height, found.index
    proof = await chain.get_event_proof(h, i)
    header = await chain.get_header(h)
    if proof is None or header is None:
        raise UnprovenEvent(cid, h, i, "the node serves no proof or header for it")
    try:
        validate_event(header, proof)
    except InterlockError as exc:
        raise UnprovenEvent(cid, h, i, str(exc)) from None
    if proof.event.leaf() != found.event.leaf():
        raise UnprovenEvent(cid, h, i, "the index answered another event than the block holds")
    return FoundEvent(cid, h, i, proof.event, proven=True)


async def read_history(src: HttpChain, dst: HttpChain | None, tid: str) -> TransferHistory:
    """The transfer ``tid`` (``SRC:DST:NONCE``) as both chains' indexes tell it, each
    event used checked with :func:`prove`. ``dst`` None: the source's side only."""
    key = ("transfer", tid)
    sends = await find_events(src, SEND_TYPES, key)
    settles = await find_events(src, SETTLE_TYPES, key, limit=1)
    outcomes = None if dst is None else await find_events(dst, DELIVERY_TYPES, key, limit=1)
    sent = await prove(src, sends[-1]) if sends else None  # oldest: a resend comes later
    settled = await prove(src, settles[0]) if settles else None
    outcome = await prove(dst, outcomes[0]) if dst is not None and outcomes else None
    return TransferHistory(
        sent, outcome, settled, sends is not None and (dst is None or outcomes is not None)
    )


def packet_of(found: FoundEvent | None) -> Mapping[str, Any]:
    """The packet attributes of a lock or burn event ({} for none)."""
    return {} if found is None else dict(found.event.attributes)

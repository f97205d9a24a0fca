"""Transfer relay planning, pure: what to carry from one chain to another, and how.

A relayer of the path ``src -> dst`` repeats four steps; this module decides each of
them from plain values and does no I/O (the daemon, :class:`bridge.localnet.LocalNet`,
the tests and the benchmark all call it):

1. :func:`select_packets`: from a committed block of ``src``, the events ``dst`` must
   act on (``bridge.locked`` → ``mint``, ``bridge.burned`` → ``release``,
   ``bridge.expired`` of transfers ``dst`` sent → ``refund``, and ``bridge.minted`` /
   ``bridge.released`` of transfers ``dst`` sent → ``acknowledge``, which lets ``dst``
   prune its sent record), each with its audit path.
2. :func:`pending_query` / :func:`drop_delivered`: one ``bridge/pending`` query on
   ``dst`` says which of them are still to do (a second relayer, or this one after a
   restart, wastes one read instead of a refused transaction). The answer comes over
   RPC and is untrusted: anything but a sublist of the question is refused. Lying can
   only make a relayer skip or repeat work; the destination re-checks every delivery.
3. :func:`heights_needed`: the source heights whose header ``dst``'s light client must
   hold before the proofs can verify (the header planner brings them there).
4. :func:`pack_deliveries`: the ``mint`` / ``release`` / ``refund`` / ``acknowledge``
   calls, as many bundles per transaction as fit under the size limit.

A packet the destination refuses by compliance policy is not a failed call: the
destination records it as expired, and step 1 on the way back selects that
``bridge.expired`` like a timeout's, so the refund needs nothing more.
:func:`select_refusals` reads the refusals from a delivery's receipt, for the
relayer's metrics and logs.

Cost: proofs of one block come from one tree (``Block.prove_events``); sizes are
measured on the canonical encoding the transaction will carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from bridge.errors import BundleTooLarge, MalformedPendingAnswer, TooManyPackets
from bridge.module import DEFAULT_MAX_BUNDLES, MAX_PENDING_QUERY
from chains.encoding import JSONValue, canonical
from chains.types import MAX_TX_BYTES, Block, Event, EventProof
from zk.compliance import RULES

__all__ = [
    "ACTIONS",
    "DEFAULT_TX_BUDGET",
    "MAX_PENDING_QUERY",
    "METHODS",
    "Packet",
    "Refusal",
    "drop_delivered",
    "heights_needed",
    "is_packet_event",
    "pack_deliveries",
    "pending_query",
    "select_packets",
    "select_proven_packets",
    "select_refusals",
]

ACTIONS: Mapping[str, str] = MappingProxyType(
    {
        "locked": "mint",
        "burned": "release",
        "expired": "refund",
        "minted": "acknowledge",
        "released": "acknowledge",
    }
)
"""Event kind on the source -> the destination method that consumes it."""
_BACK = frozenset({"expired", "minted", "released"})
"""Kinds about transfers the destination sent (their ``src_chain`` is the destination)."""
DEFAULT_TX_BUDGET = MAX_TX_BYTES - 2048
"""Bytes of bundles per transaction: the rest is room for the envelope and signature."""
METHODS = ("mint", "release", "refund", "acknowledge")
"""The destination methods, in the order :func:`pack_deliveries` sends them."""


@dataclass(frozen=True, slots=True)
class Packet:
    """A proven event of the source that the destination has to act on."""

    action: str
    """``mint``, ``release``, ``refund`` or ``acknowledge``: the destination method."""
    nonce: int
    """The transfer's nonce on its path; 0 if the event has none that is valid (the
    destination will refuse it and say why)."""
    proof: EventProof
    """The event and its audit path; ``proof.height`` is the source height."""

    @property
    def kind(self) -> str:
        """The event kind: ``locked``, ``burned``, ``expired``, ``minted`` or ``released``."""
        return self.proof.event.type.rpartition(".")[2]


def _nonce(attributes: Mapping[str, JSONValue]) -> int:
    nonce = attributes.get("nonce")
    if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 1:
        return 0
    return nonce


def is_packet_event(event_type: str, *, module: str = "bridge") -> bool:
    """Whether events of this type can be packets (:func:`select_packets` looks at no
    others): a subscriber follows only these for a transfer worker."""
    prefix, _, kind = event_type.partition(".")
    return prefix == module and kind in ACTIONS


def _is_for(event: Event, src: str, dst: str, prefix: str) -> bool:
    """Whether ``event`` of ``src`` is a packet that ``dst`` must act on."""
    kind = event.type[len(prefix) :]
    if kind not in ACTIONS or not event.type.startswith(prefix):
        return False
    a = event.attributes
    if kind in ("minted", "released"):  # these name only the transfer's source
        return a.get("src_chain") == dst
    route = (a.get("src_chain"), a.get("dst_chain"))
    return route == ((dst, src) if kind in _BACK else (src, dst))


def _packet(p: EventProof, prefix: str) -> Packet:
    return Packet(ACTIONS[p.event.type[len(prefix) :]], _nonce(p.event.attributes), p)


def select_packets(block: Block, src: str, dst: str, *, module: str = "bridge") -> list[Packet]:
    """The events of ``block`` (a block of ``src``) that ``dst`` must act on, in block
    order: ``locked``/``burned`` packets of the path ``src -> dst``, and ``expired``,
    ``minted`` or ``released`` records of transfers ``dst`` sent to ``src`` (a refund
    to make, or a delivery to acknowledge). ``module`` is the name of the bridge
    module on ``src`` (the prefix of its events). A block of another chain has none."""
    if block.header.chain_id != src:
        return []
    prefix = module + "."
    wanted = [i for i, ev in enumerate(block.events) if _is_for(ev, src, dst, prefix)]
    if not wanted:
        return []
    return [_packet(p, prefix) for p in block.prove_events(wanted)]


def select_proven_packets(
    proofs: Sequence[EventProof], src: str, dst: str, *, module: str = "bridge"
) -> list[Packet]:
    """As :func:`select_packets`, from events of ``src`` already proven (a verifying
    subscriber's, each with its audit path): no tree is built again."""
    prefix = module + "."
    return [
        _packet(p, prefix)
        for p in proofs
        if p.chain_id == src and _is_for(p.event, src, dst, prefix)
    ]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A transfer the destination refused by compliance policy (``bridge.refused``)."""

    src_chain: str
    """The chain that sent it (and refunds it)."""
    nonce: int
    """Its nonce on the path; 0 if the event has none that is valid."""
    rule: str
    """The rule broken, one of :data:`zk.compliance.RULES`, or ``other`` for a name a
    destination made up (the rule is a metrics label: its values must stay few)."""
    detail: str
    """The destination's one-line reason (untrusted text, at most 200 characters)."""


def select_refusals(events: Sequence[Event], *, module: str = "bridge") -> list[Refusal]:
    """The compliance refusals among ``events`` (a delivery's receipt, or a block of the
    destination), in order. The destination's words are untrusted: they are shortened
    and the rule is kept only if it names a known rule."""
    out: list[Refusal] = []
    for ev in events:
        if ev.type != module + ".refused":
            continue
        a = ev.attributes
        rule = a.get("rule")
        detail = a.get("detail")
        out.append(
            Refusal(
                str(a.get("src_chain"))[:64],
                _nonce(a),
                rule if isinstance(rule, str) and rule in RULES else "other",
                detail[:200] if isinstance(detail, str) else "",
            )
        )
    return out


def pending_query(src: str, packets: Sequence[Packet]) -> dict[str, JSONValue]:
    """The arguments of one ``bridge/pending`` query on the destination about
    ``packets`` (of source ``src``). Packets without a valid nonce are not asked about:
    :func:`drop_delivered` keeps them. More than ``MAX_PENDING_QUERY`` asked packets
    raise :class:`TooManyPackets` (split the batch)."""
    asked: list[JSONValue] = [[p.kind, p.nonce] for p in packets if p.nonce]
    if len(asked) > MAX_PENDING_QUERY:
        raise TooManyPackets(len(asked), MAX_PENDING_QUERY)
    return {"remote_chain": src, "packets": asked}


def drop_delivered(packets: Sequence[Packet], answer: JSONValue) -> list[Packet]:
    """``packets`` minus those the destination's ``answer`` to the
    :func:`pending_query` of ``packets`` says are done, in order. ``answer`` is
    untrusted: it must be a list of ``[kind, nonce]`` pairs that were asked about, else
    :class:`MalformedPendingAnswer`."""
    asked = {(p.kind, p.nonce) for p in packets if p.nonce}
    if not isinstance(answer, list):
        raise MalformedPendingAnswer(f"expected a list, got {type(answer).__name__}")
    if len(answer) > len(asked):
        raise MalformedPendingAnswer(f"{len(answer)} pairs for {len(asked)} packets asked")
    todo: set[tuple[str, int]] = set()
    for i, item in enumerate(answer):
        if not isinstance(item, list) or len(item) != 2:
            raise MalformedPendingAnswer(f"item {i} is not a [kind, nonce] pair")
        kind, nonce = item
        # bool is an int: True would match nonce 1
        if not isinstance(kind, str) or not isinstance(nonce, int) or isinstance(nonce, bool):
            raise MalformedPendingAnswer(f"item {i} is not a [kind, nonce] pair")
        if (kind, nonce) not in asked:
            raise MalformedPendingAnswer(f"item {i} names a packet not asked about")
        todo.add((kind, nonce))
    return [p for p in packets if not p.nonce or (p.kind, p.nonce) in todo]


def heights_needed(packets: Sequence[Packet]) -> list[int]:
    """Sorted distinct source heights whose header the destination's client must hold
    for the packets' proofs to verify."""
    return sorted({p.proof.height for p in packets})


def pack_deliveries(
    packets: Sequence[Packet],
    max_tx_bytes: int = DEFAULT_TX_BUDGET,
    *,
    max_bundles: int = DEFAULT_MAX_BUNDLES,
) -> list[tuple[str, list[JSONValue]]]:
    """``(method, bundles)`` per transaction: all ``mint`` first, then ``release``,
    ``refund`` and ``acknowledge``, each method's packets in the order given, each transaction's
    bundles at most ``max_tx_bytes`` of canonical JSON and ``max_bundles`` in number.

    A call is all or nothing, so a packet without a valid nonce travels alone: its
    refusal cannot take well-formed packets down with it. A single bundle above the
    budget raises :class:`BundleTooLarge` (the budget is wrong: a well-formed bundle is
    a few KiB)."""
    out: list[tuple[str, list[JSONValue]]] = []
    for method in METHODS:
        batch: list[JSONValue] = []
        size = 0
        for p in packets:
            if p.action != method:
                continue
            wire = p.proof.to_json()
            n = len(canonical(wire)) + 1  # and a comma
            if n > max_tx_bytes:
                raise BundleTooLarge(p.nonce, n, max_tx_bytes)
            if not p.nonce:
                if batch:
                    out.append((method, batch))
                    batch, size = [], 0
                out.append((method, [wire]))
                continue
            if batch and (size + n > max_tx_bytes or len(batch) >= max_bundles):
                out.append((method, batch))
                batch, size = [], 0
            batch.append(wire)
            size += n
        if batch:
            out.append((method, batch))
    return out

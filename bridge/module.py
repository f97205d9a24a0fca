"""The ``bridge`` chain module: lock / mint / burn / release / refund over proven events.

Trust: a packet is acted on only when its event is proven (RFC 6962 audit path) against
a consensus state that this chain's own light client of the source already verified, the
event was emitted by the registered remote bridge module (the chain prefixes every event
with its emitting module's name, so no other module can forge one), and the packet names
this chain and the path it was proven on. Headers travel separately, as ``lightclient``
``update_client`` transactions; a proof bundle only names the height.

Calls (``args`` are hostile; every refusal is a typed :mod:`bridge.errors` error or a
kernel light-client error, and rolls the whole call back):

* governance only (``BlockInfo.authority``): ``register_path``, ``update_path``,
  ``set_limits``, ``pause``, ``unpause``, ``cancel_queued(remote_chain, nonce)``,
  ``drop_queued(remote_chain, nonce)``, ``resend(remote_chain, nonce)`` (the event of
  a transfer still in flight, again, for a replacement client to prove). No
  cross-chain message can reach them: a proven packet is only ever read as a transfer.
* anyone: ``lock(denom, amount, dest_chain, recipient[, timeout_height][, travel_rule])``,
  ``burn(denom, amount, recipient[, timeout_height])``, and the relayer's
  ``mint(bundles)``, ``release(bundles)``, ``refund(bundles)``,
  ``acknowledge(bundles)``. A bundle is an
  ``EventProof`` (``chains.types``) in wire form; a call carries up to ``max_bundles`` and
  is all-or-nothing, so a relayer that races another re-queries ``received`` and resends
  the rest.

Queries (read-only, same hostile-args rule) include ``pending(remote_chain, packets)``:
given up to ``MAX_PENDING_QUERY`` ``[kind, nonce]`` pairs of ``remote_chain``'s events,
it answers the sublist still to do here, so a relayer checks a whole batch in one read;
and ``in_flight(remote_chain[, after][, limit])``: a page of the nonces of transfers to
``remote_chain`` whose sent record is still kept, so a new relayer finds where its work
begins without reading the chain from genesis.

Rules, in the order they apply to a received packet: path registered and not paused →
event type ``<remote module>.<locked|burned|expired>`` → proof verifies under a stored,
non-frozen, unexpired consensus state (and the bundle's tree size is the header's event
count) → packet well-formed, from the proof's chain, for this chain → (path, nonce) never
consumed, and **recorded before any balance moves** → past the timeout: record
``expired`` and emit ``bridge.expired`` instead of delivering → this chain's compliance
policy (:mod:`zk.registry`): a refusal is recorded as ``expired`` with its rule, emits
``bridge.refused`` then ``bridge.expired`` (the source refunds it as a timeout) and moves
nothing → outflow cap of the window → large amounts wait ``delay`` heights in the queue
(executed by ``end_block``; a pause or a frozen light client of the path holds them) →
mint or release.

A queued transfer that can no longer execute (governance lowered the cap below it, or
the path's light client froze) would otherwise wait forever, its escrow stranded on the
source. Governance ends it with ``cancel_queued``: it leaves the queue, its record moves
``queued → expired`` and ``bridge.expired`` is emitted with the packet, exactly as a
timeout does, so the source's ``refund`` returns the escrow on proof. Cancel works while
paused: it moves no funds here, and the refund still obeys the source's pause and cap.
A refund larger than the source's current cap passes alone in an otherwise empty window
(:func:`bridge.transfer.compute_refund_flow`).

**Acknowledgements** (IBC's model): a sent record is kept only while its transfer can
still end either way. The destination's ``minted`` / ``released`` event, proven back to
the source (``acknowledge``: the same proof rules as a delivery, and the event must name
this chain as ``src_chain`` and match the recorded packet's kind, recipient and amount),
deletes the record; a refund deletes it too. A pruned nonce is below ``bridge/seq``, so a
replayed refund, acknowledgement or ``resend`` of it is refused as
:class:`AlreadyProcessed` ("settled"), and a nonce never sent as :class:`UnknownTransfer`.
So the source's state holds the transfers in flight, not its whole history (that lives
in the events). The destination's ``bridge/recv`` record stays: it is what refuses a
second delivery of the nonce.

State keys::

    bridge/paused                        -> true while the whole bridge is paused
    bridge/path/<remote>                 -> path config (client, remote module, limits, paused)
    bridge/limit/<remote>/<denom>        -> limits overriding the path's default for a denom
    bridge/seq/<remote>                  -> next outgoing nonce (from 1)
    bridge/sent/<remote>/<nonce>         -> {"packet", "kind": escrow|burn, "status": sent}
                                            (deleted once acknowledged or refunded)
    bridge/recv/<remote>/<nonce>         -> queued | delivered | expired
    bridge/delayed/<remote>/<nonce>      -> the packet of a queued transfer (for cancel)
    bridge/wrapped/<denom>               -> {"path", "base"}: this bridge minted ``denom``
    bridge/flow/<remote>/<denom>         -> {"size", "buckets": [[index, amount out], ...]}
    bridge/queue                         -> large transfers waiting, oldest first
    bridge/refused/<remote>/<nonce>      -> {"src_chain", "nonce", "rule", "detail"}: refused here

A lock or burn first passes this chain's own compliance policy on the path (refused with
:class:`zk.compliance.ComplianceRefused`, nothing changes); ``travel_rule`` is the sealed
travel-rule data, whose SHA-256 the packet carries and which a ``bridge.travel_rule``
event publishes for the destination's compliance officer.

Escrow of the path to R is the module account ``module_address("bridge", "escrow", R)``:
one escrow per path, so I1 holds per path and a broken path cannot drain another's funds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from hashlib import sha256
from typing import Any, ClassVar

from bridge.errors import (
    AlreadyProcessed,
    BridgePaused,
    ClientChainMismatch,
    DenomCollision,
    DenomTooLong,
    EscrowMismatch,
    EscrowShortfall,
    ForeignEvent,
    MalformedBundle,
    MalformedPacket,
    NotQueued,
    NotWrapped,
    PacketMismatch,
    PathExists,
    QueueFull,
    RateLimited,
    TimeoutInPast,
    UnknownDenom,
    UnknownPath,
    UnknownTransfer,
    WrongDestination,
    WrongPath,
)
from bridge.proofs import RootVerifier
from bridge.transfer import (
    DEFAULT_LIMITS,
    MAX_DENOM,
    Limits,
    Packet,
    Status,
    compute_flow,
    compute_refund_flow,
    compute_returning_denom,
    compute_wrapped_denom,
    is_chain_id,
    next_status,
)
from chains.bank import apply_burn, apply_mint, apply_transfer, get_balance, get_supply
from chains.crypto import module_address
from chains.encoding import JSONValue, from_hex
from chains.errors import (
    ClientExpired,
    ClientFrozen,
    EncodingError,
    InvalidArgument,
    InvalidProof,
    UnknownMethod,
)
from chains.lightclient import get_client_state, get_consensus_state, verify_event
from chains.module import (
    MAX_AMOUNT,
    BlockInfo,
    TxContext,
    arg_address,
    arg_amount,
    arg_denom,
    arg_int,
    arg_str,
    is_module_name,
)
from chains.state import State
from chains.types import Event, EventProof
from zk.compliance import ComplianceRefused
from zk.registry import process_transfer

__all__ = ["BridgeModule", "PathConfig", "escrow_address", "get_path"]

DEFAULT_MAX_BUNDLES = 512
DEFAULT_QUEUE_CAPACITY = 256
"""Large transfers that may wait in the delay queue, per path."""
DEFAULT_TIMEOUT = 10_000
"""Heights past the destination's last known height, when a sender gives no timeout."""
MAX_PENDING_QUERY = 4096
"""Packets one ``pending`` query may ask about: bounds the work of one RPC read."""
MAX_IN_FLIGHT_PAGE = 1000
"""Sent records one ``in_flight`` query reads (and answers) at most: one page."""
_PENDING_KINDS = frozenset({"locked", "burned", "expired", "minted", "released"})
_ACK_KINDS = {"escrow": "minted", "burn": "released"}
"""A sent record's kind -> the destination event that acknowledges it."""


@dataclass(frozen=True, slots=True)
class PathConfig:
    """A registered counterparty."""

    remote_chain: str
    """The counterparty's chain id (also the path's name)."""
    client_id: str
    """This chain's light client of the counterparty."""
    remote_module: str
    """Name of the bridge module on the counterparty: only its events are accepted."""
    limits: Limits
    """Default outflow limits for every denom on this path."""
    paused: bool
    """True while governance has paused this path."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "remote_chain": self.remote_chain,
            "client_id": self.client_id,
            "remote_module": self.remote_module,
            "limits": self.limits.to_json(),
            "paused": self.paused,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PathConfig:
        return cls(
            d["remote_chain"],
            d["client_id"],
            d["remote_module"],
            Limits.from_json(d["limits"]),
            d["paused"],
        )


def escrow_address(remote_chain: str) -> str:
    """The module account holding what was locked towards ``remote_chain``."""
    return module_address("bridge", "escrow", remote_chain)


def get_path(state: State, remote_chain: str) -> PathConfig:
    raw = state.get(f"bridge/path/{remote_chain}")
    if raw is None:
        raise UnknownPath(remote_chain)
    return PathConfig.from_json(raw)


def get_limits(state: State, path: PathConfig, denom: str) -> Limits:
    raw = state.get(f"bridge/limit/{path.remote_chain}/{denom}")
    return path.limits if raw is None else Limits.from_json(raw)


def _arg_limits(args: Mapping[str, Any], base: Limits) -> Limits:
    """Limits from optional args, each defaulting to ``base``."""
    vals = {}
    for name, lo in (("cap", 1), ("window", 1), ("delay_threshold", 0), ("delay", 0)):
        vals[name] = arg_int(args, name, lo, MAX_AMOUNT) if name in args else getattr(base, name)
    limits = Limits(**vals)
    if limits.delay_threshold > limits.cap:
        # a queued amount above the cap could never execute: refuse the config instead
        raise InvalidArgument("delay_threshold", "must not exceed cap")
    return limits


def _move(state: State, recv_key: str, target: Status) -> None:
    """Move a received transfer's record to ``target`` through the one transition table
    (:func:`bridge.transfer.next_status`); no record yet means the packet was only sent.
    Every status write of a received transfer goes through here."""
    current = state.get(recv_key)
    status = Status.SENT if current is None else Status(current)
    state.set(recv_key, next_status(status, target).value)


MAX_TRAVEL_RULE = 2048
"""Bytes of sealed travel-rule data a lock may carry (a string argument holds 4,096 hex
digits)."""


def _arg_travel_rule(args: Mapping[str, Any]) -> bytes | None:
    v = args.get("travel_rule")
    if v is None:
        return None
    if not isinstance(v, str) or not 0 < len(v) <= 2 * MAX_TRAVEL_RULE:
        raise InvalidArgument("travel_rule", f"expected 1..{MAX_TRAVEL_RULE} bytes of hex")
    try:
        return from_hex(v, "travel_rule")
    except EncodingError:
        raise InvalidArgument("travel_rule", "expected lowercase hex") from None


def _get_sent(state: State, remote: str, nonce: int) -> dict[str, Any]:
    """The record of transfer ``nonce`` sent to ``remote`` and still in flight; one pruned
    (acknowledged or refunded) is :class:`AlreadyProcessed`, one never sent
    :class:`UnknownTransfer`."""
    sent = state.get(f"bridge/sent/{remote}/{nonce}")
    if sent is None:
        if nonce < state.get(f"bridge/seq/{remote}", 1):
            raise AlreadyProcessed(remote, nonce, "settled")
        raise UnknownTransfer(remote, nonce)
    if sent["status"] != Status.SENT.value:  # a record from before pruning
        raise AlreadyProcessed(remote, nonce, sent["status"])
    return dict(sent)


def _arg_chain_id(args: Mapping[str, Any], name: str) -> str:
    v = args.get(name)
    if not is_chain_id(v):
        raise InvalidArgument(name, "expected a chain id: a letter then [A-Za-z0-9._-], max 64")
    return v


class _Verifier:
    """Proof checks for one call.

    The first bundle at a (client, height) goes through the kernel's ``verify_event``
    (client not frozen, not expired, consensus state stored, non-zero root, audit path).
    Nothing in a bridge call can change a light client, so later bundles at that height
    only need their audit path against the same root, which a :class:`RootVerifier`
    checks while sharing the upper nodes the bundles have in common.
    """

    __slots__ = ("_roots", "now", "state")

    def __init__(self, state: State, now: int) -> None:
        self.state = state
        self.now = now
        self._roots: dict[tuple[str, int], RootVerifier] = {}

    def verify(self, client_id: str, proof: EventProof) -> None:
        key = (client_id, proof.height)
        rv = self._roots.get(key)
        if rv is None:
            cs = get_consensus_state(self.state, client_id, proof.height)
            self._check_size(proof, cs.event_count)
            verify_event(
                self.state, client_id, proof.height, proof.event, proof.index, proof.proof, self.now
            )
            rv = self._roots[key] = RootVerifier(cs.event_root, cs.event_count)
        else:
            self._check_size(proof, rv.tree_size)
        if not rv.verify(proof.event.leaf(), proof.index, proof.proof):
            raise InvalidProof(
                f"event {proof.index} does not verify against root at height {proof.height}"
            )

    @staticmethod
    def _check_size(proof: EventProof, event_count: int) -> None:
        if proof.tree_size != event_count:
            raise InvalidProof(
                f"tree size {proof.tree_size} is not the {event_count} events of height "
                f"{proof.height}"
            )


class BridgeModule:
    """The lock-mint bridge (see the module docstring)."""

    name = "bridge"

    def __init__(
        self,
        *,
        max_bundles: int = DEFAULT_MAX_BUNDLES,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        default_timeout: int = DEFAULT_TIMEOUT,
    ) -> None:
        self.max_bundles = max_bundles
        self.queue_capacity = queue_capacity
        self.default_timeout = default_timeout
        self._escrows: dict[str, str] = {}

    def _escrow(self, remote: str) -> str:
        addr = self._escrows.get(remote)
        if addr is None:
            addr = self._escrows[remote] = escrow_address(remote)
        return addr

    # --- module protocol ------------------------------------------------------------
    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        # paths need light clients, which only exist after genesis: governance adds them
        unknown = set(genesis) - {"paused"}
        if unknown:
            raise InvalidArgument("bridge genesis", f"unknown keys {sorted(unknown)}")
        if genesis.get("paused"):
            state.set("bridge/paused", True)

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        handler = self._METHODS.get(method)
        if handler is None:
            raise UnknownMethod(self.name, method)
        handler(self, ctx, args)

    # --- governance -------------------------------------------------------------------
    def _check_client(self, state: State, client_id: str, remote: str) -> None:
        tracked = get_client_state(state, client_id).chain_id
        if tracked != remote:
            raise ClientChainMismatch(client_id, remote, tracked)

    def register_path(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("register a bridge path")
        remote = _arg_chain_id(args, "remote_chain")
        if remote == ctx.block.chain_id:
            raise InvalidArgument("remote_chain", "a chain cannot bridge to itself")
        if f"bridge/path/{remote}" in ctx.state:
            raise PathExists(remote)
        client_id = arg_str(args, "client_id", 64)
        self._check_client(ctx.state, client_id, remote)
        module = args.get("remote_module", "bridge")
        if not is_module_name(module):
            raise InvalidArgument("remote_module", "expected a module name: [a-z][a-z0-9_]*")
        path = PathConfig(remote, client_id, module, _arg_limits(args, DEFAULT_LIMITS), False)
        ctx.state.set(f"bridge/path/{remote}", path.to_json())
        ctx.emit("path_registered", path.to_json())

    def update_path(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("change a bridge path")
        path = get_path(ctx.state, _arg_chain_id(args, "remote_chain"))
        if "client_id" in args:
            client_id = arg_str(args, "client_id", 64)
            self._check_client(ctx.state, client_id, path.remote_chain)
            path = replace(path, client_id=client_id)
        if "remote_module" in args:
            module = args["remote_module"]
            if not is_module_name(module):
                raise InvalidArgument("remote_module", "expected a module name: [a-z][a-z0-9_]*")
            path = replace(path, remote_module=module)
        path = replace(path, limits=_arg_limits(args, path.limits))
        ctx.state.set(f"bridge/path/{path.remote_chain}", path.to_json())
        ctx.emit("path_updated", path.to_json())

    def set_limits(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        """Limits for one denom of a path (``denom`` given) or the path's default."""
        ctx.require_authority("change bridge limits")
        path = get_path(ctx.state, _arg_chain_id(args, "remote_chain"))
        if "denom" not in args:
            path = replace(path, limits=_arg_limits(args, path.limits))
            ctx.state.set(f"bridge/path/{path.remote_chain}", path.to_json())
            ctx.emit("limits_set", {"remote_chain": path.remote_chain, "denom": "*"})
            return
        denom = arg_denom(args)
        limits = _arg_limits(args, get_limits(ctx.state, path, denom))
        ctx.state.set(f"bridge/limit/{path.remote_chain}/{denom}", limits.to_json())
        ctx.emit("limits_set", {"remote_chain": path.remote_chain, "denom": denom})

    def _set_paused(self, ctx: TxContext, args: Mapping[str, Any], paused: bool) -> None:
        ctx.require_authority("pause or unpause the bridge")
        if "remote_chain" in args:
            path = get_path(ctx.state, _arg_chain_id(args, "remote_chain"))
            ctx.state.set(
                f"bridge/path/{path.remote_chain}", replace(path, paused=paused).to_json()
            )
            target = path.remote_chain
        else:
            if paused:
                ctx.state.set("bridge/paused", True)
            else:
                ctx.state.delete("bridge/paused")
            target = "*"
        ctx.emit("paused" if paused else "unpaused", {"remote_chain": target})

    def pause(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        self._set_paused(ctx, args, True)

    def unpause(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        self._set_paused(ctx, args, False)

    def cancel_queued(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        """End a transfer waiting in the delay queue as an expiry (module docstring).

        Only a transfer still queued: one delivered, expired or never received is refused
        with :class:`NotQueued`. Record, queue and packet change together, so neither
        ``end_block`` nor a later ``mint`` / ``release`` can deliver it afterwards.
        """
        ctx.require_authority("cancel a queued bridge transfer")
        state = ctx.state
        remote = get_path(state, _arg_chain_id(args, "remote_chain")).remote_chain
        nonce = arg_int(args, "nonce", 1, MAX_AMOUNT)
        recv_key = f"bridge/recv/{remote}/{nonce}"
        packet_key = f"bridge/delayed/{remote}/{nonce}"
        status = state.get(recv_key)
        packet = state.get(packet_key)
        queue: list[Any] = list(state.get("bridge/queue", ()))
        keep = [item for item in queue if (item[1], item[2]) != (remote, nonce)]
        if status != Status.QUEUED.value or packet is None or len(keep) != len(queue) - 1:
            raise NotQueued(remote, nonce, status)
        _move(state, recv_key, Status.EXPIRED)
        state.delete(packet_key)
        if keep:
            state.set("bridge/queue", keep)
        else:
            state.delete("bridge/queue")
        ctx.emit("expired", packet)  # the packet as the timeout path emits it

    def drop_queued(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        """Forget a queued transfer as if it had never been received (governance).

        For a packet proven under a client that then froze: it may be forged, and if a
        real transfer has the same nonce, cancelling it (an expiry of the *forged*
        packet) would strand the real one: not deliverable (nonce used), not refundable
        (the expiry does not match what the source sent). Dropping frees the nonce: the
        real packet is delivered later under a replacement client (the source may
        ``resend`` its event). Safe because a queued transfer has moved no funds here.
        """
        ctx.require_authority("drop a queued bridge transfer")
        state = ctx.state
        remote = get_path(state, _arg_chain_id(args, "remote_chain")).remote_chain
        nonce = arg_int(args, "nonce", 1, MAX_AMOUNT)
        recv_key = f"bridge/recv/{remote}/{nonce}"
        status = state.get(recv_key)
        queue: list[Any] = list(state.get("bridge/queue", ()))
        keep = [item for item in queue if (item[1], item[2]) != (remote, nonce)]
        if status != Status.QUEUED.value or len(keep) != len(queue) - 1:
            raise NotQueued(remote, nonce, status)
        next_status(Status.QUEUED, Status.SENT)  # back to only sent: no record here
        state.delete(recv_key)
        state.delete(f"bridge/delayed/{remote}/{nonce}")
        if keep:
            state.set("bridge/queue", keep)
        else:
            state.delete("bridge/queue")
        ctx.emit("dropped", {"src_chain": remote, "nonce": nonce})

    def resend(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        """Emit again the event of a transfer sent to ``remote_chain`` and not refunded
        (governance). An event is provable only at its own height, so a destination whose
        light client was replaced by one trusting a later header could never verify the
        original: without this, such a transfer could be neither delivered nor refunded.
        The packet is the recorded one, byte for byte; the destination consumes each
        (path, nonce) once, so a resent packet is delivered at most once. Governance
        only: the two copies of one packet in a relayer's batch make that batch fail
        (all or nothing), so anyone resending could grief relayers."""
        ctx.require_authority("resend a bridge packet")
        state = ctx.state
        path = get_path(state, _arg_chain_id(args, "remote_chain"))
        self._check_open(state, path)
        nonce = arg_int(args, "nonce", 1, MAX_AMOUNT)
        sent = _get_sent(state, path.remote_chain, nonce)
        ctx.emit("locked" if sent["kind"] == "escrow" else "burned", sent["packet"])

    @staticmethod
    def _check_open(state: State, path: PathConfig) -> None:
        if state.get("bridge/paused"):
            raise BridgePaused("*")
        if path.paused:
            raise BridgePaused(path.remote_chain)

    # --- sending ----------------------------------------------------------------------
    def lock(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        """Send ``denom`` to ``dest_chain``: escrow it, or burn it if it is a wrapped
        denom going home (so it is never wrapped twice)."""
        self._send(ctx, args, _arg_chain_id(args, "dest_chain"), burn_only=False)

    def burn(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        """Send a wrapped denom home to its origin chain."""
        denom = arg_denom(args)
        origin = ctx.state.get(f"bridge/wrapped/{denom}")
        if origin is None:
            raise NotWrapped(denom)
        self._send(ctx, args, origin["path"], burn_only=True)

    def _send(self, ctx: TxContext, args: Mapping[str, Any], dest: str, burn_only: bool) -> None:
        state, own = ctx.state, ctx.block.chain_id
        path = get_path(state, dest)
        self._check_open(state, path)
        denom = arg_denom(args)
        amount = arg_amount(args)
        recipient = arg_address(args, "recipient")
        client = get_client_state(state, path.client_id)
        if client.frozen_height:
            # no expiry could ever be proven back: a transfer now could never be refunded
            raise ClientFrozen(path.client_id, client.frozen_height)
        known = client.latest_height
        latest = get_consensus_state(state, path.client_id, known)
        if latest.time + client.trusting_period <= ctx.block.time:
            raise ClientExpired(path.client_id)  # the same: it can never verify again
        if "timeout_height" in args:
            timeout = arg_int(args, "timeout_height", 1, MAX_AMOUNT)
        else:
            timeout = known + self.default_timeout
        if timeout <= known:
            raise TimeoutInPast(timeout, known)
        if get_supply(state, denom) == 0:
            raise UnknownDenom(denom)  # Qubit: nothing to escrow, nothing may be emitted
        cap = get_limits(state, path, denom).cap
        if amount > cap:
            # a refund is an outflow here: above the cap it could never pass in any window
            raise RateLimited(dest, denom, 0, amount, cap)
        origin = state.get(f"bridge/wrapped/{denom}")
        kind = "burn" if origin is not None and origin["path"] == dest else "escrow"
        if kind == "escrow":
            if burn_only:
                raise NotWrapped(denom)
            wrapped = compute_wrapped_denom(own, denom)
            if len(wrapped) > MAX_DENOM:
                raise DenomTooLong(wrapped, MAX_DENOM)
        travel = _arg_travel_rule(args)
        travel_hash = None if travel is None else sha256(travel).digest()
        # this chain's own policy on the path: refused here, nothing is locked
        process_transfer(
            state,
            ctx.block,
            dest,
            outgoing=True,
            sender=ctx.sender,
            recipient=recipient,
            denom=denom,
            amount=amount,
            travel_rule_hash=travel_hash,
        )
        # the nonce and the commitment are recorded before any balance moves
        seq_key = f"bridge/seq/{dest}"
        nonce: int = state.get(seq_key, 1)
        state.set(seq_key, nonce + 1)
        packet = Packet(
            own, dest, nonce, ctx.sender, recipient, denom, amount, timeout, travel_hash
        )
        attrs = packet.to_json()
        state.set(f"bridge/sent/{dest}/{nonce}", {"packet": attrs, "kind": kind, "status": "sent"})
        if kind == "escrow":
            escrow = self._escrow(dest)
            before = get_balance(state, escrow, denom)
            apply_transfer(state, ctx.sender, escrow, denom, amount)
            got = get_balance(state, escrow, denom) - before
            if got != amount:  # Qubit: an event only for funds really escrowed
                raise EscrowMismatch(denom, amount, got)
            ctx.emit("locked", attrs)
        else:
            before = get_supply(state, denom)
            apply_burn(state, ctx.sender, denom, amount)
            got = before - get_supply(state, denom)
            if got != amount:
                raise EscrowMismatch(denom, amount, got)
            ctx.emit("burned", attrs)
        if travel is not None:
            # for the destination's compliance officer: provable, and only they can read it
            ctx.emit("travel_rule", {"dst_chain": dest, "nonce": nonce, "data": travel.hex()})

    # --- receiving --------------------------------------------------------------------
    def mint(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        self._receive(ctx, args, "locked")

    def release(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        self._receive(ctx, args, "burned")

    def refund(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        self._receive(ctx, args, "expired")

    def acknowledge(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        self._receive(ctx, args, "delivered")

    def _receive(self, ctx: TxContext, args: Mapping[str, Any], event_name: str) -> None:
        bundles = args.get("bundles")
        if not isinstance(bundles, list) or not 0 < len(bundles) <= self.max_bundles:
            raise InvalidArgument("bundles", f"expected a list of 1..{self.max_bundles} proofs")
        state = ctx.state
        verifier = _Verifier(state, ctx.block.time)
        paths: dict[str, PathConfig] = {}
        for i, raw in enumerate(bundles):
            try:
                proof = EventProof.from_json(raw)
            except EncodingError as exc:
                raise MalformedBundle(i, str(exc)) from None
            remote = proof.chain_id
            path = paths.get(remote)
            if path is None:
                path = paths[remote] = get_path(state, remote)
                self._check_open(state, path)
            prefix = f"{path.remote_module}."
            if event_name == "delivered":  # an acknowledgement: minted or released
                kind = proof.event.type[len(prefix) :]
                if not proof.event.type.startswith(prefix) or kind not in _ACK_KINDS.values():
                    raise ForeignEvent(f"{prefix}minted|released", proof.event.type)
                verifier.verify(path.client_id, proof)
                self._acknowledge(ctx, path, kind, proof.event.attributes)
                continue
            expected = prefix + event_name
            if proof.event.type != expected:
                raise ForeignEvent(expected, proof.event.type)
            verifier.verify(path.client_id, proof)
            packet = Packet.from_attributes(proof.event.attributes)
            if event_name == "expired":
                self._refund(ctx, path, packet)
            else:
                self._deliver(ctx, path, packet, event_name)

    def _deliver(self, ctx: TxContext, path: PathConfig, packet: Packet, event_name: str) -> None:
        state, block, remote = ctx.state, ctx.block, path.remote_chain
        if packet.src_chain != remote:
            raise WrongPath(remote, packet.src_chain)
        if packet.dst_chain != block.chain_id:
            raise WrongDestination(block.chain_id, packet.dst_chain)
        recv_key = f"bridge/recv/{remote}/{packet.nonce}"
        status = state.get(recv_key)
        if status is not None:
            raise AlreadyProcessed(remote, packet.nonce, status)
        if block.height >= packet.timeout_height:
            _move(state, recv_key, Status.EXPIRED)
            ctx.emit("expired", packet.to_json())
            return
        amount = packet.amount
        if event_name == "locked":
            action = "mint"
            denom = compute_wrapped_denom(remote, packet.denom)
            if len(denom) > MAX_DENOM:
                raise MalformedPacket("denom", f"wrapped name longer than {MAX_DENOM}")
        else:
            action = "release"
            base = compute_returning_denom(block.chain_id, packet.denom)
            if base is None:
                raise MalformedPacket("denom", f"{packet.denom!r} did not originate here")
            denom = base
        try:
            process_transfer(
                state,
                block,
                remote,
                outgoing=False,
                sender=packet.sender,
                recipient=packet.recipient,
                denom=denom,
                amount=amount,
                travel_rule_hash=packet.travel_rule,
            )
        except ComplianceRefused as exc:
            # refused here for good: recorded as an expiry, which the source proves and
            # refunds exactly as a timeout; the batch's other packets are still delivered
            _move(state, recv_key, Status.EXPIRED)
            refusal = {"src_chain": remote, "nonce": packet.nonce, "rule": exc.rule}
            state.set(f"bridge/refused/{remote}/{packet.nonce}", {**refusal, "detail": exc.detail})
            ctx.emit("refused", {**refusal, "detail": exc.detail})
            ctx.emit("expired", packet.to_json())
            return
        if action == "mint":
            wrapped_key = f"bridge/wrapped/{denom}"
            if wrapped_key not in state:
                if get_supply(state, denom):
                    raise DenomCollision(denom)
                state.set(wrapped_key, {"path": remote, "base": packet.denom})
            if get_supply(state, denom) + amount > MAX_AMOUNT:
                raise MalformedPacket("amount", f"supply of {denom} would exceed {MAX_AMOUNT}")
        else:
            have = get_balance(state, self._escrow(remote), denom)
            if have < amount:
                raise EscrowShortfall(remote, denom, have, amount)
        limits = get_limits(state, path, denom)
        if limits.is_delayed(amount):
            if amount > limits.cap:
                raise RateLimited(remote, denom, 0, amount, limits.cap)
            queue: list[Any] = list(state.get("bridge/queue", ()))
            # per path: a path that fills its share cannot starve the others
            if sum(1 for item in queue if item[1] == remote) >= self.queue_capacity:
                raise QueueFull(remote, self.queue_capacity)
            _move(state, recv_key, Status.QUEUED)
            # kept so that governance can turn it into a provable expiry (cancel_queued)
            state.set(f"bridge/delayed/{remote}/{packet.nonce}", packet.to_json())
            ready = block.height + limits.delay
            queue.append([ready, remote, packet.nonce, action, packet.recipient, denom, amount])
            state.set("bridge/queue", queue)
            ctx.emit(
                "queued",
                {
                    "src_chain": remote,
                    "nonce": packet.nonce,
                    "ready_height": ready,
                    "denom": denom,
                    "amount": amount,
                },
            )
            return
        flow_key = f"bridge/flow/{remote}/{denom}"
        flow = compute_flow(
            state.get(flow_key), block.height, limits, amount, remote_chain=remote, denom=denom
        )
        _move(state, recv_key, Status.DELIVERED)  # before any balance moves
        state.set(flow_key, flow)
        self._pay(state, remote, action, packet.recipient, denom, amount)
        ctx.emit(
            "minted" if action == "mint" else "released",
            {
                "src_chain": remote,
                "nonce": packet.nonce,
                "recipient": packet.recipient,
                "denom": denom,
                "amount": amount,
            },
        )

    def _pay(
        self, state: State, remote: str, action: str, recipient: str, denom: str, amount: int
    ) -> None:
        if action == "mint":
            apply_mint(state, recipient, denom, amount)
        else:
            apply_transfer(state, self._escrow(remote), recipient, denom, amount)

    def _refund(self, ctx: TxContext, path: PathConfig, packet: Packet) -> None:
        state, own, remote = ctx.state, ctx.block.chain_id, path.remote_chain
        if packet.src_chain != own:
            raise WrongDestination(own, packet.src_chain)
        if packet.dst_chain != remote:
            raise WrongPath(remote, packet.dst_chain)
        sent_key = f"bridge/sent/{remote}/{packet.nonce}"
        sent = _get_sent(state, remote, packet.nonce)
        if sent["packet"] != packet.to_json():
            raise PacketMismatch(remote, packet.nonce)
        denom, amount = packet.denom, packet.amount
        flow_key = f"bridge/flow/{remote}/{denom}"
        flow = compute_refund_flow(
            state.get(flow_key),
            ctx.block.height,
            get_limits(state, path, denom),
            amount,
            remote_chain=remote,
            denom=denom,
        )
        # the remote proved the expiry: sent -> expired -> refunded (final: the record is
        # pruned), before funds move
        next_status(next_status(Status(sent["status"]), Status.EXPIRED), Status.REFUNDED)
        state.delete(sent_key)
        state.set(flow_key, flow)
        if sent["kind"] == "escrow":
            escrow = self._escrow(remote)
            have = get_balance(state, escrow, denom)
            if have < amount:
                raise EscrowShortfall(remote, denom, have, amount)
            apply_transfer(state, escrow, packet.sender, denom, amount)
        else:
            apply_mint(state, packet.sender, denom, amount)
        ctx.emit(
            "refunded",
            {
                "dst_chain": remote,
                "nonce": packet.nonce,
                "sender": packet.sender,
                "denom": denom,
                "amount": amount,
            },
        )

    def _acknowledge(
        self, ctx: TxContext, path: PathConfig, kind: str, attrs: Mapping[str, Any]
    ) -> None:
        """The destination proved it delivered transfer ``nonce``: the record goes."""
        own, remote = ctx.block.chain_id, path.remote_chain
        if attrs.get("src_chain") != own:
            raise WrongDestination(own, str(attrs.get("src_chain"))[:64])
        nonce = attrs.get("nonce")
        if not isinstance(nonce, int) or isinstance(nonce, bool) or not 1 <= nonce <= MAX_AMOUNT:
            raise MalformedPacket("nonce", f"expected an integer in [1, {MAX_AMOUNT}]")
        sent = _get_sent(ctx.state, remote, nonce)
        packet = sent["packet"]
        if (
            kind != _ACK_KINDS[sent["kind"]]
            or attrs.get("recipient") != packet["recipient"]
            or attrs.get("amount") != packet["amount"]
        ):
            raise PacketMismatch(remote, nonce)
        next_status(Status(sent["status"]), Status.DELIVERED)  # final: the record is pruned
        ctx.state.delete(f"bridge/sent/{remote}/{nonce}")
        ctx.emit("acknowledged", {"dst_chain": remote, "nonce": nonce})

    # --- the delay queue ---------------------------------------------------------------
    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        queue = state.get("bridge/queue")
        if not queue or state.get("bridge/paused"):
            return []
        keep: list[Any] = []
        events: list[Event] = []
        for item in queue:
            ready, remote, nonce, action, recipient, denom, amount = item
            path = get_path(state, remote)
            # a frozen client means the remote equivocated: what it proved may be forged,
            # and the delay exists for exactly this; the item waits for governance
            frozen = get_client_state(state, path.client_id).frozen_height
            if ready > block.height or path.paused or frozen:
                keep.append(item)
                continue
            flow_key = f"bridge/flow/{remote}/{denom}"
            try:
                flow = compute_flow(
                    state.get(flow_key), block.height, get_limits(state, path, denom), amount
                )
            except RateLimited:
                keep.append(item)  # waits for a window with room
                continue
            # end_block has no rollback: check everything before the first write
            if action == "release":
                if get_balance(state, self._escrow(remote), denom) < amount:
                    keep.append(item)
                    continue
            elif get_supply(state, denom) + amount > MAX_AMOUNT:
                keep.append(item)
                continue
            _move(state, f"bridge/recv/{remote}/{nonce}", Status.DELIVERED)
            state.delete(f"bridge/delayed/{remote}/{nonce}")
            state.set(flow_key, flow)
            self._pay(state, remote, action, recipient, denom, amount)
            events.append(
                Event(
                    "bridge.minted" if action == "mint" else "bridge.released",
                    {
                        "src_chain": remote,
                        "nonce": nonce,
                        "recipient": recipient,
                        "denom": denom,
                        "amount": amount,
                    },
                )
            )
        if len(keep) != len(queue):
            if keep:
                state.set("bridge/queue", keep)
            else:
                state.delete("bridge/queue")
        return events

    # --- queries ----------------------------------------------------------------------
    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        # a copy: an in-process caller must never hold (and mutate) the state's own objects
        return copy.deepcopy(self._query(state, path, args))

    def _query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        if path == "paths":
            return [v for _, v in state.items("bridge/path/")]
        if path == "paused":
            return bool(state.get("bridge/paused"))
        if path == "queue":
            return list(state.get("bridge/queue", ()))
        if path == "wrapped":
            return state.get(f"bridge/wrapped/{arg_denom(args)}")
        remote = _arg_chain_id(args, "remote_chain")
        if path == "path":
            return get_path(state, remote).to_json()
        if path == "escrow_address":
            return escrow_address(remote)
        if path == "next_nonce":
            return state.get(f"bridge/seq/{remote}", 1)
        if path == "limits":
            return get_limits(state, get_path(state, remote), arg_denom(args)).to_json()
        if path == "refusal":
            return state.get(f"bridge/refused/{remote}/{arg_int(args, 'nonce', 1)}")
        if path in ("sent", "received"):
            nonce = arg_int(args, "nonce", 1)
            key = "sent" if path == "sent" else "recv"
            return state.get(f"bridge/{key}/{remote}/{nonce}")
        if path == "pending":
            return self._pending(state, remote, args.get("packets"))
        if path == "in_flight":
            return self._in_flight(state, remote, args)
        raise InvalidArgument("path", f"bridge has no query {path!r}")

    @staticmethod
    def _pending(state: State, remote: str, packets: object) -> list[JSONValue]:
        """The ``[kind, nonce]`` pairs of ``packets`` still to do here, in the order
        asked: a received packet (``locked``/``burned``) whose nonce from ``remote`` is
        not recorded yet, an ``expired`` one for a transfer sent to ``remote`` that is
        still refundable, a ``minted`` / ``released`` one (an acknowledgement) for a
        transfer sent to ``remote`` whose record is still kept. One read for a
        relayer's whole batch, instead of one per packet; it can only lose work for the
        caller by lying, which costs the chain nothing, since delivery re-checks
        everything."""
        if not isinstance(packets, list) or len(packets) > MAX_PENDING_QUERY:
            raise InvalidArgument("packets", f"expected a list of at most {MAX_PENDING_QUERY}")
        todo: list[JSONValue] = []
        for item in packets:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], str)  # a list is unhashable: check before `in`
                or item[0] not in _PENDING_KINDS
                or not isinstance(item[1], int)
                or isinstance(item[1], bool)
                or not 1 <= item[1] <= MAX_AMOUNT
            ):
                raise InvalidArgument(
                    "packets", "expected [kind, nonce] pairs: locked|burned|expired, nonce >= 1"
                )
            kind, nonce = item
            if kind in ("expired", "minted", "released"):  # to refund, or to acknowledge
                sent = state.get(f"bridge/sent/{remote}/{nonce}")
                if sent is not None and sent["status"] == Status.SENT.value:
                    todo.append([kind, nonce])
            elif f"bridge/recv/{remote}/{nonce}" not in state:
                todo.append([kind, nonce])
        return todo

    @staticmethod
    def _in_flight(state: State, remote: str, args: Mapping[str, Any]) -> JSONValue:
        """One page of the nonces of transfers sent to ``remote`` still in flight (their
        sent record kept: neither acknowledged nor refunded), ``{"nonces", "next"}``.
        Pages follow the records' key order, which is not numeric ("10" before "9"):
        pass ``next`` back as ``after`` for the next page; ``next`` is null after the
        last. At most ``limit`` (1..:data:`MAX_IN_FLIGHT_PAGE`) records are read a page.
        A record added while a caller pages may land on a page already read: a caller
        that must see everything up to a height reads that height first (a record
        added later belongs to a later block)."""
        limit = arg_int(args, "limit", 1, MAX_IN_FLIGHT_PAGE) if "limit" in args else 100
        prefix = f"bridge/sent/{remote}/"
        start = prefix
        if "after" in args:
            # just above the key of nonce ``after``: "\0" sorts below every digit
            start = f"{prefix}{arg_int(args, 'after', 1, MAX_AMOUNT)}\0"
        nonces: list[JSONValue] = []
        read = last = 0
        for key, sent in state.items(prefix, start=start):
            read, last = read + 1, int(key[len(prefix) :])
            if sent["status"] == Status.SENT.value:  # else a record from before pruning
                nonces.append(last)
            if read >= limit:
                break
        return {"nonces": nonces, "next": last if read >= limit else None}

    _METHODS: ClassVar[Mapping[str, Callable[..., None]]] = {
        "register_path": register_path,
        "update_path": update_path,
        "set_limits": set_limits,
        "pause": pause,
        "unpause": unpause,
        "cancel_queued": cancel_queued,
        "drop_queued": drop_queued,
        "resend": resend,
        "lock": lock,
        "burn": burn,
        "mint": mint,
        "release": release,
        "refund": refund,
        "acknowledge": acknowledge,
    }

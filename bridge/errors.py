"""Errors of the lock-mint bridge. Each names the rule that refused and keeps the values.

Every bridge error is a :class:`~chains.errors.TxFailed`: the call rolls back entirely
(only the sender's nonce advances). Light-client refusals (``InvalidProof``,
``ConsensusStateNotFound``, ``ClientFrozen``, ``ClientExpired``) come from the kernel
unchanged, so a forged proof is refused with the same error whichever module checks it.

    InterlockError
    └── TxFailed
        └── BridgeError                    a bridge call was refused
            ├── PathError                  the path registry refused
            │   ├── UnknownPath            no path registered for that chain
            │   ├── PathExists             registering a path twice (use update_path)
            │   ├── ClientChainMismatch    the light client tracks another chain
            │   └── BridgePaused           governance paused the path (or the bridge)
            ├── SendRefused                lock / burn refused on the source
            │   ├── UnknownDenom           no supply of that denom here (Qubit)
            │   ├── NotWrapped             burn of a denom this bridge never minted
            │   ├── DenomTooLong           the wrapped name would not be a valid denom
            │   ├── TimeoutInPast          the destination is already past the timeout
            │   └── EscrowMismatch         escrow did not receive exactly the amount (Qubit)
            ├── PacketRejected             a proven event is not an acceptable packet
            │   ├── MalformedBundle        a proof bundle does not decode
            │   ├── ForeignEvent           not the registered remote bridge's event
            │   ├── MalformedPacket        a packet field is missing or out of range
            │   ├── WrongDestination       the packet is for another chain
            │   ├── WrongPath              the packet's source is not the proof's chain
            │   ├── PacketMismatch         an expiry does not match the transfer sent
            │   └── UnknownTransfer        refund of a nonce this chain never sent
            ├── AlreadyProcessed           (path, nonce) consumed before: a replay
            ├── RateLimited                the outflow cap of this window is used up
            ├── QueueFull                  the large-transfer queue is at capacity
            ├── NotQueued                  cancel of a transfer not waiting in the queue
            ├── EscrowShortfall            escrow holds less than a release needs
            └── DenomCollision             a wrapped name already names a native denom

The relay planner (:mod:`bridge.relay`) runs off chain, in a relayer; its refusals are
not transaction failures:

    InterlockError
    └── RelayPlanError                     the planner cannot plan with what it was given
        ├── MalformedPendingAnswer         a bridge/pending answer of the wrong shape (RPC)
        ├── TooManyPackets                 more packets than one bridge/pending query takes
        └── BundleTooLarge                 one bundle alone exceeds the transaction budget
"""

from __future__ import annotations

from chains.errors import InterlockError, TxFailed

__all__ = [
    "AlreadyProcessed",
    "BridgeError",
    "BridgePaused",
    "BundleTooLarge",
    "ClientChainMismatch",
    "DenomCollision",
    "DenomTooLong",
    "EscrowMismatch",
    "EscrowShortfall",
    "ForeignEvent",
    "MalformedBundle",
    "MalformedPacket",
    "MalformedPendingAnswer",
    "NotQueued",
    "NotWrapped",
    "PacketMismatch",
    "PacketRejected",
    "PathError",
    "PathExists",
    "QueueFull",
    "RateLimited",
    "RelayPlanError",
    "SendRefused",
    "TimeoutInPast",
    "TooManyPackets",
    "UnknownDenom",
    "UnknownPath",
    "UnknownTransfer",
    "WrongDestination",
    "WrongPath",
]


class BridgeError(TxFailed):
    """A bridge call was refused; nothing it did is kept."""

    code = "bridge_error"


# --- paths ----------------------------------------------------------------------------


class PathError(BridgeError):
    """The path registry refused."""


class UnknownPath(PathError):
    def __init__(self, remote_chain: str) -> None:
        self.remote_chain = remote_chain
        super().__init__(f"no bridge path to chain {remote_chain!r} is registered")


class PathExists(PathError):
    def __init__(self, remote_chain: str) -> None:
        self.remote_chain = remote_chain
        super().__init__(f"a path to {remote_chain!r} exists already (governance: update_path)")


class ClientChainMismatch(PathError):
    def __init__(self, client_id: str, expected: str, got: str) -> None:
        self.client_id, self.expected, self.got = client_id, expected, got
        super().__init__(f"light client {client_id!r} tracks chain {got!r}, not {expected!r}")


class BridgePaused(PathError):
    def __init__(self, remote_chain: str) -> None:
        self.remote_chain = remote_chain
        where = "the bridge is" if remote_chain == "*" else f"the path to {remote_chain!r} is"
        super().__init__(f"{where} paused by governance")


# --- sending --------------------------------------------------------------------------


class SendRefused(BridgeError):
    """A lock or burn was refused on the source chain."""


class UnknownDenom(SendRefused):
    def __init__(self, denom: str) -> None:
        self.denom = denom
        super().__init__(f"denom {denom!r} has no supply on this chain")


class NotWrapped(SendRefused):
    def __init__(self, denom: str) -> None:
        self.denom = denom
        super().__init__(f"denom {denom!r} was not minted by this bridge; lock it instead")


class DenomTooLong(SendRefused):
    def __init__(self, denom: str, limit: int) -> None:
        self.denom, self.limit = denom, limit
        super().__init__(f"wrapped denom {denom!r} would exceed {limit} characters")


class TimeoutInPast(SendRefused):
    def __init__(self, timeout_height: int, known_height: int) -> None:
        self.timeout_height, self.known_height = timeout_height, known_height
        super().__init__(
            f"timeout height {timeout_height} is not above the destination's known height "
            f"{known_height}"
        )


class EscrowMismatch(SendRefused):
    def __init__(self, denom: str, expected: int, got: int) -> None:
        self.denom, self.expected, self.got = denom, expected, got
        super().__init__(f"escrow of {denom} changed by {got}, expected exactly {expected}")


# --- receiving ------------------------------------------------------------------------


class PacketRejected(BridgeError):
    """A proof bundle or the packet it carries is not acceptable."""


class MalformedBundle(PacketRejected):
    def __init__(self, index: int, reason: str) -> None:
        self.index, self.reason = index, reason
        super().__init__(f"proof bundle {index} is malformed: {reason}")


class ForeignEvent(PacketRejected):
    def __init__(self, expected: str, got: str) -> None:
        self.expected, self.got = expected, got
        super().__init__(f"event {got!r} is not {expected!r} from the registered remote bridge")


class MalformedPacket(PacketRejected):
    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"packet field {field!r}: {reason}")


class WrongDestination(PacketRejected):
    def __init__(self, expected: str, got: str) -> None:
        self.expected, self.got = expected, got
        super().__init__(f"packet is for chain {got!r}, this is {expected!r}")


class WrongPath(PacketRejected):
    def __init__(self, path: str, got: str) -> None:
        self.path, self.got = path, got
        super().__init__(f"packet claims source {got!r} but is proven on the path to {path!r}")


class PacketMismatch(PacketRejected):
    def __init__(self, remote_chain: str, nonce: int) -> None:
        self.remote_chain, self.nonce = remote_chain, nonce
        super().__init__(
            f"proven packet {remote_chain}/{nonce} does not match the transfer this chain sent"
        )


class UnknownTransfer(PacketRejected):
    def __init__(self, remote_chain: str, nonce: int) -> None:
        self.remote_chain, self.nonce = remote_chain, nonce
        super().__init__(f"this chain never sent transfer {nonce} to {remote_chain!r}")


# --- accounting -----------------------------------------------------------------------


class AlreadyProcessed(BridgeError):
    def __init__(self, remote_chain: str, nonce: int, status: str) -> None:
        self.remote_chain, self.nonce, self.status = remote_chain, nonce, status
        super().__init__(f"transfer {remote_chain}/{nonce} was already processed ({status})")


class RateLimited(BridgeError):
    def __init__(self, remote_chain: str, denom: str, used: int, amount: int, cap: int) -> None:
        self.remote_chain, self.denom = remote_chain, denom
        self.used, self.amount, self.cap = used, amount, cap
        super().__init__(
            f"outflow of {denom} on the path to {remote_chain!r}: {used} used + {amount} "
            f"exceeds the cap {cap} for this window"
        )


class QueueFull(BridgeError):
    def __init__(self, remote_chain: str, capacity: int) -> None:
        self.remote_chain, self.capacity = remote_chain, capacity
        super().__init__(
            f"the large-transfer queue of path {remote_chain} is full ({capacity}); retry later"
        )


class NotQueued(BridgeError):
    def __init__(self, remote_chain: str, nonce: int, status: str | None) -> None:
        self.remote_chain, self.nonce, self.status = remote_chain, nonce, status
        super().__init__(
            f"transfer {remote_chain}/{nonce} is not waiting in the queue "
            f"({status or 'never received'}); only a queued transfer can be cancelled"
        )


class EscrowShortfall(BridgeError):
    def __init__(self, remote_chain: str, denom: str, have: int, need: int) -> None:
        self.remote_chain, self.denom, self.have, self.need = remote_chain, denom, have, need
        super().__init__(
            f"escrow for {remote_chain!r} holds {have} {denom}, a release needs {need}"
        )


class DenomCollision(BridgeError):
    def __init__(self, denom: str) -> None:
        self.denom = denom
        super().__init__(f"wrapped denom {denom!r} collides with a native denom of that name")


# --- relay planning (off chain) ---------------------------------------------------------


class RelayPlanError(InterlockError):
    """The relay planner was given something it cannot plan with; it planned nothing."""


class MalformedPendingAnswer(RelayPlanError):
    """A destination's answer to ``bridge/pending`` is not a sublist of what was asked.

    The answer comes over RPC from an endpoint the relayer does not trust."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed bridge/pending answer: {reason}")


class TooManyPackets(RelayPlanError):
    def __init__(self, count: int, limit: int) -> None:
        self.count, self.limit = count, limit
        super().__init__(f"{count} packets in one bridge/pending query; at most {limit}")


class BundleTooLarge(RelayPlanError):
    def __init__(self, nonce: int, size: int, budget: int) -> None:
        self.nonce, self.size, self.budget = nonce, size, budget
        super().__init__(
            f"the bundle of nonce {nonce} takes {size} bytes; a transaction has {budget}"
        )

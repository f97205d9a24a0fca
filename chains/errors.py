"""Errors of the ledger kernel, and the root of every interlock error.

Every error carries the offending values as attributes and renders as one line, so a CLI
or an RPC server can show ``str(err)`` to a user without a traceback.

    InterlockError
    ├── EncodingError                  malformed canonical bytes / wire object
    ├── TxError                        a transaction was refused
    │   ├── TxRejected                 never enters a block; no state changes at all
    │   │   ├── MalformedTx
    │   │   ├── WrongChain
    │   │   ├── InvalidSignature
    │   │   ├── BadNonce
    │   │   ├── DuplicateTx
    │   │   └── MempoolFull
    │   │       └── SenderQueueFull
    │   └── TxFailed                   executed and failed: only the nonce advances
    │       ├── UnknownModule / UnknownMethod
    │       ├── InvalidArgument
    │       ├── Unauthorized
    │       ├── InsufficientFunds
    │       ├── InsufficientStake          (chains.staking: unbond more than bonded)
    │       └── (module errors: htlc.errors, bridge.errors, LightClientError)
    ├── ConsensusError                 a header / commit does not verify
    │   ├── InsufficientVotingPower
    │   ├── DuplicateSigner
    │   ├── UnknownSigner
    │   ├── InvalidCommit
    │   ├── InvalidSeal                a PoW/PoS seal that does not meet its rule
    │   └── NoEligibleProposer         a PoS node holds no key eligible in any slot
    ├── LightClientError               (also) the header-update planner's refusals:
    │   ├── LightPlanError                 InvalidPlan, UnexpectedBlock, PlanNotFinished
    │   ├── HeaderRejected                 (BFT rules above; PoW rules:) InsufficientWork,
    │   │                                  WrongTarget, TimeOutOfWindow, UnknownParent,
    │   │                                  ForkBelowFinality, TooManyBranches; PoS rules:
    │   │                                  IneligibleProposer,
    │   │                                  InvalidProposerSignature, TimeOutOfWindow
    │   └── ConsensusStateNotFound
    │       └── NotFinal                   a PoW/PoS height not yet the finality depth deep
    ├── StoreError                     the block store is unusable or inconsistent
    └── ConfigError
        └── InvalidConsensusParams     a chain's engine parameters do not validate
"""

from __future__ import annotations

import re
from typing import Any


def compute_code(class_name: str) -> str:
    """The snake_case code of an error class name (``RateLimited`` -> ``rate_limited``,
    ``HTLCError`` -> ``htlc_error``)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()


class InterlockError(Exception):
    """Root of every error interlock raises on purpose.

    Every class has its own stable ``code`` (snake_case), the name RPC answers and
    clients use for it: set in the class body where it must not follow the class name,
    else derived from the name when the class is defined, never inherited (a
    ``RateLimited`` used to answer its base's ``bridge_error``). A test pins them all."""

    code: str = "interlock_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            cls.code = compute_code(cls.__name__)


class EncodingError(InterlockError):
    """Bytes or a wire object that do not decode to a well-formed value."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"malformed {what}: {reason}")


class ConfigError(InterlockError):
    """A configuration file or option that does not validate."""


class StoreError(InterlockError):
    """The block store is unusable or inconsistent with the chain."""


# --- transactions ---------------------------------------------------------------------


class TxError(InterlockError):
    """A transaction was refused (see :class:`TxRejected` and :class:`TxFailed`)."""

    code = "tx_error"


class TxRejected(TxError):
    """Refused before execution: it never enters a block and changes no state."""

    code = "rejected"


class MalformedTx(TxRejected):
    code = "malformed_tx"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed transaction: {reason}")


class WrongChain(TxRejected):
    code = "wrong_chain"

    def __init__(self, expected: str, got: str) -> None:
        self.expected, self.got = expected, got
        super().__init__(f"transaction is for chain {got!r}, this is {expected!r}")


class InvalidSignature(TxRejected):
    code = "invalid_signature"

    def __init__(self, what: str = "transaction") -> None:
        self.what = what
        super().__init__(f"{what} signature does not verify")


class BadNonce(TxRejected):
    code = "bad_nonce"

    def __init__(self, sender: str, expected: int, got: int) -> None:
        self.sender, self.expected, self.got = sender, expected, got
        super().__init__(f"bad nonce for {sender}: expected {expected}, got {got}")


class DuplicateTx(TxRejected):
    code = "duplicate_tx"

    def __init__(self, tx_hash: str) -> None:
        self.tx_hash = tx_hash
        super().__init__(f"transaction {tx_hash} is already known")


class MempoolFull(TxRejected):
    code = "mempool_full"

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        super().__init__(f"mempool is full ({capacity} transactions); retry later")


class SenderQueueFull(MempoolFull):
    """One sender already queues its share of the mempool (the admission policy): full
    for that sender, so retry later as for a full mempool."""

    code = "sender_queue_full"

    def __init__(self, sender: str, limit: int) -> None:
        self.sender = sender
        self.capacity = limit
        TxRejected.__init__(
            self, f"sender {sender} already queues {limit} transactions; retry later"
        )


class TxFailed(TxError):
    """Executed and failed: the sender's nonce advances, nothing else changes."""

    code = "failed"


class UnknownModule(TxFailed):
    code = "unknown_module"

    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(f"unknown module {module!r}")


class UnknownMethod(TxFailed):
    code = "unknown_method"

    def __init__(self, module: str, method: str) -> None:
        self.module, self.method = module, method
        super().__init__(f"module {module!r} has no method {method!r}")


class InvalidArgument(TxFailed):
    code = "invalid_argument"

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"invalid argument {name!r}: {reason}")


class Unauthorized(TxFailed):
    code = "unauthorized"

    def __init__(self, sender: str, action: str) -> None:
        self.sender, self.action = sender, action
        super().__init__(f"{sender} is not allowed to {action}")


class InsufficientFunds(TxFailed):
    code = "insufficient_funds"

    def __init__(self, account: str, denom: str, have: int, need: int) -> None:
        self.account, self.denom, self.have, self.need = account, denom, have, need
        super().__init__(f"{account} has {have} {denom}, needs {need}")


# --- consensus ------------------------------------------------------------------------


class ConsensusError(InterlockError):
    """A header or commit that does not verify against a validator set."""


class InvalidCommit(ConsensusError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid commit: {reason}")


class InsufficientVotingPower(ConsensusError):
    def __init__(self, signed: int, total: int, needed: str) -> None:
        self.signed, self.total, self.needed = signed, total, needed
        super().__init__(f"commit carries {signed} of {total} voting power, needs {needed}")


class DuplicateSigner(ConsensusError):
    def __init__(self, validator: str) -> None:
        self.validator = validator
        super().__init__(f"validator {validator} signed the commit twice")


class UnknownSigner(ConsensusError):
    def __init__(self, validator: str) -> None:
        self.validator = validator
        super().__init__(f"signer {validator} is not in the validator set")


# --- light clients --------------------------------------------------------------------


class LightClientError(InterlockError):
    """A light-client operation was refused."""


class ClientNotFound(LightClientError):
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        super().__init__(f"no light client {client_id!r}")


class ClientFrozen(LightClientError):
    def __init__(self, client_id: str, height: int) -> None:
        self.client_id, self.height = client_id, height
        super().__init__(f"light client {client_id!r} is frozen (misbehaviour at {height})")


class ClientExpired(LightClientError):
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        super().__init__(
            f"light client {client_id!r} expired: no header within its trusting period"
        )


class ClientQuotaExceeded(LightClientError):
    """Creating a light client is rationed (no fees): a funded account, a few each."""

    def __init__(self, creator: str, reason: str) -> None:
        self.creator, self.reason = creator, reason
        super().__init__(f"{creator} may not create a light client: {reason}")


class ConsensusStateNotFound(LightClientError):
    def __init__(self, client_id: str, height: int) -> None:
        self.client_id, self.height = client_id, height
        super().__init__(f"light client {client_id!r} has no consensus state at height {height}")


class HeaderRejected(LightClientError):
    """A header the light client must not accept; subclasses name the rule."""


class ChainIdMismatch(HeaderRejected):
    def __init__(self, expected: str, got: str) -> None:
        self.expected, self.got = expected, got
        super().__init__(f"header is from chain {got!r}, client tracks {expected!r}")


class NonIncreasingHeight(HeaderRejected):
    def __init__(self, trusted: int, got: int) -> None:
        self.trusted, self.got = trusted, got
        super().__init__(f"header height {got} does not exceed trusted height {trusted}")


class TrustingPeriodExpired(HeaderRejected):
    def __init__(self, trusted_time: int, now: int, period: int) -> None:
        self.trusted_time, self.now, self.period = trusted_time, now, period
        super().__init__(
            f"trusted state from {trusted_time} is past its trusting period ({period} ms) at {now}"
        )


class HeaderFromFuture(HeaderRejected):
    def __init__(self, header_time: int, now: int, drift: int) -> None:
        self.header_time, self.now, self.drift = header_time, now, drift
        super().__init__(f"header time {header_time} is beyond now {now} + max drift {drift} ms")


class NonMonotonicTime(HeaderRejected):
    def __init__(self, trusted_time: int, header_time: int) -> None:
        self.trusted_time, self.header_time = trusted_time, header_time
        super().__init__(f"header time {header_time} is not after trusted time {trusted_time}")


class ValidatorSetMismatch(HeaderRejected):
    def __init__(self, which: str) -> None:
        self.which = which
        super().__init__(f"{which} validator set does not match the hash it must match")


class InvalidRoot(HeaderRejected):
    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"header {field} is zero / default")


class InvalidProof(LightClientError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid proof: {reason}")


class LightPlanError(LightClientError):
    """The header-update planner (``chains.lcplan``) cannot go on; it plans nothing more."""


class InvalidPlan(LightPlanError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot plan header updates: {reason}")


class UnexpectedBlock(LightPlanError):
    def __init__(self, expected: int | None, got: int) -> None:
        self.expected, self.got = expected, got
        want = "no block" if expected is None else f"the block at height {expected}"
        super().__init__(f"the planner needs {want}, was given height {got}")


class PlanNotFinished(LightPlanError):
    def __init__(self, needed: int | None) -> None:
        self.needed = needed
        why = "it failed" if needed is None else f"it still needs height {needed}"
        super().__init__(f"no header updates yet: {why}")


# --- proof of work / proof of stake ---------------------------------------------------


class InvalidConsensusParams(ConfigError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid consensus parameters: {reason}")


class InvalidBlock(ConsensusError):
    """A block offered by a peer (``submit_block``) that the node does not take."""

    def __init__(self, height: int, reason: str) -> None:
        self.height, self.reason = height, reason
        super().__init__(f"block {height}: {reason}")


class InvalidSeal(ConsensusError):
    def __init__(self, height: int, reason: str) -> None:
        self.height, self.reason = height, reason
        super().__init__(f"header {height}: invalid seal: {reason}")


class InsufficientWork(HeaderRejected):
    def __init__(self, height: int, pow_hash: str) -> None:
        self.height, self.pow_hash = height, pow_hash
        super().__init__(f"header {height}: proof-of-work hash {pow_hash} is not below its target")


class WrongTarget(HeaderRejected):
    def __init__(self, height: int, expected: str, got: str) -> None:
        self.height, self.expected, self.got = height, expected, got
        super().__init__(f"header {height}: target {got} is not the retarget rule's {expected}")


class TimeOutOfWindow(HeaderRejected):
    def __init__(self, height: int, time: int, low: int, high: int) -> None:
        self.height, self.time, self.low, self.high = height, time, low, high
        super().__init__(f"header {height}: time {time} is outside the window ({low}, {high}]")


class UnknownParent(HeaderRejected):
    def __init__(self, height: int, prev_hash: str) -> None:
        self.height, self.prev_hash = height, prev_hash
        super().__init__(f"header {height}: parent {prev_hash} is not a stored or given header")


class ForkBelowFinality(HeaderRejected):
    def __init__(self, fork_height: int, final_height: int) -> None:
        self.fork_height, self.final_height = fork_height, final_height
        super().__init__(
            f"branch forks at height {fork_height}, below the final height {final_height}"
        )


class IneligibleProposer(HeaderRejected):
    def __init__(self, height: int, proposer: str, stake: int) -> None:
        self.height, self.proposer, self.stake = height, proposer, stake
        super().__init__(
            f"header {height}: proposer {proposer} (stake {stake}) is not eligible: "
            "its hash is not below target · stake"
        )


class InvalidProposerSignature(HeaderRejected):
    def __init__(self, height: int, proposer: str) -> None:
        self.height, self.proposer = height, proposer
        super().__init__(f"header {height}: the seal is not {proposer}'s signature")


class NoEligibleProposer(ConsensusError):
    def __init__(self, height: int, keys: int) -> None:
        self.height, self.keys = height, keys
        super().__init__(f"block {height}: none of this node's {keys} staked keys is eligible")


class InsufficientStake(TxFailed):
    def __init__(self, validator: str, bonded: int, wanted: int) -> None:
        self.validator, self.bonded, self.wanted = validator, bonded, wanted
        super().__init__(f"validator {validator} has {bonded} bonded, cannot unbond {wanted}")


class TooManyBranches(HeaderRejected):
    def __init__(self, client_id: str, height: int, limit: int) -> None:
        self.client_id, self.height, self.limit = client_id, height, limit
        super().__init__(
            f"light client {client_id!r}: the heights around {height} already hold {limit} "
            "headers; only the best branch may add more"
        )


class NotFinal(ConsensusStateNotFound):
    """A height a PoW/PoS client knows but does not yet hold final. A consensus state
    not found, to every reader: a relayer or the bridge treats it as not there yet."""

    def __init__(self, client_id: str, height: int, final_height: int) -> None:
        self.client_id, self.height, self.final_height = client_id, height, final_height
        LightClientError.__init__(
            self,
            f"light client {client_id!r}: height {height} is not final (final to {final_height})",
        )

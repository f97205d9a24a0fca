"""Header-update planning for a light client, sans I/O: which headers to fetch and submit
to move a client from its trusted height to a target height.

A relayer keeps another chain's light client (``chains.lightclient``) current. Submitting
every header (sequential updates) costs one commit check per height; skipping straight to
the target costs one, if enough of the trusted validators still sign there. When they do
not (the set churned), the planner bisects as tendermint-rs's ``verify_to_target`` does:
try the target; on "not enough trust" try the midpoint between the trusted height and the
height that failed; on success make it the trusted block and try the target again.
Adjacent heights never lack trust (the sequential rule), so the search ends. One change
from tendermint-rs: after a success it retries the blocks it already fetched above the
new trusted height, highest first, before fetching a new midpoint; they are the likeliest
to verify now and cost no fetch.

The planner does no I/O: the caller asks :meth:`UpdatePlanner.next_height`, fetches that
:class:`LightBlock` (from any endpoint, trusted or not) and hands it to
:meth:`UpdatePlanner.provide`, until ``next_height`` is None; then :meth:`updates` are the
``HeaderUpdate`` transactions to submit, in order. Every step is verified with the
on-chain client's own rule (``validate_header_update``), so what the planner accepts the
host chain accepts, and a forged or invalid block raises the same typed error the chain
would and ends the plan with no updates.

"Not enough trust" is decided before any signature is checked: a commit whose signers
from the trusted set hold too little power cannot pass whatever its signatures, so a
doomed skip costs no signature checks, only a fetch. A commit that claims enough trust is
then fully verified, and if it was lying the plan fails (the endpoint was hostile).

:func:`needs_refresh` says when a client must get a header even if nothing else is
relayed: before its trusting period runs out, after which no update can ever verify.
"""

from __future__ import annotations

from dataclasses import dataclass

from chains.errors import (
    InterlockError,
    InvalidPlan,
    PlanNotFinished,
    TrustingPeriodExpired,
    UnexpectedBlock,
    ValidatorSetMismatch,
)
from chains.lightclient import (
    DEFAULT_TRUST_LEVEL,
    ClientState,
    ConsensusState,
    HeaderUpdate,
    validate_header_update,
)
from chains.types import Commit, Header, ValidatorSet

__all__ = ["LightBlock", "UpdatePlanner", "needs_refresh"]

REFRESH_FRACTION = (2, 3)


@dataclass(frozen=True, slots=True)
class LightBlock:
    """A header with what it takes to verify it and to verify from it."""

    header: Header
    """The signed header."""
    commit: Commit
    """Its commit."""
    validators: ValidatorSet
    """The set that signed ``header`` (named by ``header.validators_hash``)."""
    next_validators: ValidatorSet
    """The set named by ``header.next_validators_hash``: it signs the next height, and
    its share is what a skip from this block counts as trust."""

    @property
    def height(self) -> int:
        return self.header.height

    def update_from(self, trusted: LightBlock) -> HeaderUpdate:
        """This block as an update verified from ``trusted`` (which the client holds).
        A sequential update needs no trusted set: the header names it by hash."""
        skip = self.height > trusted.height + 1
        return HeaderUpdate(
            self.header,
            self.commit,
            self.validators,
            trusted.height,
            trusted.next_validators if skip else None,
        )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_fraction(name: str, fraction: object, lo: tuple[int, int]) -> tuple[int, int]:
    """A fraction ``(num, den)`` in ``[lo, 1]``."""
    if not (isinstance(fraction, tuple | list) and len(fraction) == 2):
        raise InvalidPlan(f"{name} must be a fraction (numerator, denominator)")
    num, den = fraction
    if not (_is_int(num) and _is_int(den) and den > 0 and num * lo[1] >= lo[0] * den):
        raise InvalidPlan(f"{name} must be a fraction in [{lo[0]}/{lo[1]}, 1]")
    if num > den:
        raise InvalidPlan(f"{name} must be a fraction in [{lo[0]}/{lo[1]}, 1]")
    return num, den


class UpdatePlanner:
    """Plans the header updates that take a client from ``trusted`` to ``target``.

    Mutable, one per catch-up. ``trusted`` is the block of the height the client holds
    (pass ``trusted_hash``, the header hash the host chain stored, to check that the
    endpoint served that very header); ``now`` is the host chain's time the updates will
    be checked at, in ms."""

    __slots__ = (
        "_blocks",
        "_client",
        "_failed",
        "_next",
        "_trusted",
        "_updates",
        "now",
        "signature_checks",
        "target",
    )

    def __init__(
        self,
        trusted: LightBlock,
        target: int,
        *,
        trust_level: tuple[int, int] = DEFAULT_TRUST_LEVEL,
        now: int,
        trusting_period: int,
        max_clock_drift: int,
        trusted_hash: bytes | None = None,
    ) -> None:
        if not isinstance(trusted, LightBlock):
            raise InvalidPlan("trusted must be a LightBlock")
        if not _is_int(target) or target <= trusted.height:
            raise InvalidPlan(f"target {target!r} is not above the trusted height {trusted.height}")
        for name, v, lo in (
            ("now", now, 0),
            ("trusting_period", trusting_period, 1),
            ("max_clock_drift", max_clock_drift, 0),
        ):
            if not _is_int(v) or v < lo:
                raise InvalidPlan(f"{name} must be an integer >= {lo}")
        trust_level = _check_fraction("trust_level", trust_level, (1, 3))
        h = trusted.header
        if trusted_hash is not None and h.hash != trusted_hash:
            raise InvalidPlan(f"the trusted header at {h.height} is not the one the client holds")
        if trusted.next_validators.hash != h.next_validators_hash:
            raise ValidatorSetMismatch("trusted next")
        if h.time + trusting_period <= now:
            # no header can ever verify from it: the client needs a new trusted state
            raise TrustingPeriodExpired(h.time, now, trusting_period)
        self._client = ClientState(
            h.chain_id, trust_level, trusting_period, max_clock_drift, h.height, 0
        )
        self._trusted = trusted
        self._blocks: dict[int, LightBlock] = {}
        """Fetched blocks not yet verified (they lacked trust from the block trusted then)."""
        self._updates: list[HeaderUpdate] = []
        self._next: int | None = target
        self._failed = False
        self.target = target
        self.now = now
        self.signature_checks = 0
        """Signatures the verified steps checked (a skip checks its commit twice: the
        trusted set's share, then the new set's 2/3, as the on-chain client does). A step
        that fails ends the plan and is not counted."""

    @property
    def trusted_height(self) -> int:
        """The highest height verified so far."""
        return self._trusted.height

    def next_height(self) -> int | None:
        """The height whose :class:`LightBlock` the planner needs next; None when done
        (or failed)."""
        return self._next

    def provide(self, block: LightBlock) -> None:
        """The block at :meth:`next_height`, fetched by the caller (untrusted). Raises
        the verifier's typed error if it is invalid; the plan then ends, with no
        updates."""
        if not isinstance(block, LightBlock):
            raise InvalidPlan("expected a LightBlock")
        if self._next is None or block.height != self._next:
            raise UnexpectedBlock(self._next, block.height)
        self._blocks[block.height] = block
        try:
            while self._next is not None and self._next in self._blocks:
                self._step(self._blocks[self._next])
        except InterlockError:
            self._fail()
            raise
        except (TypeError, AttributeError, ValueError) as exc:
            # a LightBlock whose fields are not the types they claim: hostile, not a bug here
            self._fail()
            raise InvalidPlan(f"malformed light block at {block.height} ({exc})") from None

    def _fail(self) -> None:
        self._failed = True
        self._next = None
        self._updates.clear()
        self._blocks.clear()

    def _step(self, block: LightBlock) -> None:
        trusted = self._trusted
        if block.next_validators.hash != block.header.next_validators_hash:
            raise ValidatorSetMismatch("next")
        update = block.update_from(trusted)
        commit = block.commit
        tv = update.trusted_validators
        checks = len(commit.signatures)
        if tv is not None:
            num, den = self._client.trust_level
            power = sum(tv.by_key.get(k, 0) for k in {s.validator for s in commit.signatures})
            if power * den <= tv.total_power * num:
                # not enough trust, whatever the signatures: check nothing; try the
                # highest block already fetched below it (free), else fetch the midpoint
                lower = [x for x in self._blocks if trusted.height < x < block.height]
                self._next = max(lower) if lower else (trusted.height + block.height) // 2
                return
            checks += sum(1 for s in commit.signatures if s.validator in tv.by_key)
        validate_header_update(self._client, ConsensusState.of(trusted.header), update, self.now)
        self.signature_checks += checks
        self._updates.append(update)
        self._trusted = block
        self._blocks = {h: b for h, b in self._blocks.items() if h > block.height}
        self._next = None if block.height == self.target else self.target

    def updates(self) -> list[HeaderUpdate]:
        """The updates to submit on the host chain, in order (each verified from the
        previous one's height; the first from the trusted height), ending at the target.
        Raises :class:`PlanNotFinished` before then, or after a failure."""
        if self._failed or self._next is not None:
            raise PlanNotFinished(self._next)
        return list(self._updates)


def needs_refresh(
    client_latest_time_ms: int,
    now_ms: int,
    trusting_period_ms: int,
    fraction: tuple[int, int] = REFRESH_FRACTION,
) -> bool:
    """Whether a client whose latest header is from ``client_latest_time_ms`` should get
    a new header now even if nothing else is to relay: once ``fraction`` of its trusting
    period has passed. Past the whole period no update can verify from it any more, and
    only governance could revive the path."""
    for name, v in (("client_latest_time_ms", client_latest_time_ms), ("now_ms", now_ms)):
        if not _is_int(v) or v < 0:
            raise InvalidPlan(f"{name} must be an integer >= 0")
    if not _is_int(trusting_period_ms) or trusting_period_ms < 1:
        raise InvalidPlan("trusting_period_ms must be an integer >= 1")
    num, den = _check_fraction("fraction", fraction, (0, 1))
    return (now_ms - client_latest_time_ms) * den >= trusting_period_ms * num

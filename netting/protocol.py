"""One bank's side of a netting round: a pure state machine (no clock, socket or loop).

The round, for parties ``0..n-1`` (Shamir point ``x = index + 1``) and threshold ``t``:

1. **share** (until ``deadline(SHARE)``): each party deals its packed contribution
   (:mod:`netting.sharing`) and publishes one signed message: the Pedersen commitments in
   the clear and, for every other party, its share in a libsodium ``crypto_box``
   (X25519 keys converted from the banks' ed25519 keys; authenticated both ways).
2. **complain** (until ``deadline(COMPLAIN)``): each party checks the shares it received
   (all at once against the summed commitments; one dealer at a time only if that fails)
   and publishes the list of dealers whose share did not open their commitments (usually
   empty).
3. **answer** (until ``deadline(ANSWER)``), only if someone complained: each accused
   dealer publishes, in the clear, the disputed shares. A dealer that does not answer, or
   whose answer does not open its commitments, is a **cheater**: named, and the round
   fails (a false complaint costs the complainer nothing but reveals one share that it
   already had, which with ``t >= 1`` tells the others nothing).
4. **sum** (until ``deadline(SUM)``): each party adds up its shares (one per dealer) and
   sends that sum share, boxed, to every other party. Any ``t+1`` sum shares interpolate
   the summed contributions; the result is accepted only if it opens the summed
   commitments at 0 (so a lying sum share is caught; its sender is then checked alone
   and named).

**Documented rules.** ``t`` defaults to ``(n-1) // 2`` and must be ``1 <= t <= (n-1)//2``:
the round completes while at least ``t+1`` parties take part in the sum phase, so up to
``n - t - 1 >= t`` parties may drop out *after sharing*; and no ``t`` parties together
learn anything about another's book. A party that misses the **share** deadline is
**excluded**: its contribution is not in the sum, so netting without it would be wrong,
and the round fails naming it; a new round among the others (their obligations to it
left out) can follow at once (the shell does that). Missing a later deadline is a
dropout: it only counts against the ``t+1``.

**What is refused** (:class:`~netting.errors.MessageRefused`, nothing changes): another
round's id, an unknown sender, a message after its phase's deadline, a second message
from one sender in one phase (a replay or a duplicate), a bad signature, a malformed
body. Every check that costs nothing runs before the signature check. A second message
that is *different* and validly signed is no replay but **equivocation**: the round fails
naming the sender (parties that took different versions could not agree on a result).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from nacl import bindings as sodium
from nacl.exceptions import CryptoError
from nacl.public import Box, PublicKey
from nacl.public import PrivateKey as BoxKey

from chains.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, PrivateKey, verify
from chains.encoding import canonical, sign_bytes
from netting import group
from netting.errors import BadObligations, BadPoint, BadRoundSpec, MessageRefused, RoundFailed
from netting.sharing import (
    MAX_PARTIES,
    Dealing,
    PackedShare,
    compute_aggregate,
    compute_contribution,
    compute_share,
    deal,
    is_valid_share,
    pack_values,
    packed_size,
    reconstruct,
    unpack_values,
)

__all__ = [
    "BOX_OVERHEAD",
    "Envelope",
    "NettingResult",
    "Party",
    "Phase",
    "RoundSpec",
    "State",
    "box_public_key",
    "compute_plain_netting",
    "default_threshold",
]

ROUND_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
BOX_OVERHEAD = 24 + 16
"""Nonce and MAC of a ``crypto_box`` ciphertext."""
_CONTEXT = 32
_PAIR = 2 * group.SCALAR_SIZE


class Phase(StrEnum):
    SHARE = "share"
    COMPLAIN = "complain"
    ANSWER = "answer"
    SUM = "sum"


PHASES = tuple(Phase)


class State(Enum):
    SHARING = "sharing"
    COMPLAINING = "complaining"
    ANSWERING = "answering"
    SUMMING = "summing"
    DONE = "done"
    FAILED = "failed"


def default_threshold(n: int) -> int:
    return (n - 1) // 2


def box_public_key(ed25519_public_key: bytes) -> bytes:
    """The X25519 key a party's shares are boxed to, derived from its ed25519 key."""
    try:
        return bytes(sodium.crypto_sign_ed25519_pk_to_curve25519(ed25519_public_key))
    except (CryptoError, ValueError, TypeError, RuntimeError):
        raise BadRoundSpec("a party's key is not a usable ed25519 public key") from None


@dataclass(frozen=True, slots=True)
class RoundSpec:
    """What every party of a round agrees on beforehand."""

    round_id: str
    """1..64 of ``[a-z0-9._-]``: part of every topic, signature and box."""
    parties: tuple[bytes, ...]
    """ed25519 public keys; a party's index here is its identity in the round."""
    threshold: int
    """``t``: shares are degree-``t`` polynomials (see the module docstring)."""
    start: float
    """Unix time at which the share phase opens."""
    phase_s: float
    """Length of each of the four phases, in seconds."""

    def __post_init__(self) -> None:
        if not isinstance(self.round_id, str) or not ROUND_ID.fullmatch(self.round_id):
            raise BadRoundSpec("round id must be 1..64 of [a-z0-9._-], starting alphanumeric")
        n = len(self.parties)
        if not 3 <= n <= MAX_PARTIES:
            raise BadRoundSpec(f"{n} parties; a round has 3..{MAX_PARTIES}")
        if any(not isinstance(p, bytes) or len(p) != PUBLIC_KEY_SIZE for p in self.parties):
            raise BadRoundSpec("every party is a 32-byte ed25519 public key")
        if len(set(self.parties)) != n:
            raise BadRoundSpec("a party appears twice")
        if type(self.threshold) is not int or not 1 <= self.threshold <= default_threshold(n):
            raise BadRoundSpec(f"threshold must be in 1..{default_threshold(n)} for {n} parties")
        if not (self.phase_s > 0 and self.start == self.start and abs(self.start) < 1e12):
            raise BadRoundSpec("phase length must be positive and start a finite time")

    @property
    def n(self) -> int:
        return len(self.parties)

    @property
    def width(self) -> int:
        """Packed scalars per contribution (``n`` positions and the gross volume)."""
        return packed_size(self.n + 1)

    def deadline(self, phase: Phase) -> float:
        return self.start + (PHASES.index(phase) + 1) * self.phase_s


@dataclass(frozen=True, slots=True)
class Envelope:
    """The one message type of a round (every phase); signed by its sender."""

    round_id: str
    phase: Phase
    sender: int
    """Index of the sender in ``RoundSpec.parties``."""
    commitments: tuple[bytes, ...] = ()
    """share: ``width · (t+1)`` points, scalar-major."""
    against: tuple[int, ...] = ()
    """complain: the dealers whose share to the sender was inconsistent (sorted)."""
    answered: tuple[int, ...] = ()
    """answer: the complainers whose shares are revealed (sorted)."""
    pairs: tuple[tuple[int, int], ...] = ()
    """answer: the revealed shares, ``width`` pairs per complainer, in the clear."""
    boxes: tuple[bytes, ...] = ()
    """share, sum: one ``crypto_box`` per party (empty at the sender's own index)."""
    signature: bytes = field(default=b"", repr=False)

    def signed_value(self) -> dict[str, object]:
        return {
            "round": self.round_id,
            "phase": str(self.phase),
            "from": self.sender,
            "commit": [c.hex() for c in self.commitments],
            "against": list(self.against),
            "answered": list(self.answered),
            "pairs": [
                [group.scalar_bytes(s).hex(), group.scalar_bytes(r).hex()] for s, r in self.pairs
            ],
            "boxes": [b.hex() for b in self.boxes],
        }

    def signing_bytes(self) -> bytes:
        return sign_bytes("netting", self.signed_value())


@dataclass(frozen=True, slots=True)
class NettingResult:
    """What a round outputs to every party."""

    round_id: str
    me: int
    """The party this result was computed by."""
    positions: tuple[int, ...]
    """Net position of each party (received − paid); they sum to zero."""
    gross: int
    """Gross volume of the whole book (the sum of all obligations)."""

    @property
    def own(self) -> int:
        return self.positions[self.me]

    @property
    def net(self) -> int:
        """Volume left to settle after netting: what the net payers pay."""
        return sum(p for p in self.positions if p > 0)


def compute_plain_netting(book: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """Net positions in the clear (``book[i][k]``: what ``i`` owes ``k``); for checking."""
    n = len(book)
    return tuple(sum(book[i][k] for i in range(n)) - sum(book[k]) for k in range(n))


def _context(spec: RoundSpec, phase: Phase, sender: int, to: int) -> bytes:
    label = canonical([spec.round_id, str(phase), sender, to])
    return hashlib.sha256(b"interlock/v1/netting/box\x00" + label).digest()


def _encode_pairs(pairs: PackedShare) -> bytes:
    return b"".join(group.scalar_bytes(s) + group.scalar_bytes(r) for s, r in pairs)


def _decode_pairs(raw: bytes, width: int) -> PackedShare:
    if len(raw) != width * _PAIR:
        raise BadPoint(f"expected {width} scalar pairs")
    out = []
    for i in range(width):
        chunk = raw[i * _PAIR : (i + 1) * _PAIR]
        s = group.from_scalar_bytes(chunk[: group.SCALAR_SIZE])
        r = group.from_scalar_bytes(chunk[group.SCALAR_SIZE :])
        out.append((s, r))
    return tuple(out)


class Party:
    """One bank's state in one round: the one mutable store of this state machine.

    Drive it with :meth:`start`, :meth:`receive` (each message from the bus) and
    :meth:`tick` (as time passes); each returns the envelopes to publish. It ends in
    ``State.DONE`` (``result``) or ``State.FAILED`` (``failure``).
    """

    def __init__(self, spec: RoundSpec, key: PrivateKey, obligations: Sequence[int]) -> None:
        if key.public_key not in spec.parties:
            raise BadRoundSpec("this key is not a party of the round")
        self.spec = spec
        self.me = spec.parties.index(key.public_key)
        if len(obligations) != spec.n:
            raise BadObligations(f"{len(obligations)} obligations for {spec.n} parties")
        self._contribution = compute_contribution(list(obligations), self.me)
        self._key = key
        _pk, sk = sodium.crypto_sign_seed_keypair(key.seed)
        self._box_key = BoxKey(sodium.crypto_sign_ed25519_sk_to_curve25519(sk))
        self._peer_box = [PublicKey(box_public_key(p)) for p in spec.parties]
        self._boxes: dict[int, Box] = {}
        self.state = State.SHARING
        self.started = False
        self.result: NettingResult | None = None
        self.failure: RoundFailed | None = None
        self.refused: Counter[str] = Counter()
        """Refused messages by reason (see the module docstring)."""
        self.inbox: dict[Phase, dict[int, Envelope]] = {p: {} for p in PHASES}
        self._commitments: dict[int, tuple[tuple[bytes, ...], ...]] = {}
        self._shares: dict[int, PackedShare] = {}
        self._aggregate: tuple[tuple[bytes, ...], ...] = ()
        self._sums: dict[int, PackedShare] = {}
        self._bad_sums: set[int] = set()

    # --- the public steps ---------------------------------------------------------------

    def start(self, now: float) -> list[Envelope]:
        """Deal this party's shares: the share message (before the share deadline)."""
        if self.started:
            return []
        if now > self.spec.deadline(Phase.SHARE):
            raise RoundFailed("started after the share deadline", excluded=(self.me,))
        self.started = True
        dealing = deal(pack_values(self._contribution), self.spec.threshold)
        self._own_dealing: Dealing = dealing
        boxes = []
        for j in range(self.spec.n):
            if j == self.me:
                boxes.append(b"")
                continue
            share = compute_share(dealing, j + 1)
            boxes.append(self._seal(Phase.SHARE, j, share))
        env = self._sign(
            Envelope(
                self.spec.round_id,
                Phase.SHARE,
                self.me,
                commitments=tuple(c for cs in dealing.commitments for c in cs),
                boxes=tuple(boxes),
            )
        )
        self.inbox[Phase.SHARE][self.me] = env
        self._commitments[self.me] = dealing.commitments
        self._shares[self.me] = compute_share(dealing, self.me + 1)
        return [env, *self._advance(now)]

    def receive(self, env: Envelope, now: float) -> list[Envelope]:
        """Take one envelope from the bus; raises :class:`MessageRefused` (no change)."""
        try:
            self.validate_envelope(env, now)
        except MessageRefused as exc:
            self.refused[exc.reason] += 1
            if exc.reason == "duplicate" and not self.finished and self._is_equivocation(env):
                # Two different messages, both signed by the sender, for one phase: the
                # parties may have taken different ones, so no result can be trusted.
                return self._fail(
                    RoundFailed(
                        "a party signed two different messages for one phase",
                        cheaters=(env.sender,),
                    )
                )
            raise
        self.inbox[env.phase][env.sender] = env
        return self._advance(now)

    def tick(self, now: float) -> list[Envelope]:
        """Let time pass: a deadline that has gone by closes its phase."""
        return self._advance(now)

    @property
    def finished(self) -> bool:
        return self.state in (State.DONE, State.FAILED)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (None once finished)."""
        for state, phase in (
            (State.SHARING, Phase.SHARE),
            (State.COMPLAINING, Phase.COMPLAIN),
            (State.ANSWERING, Phase.ANSWER),
            (State.SUMMING, Phase.SUM),
        ):
            if self.state is state:
                return self.spec.deadline(phase)
        return None

    # --- validation (changes nothing) ---------------------------------------------------

    def validate_envelope(self, env: Envelope, now: float) -> None:
        spec = self.spec
        if env.round_id != spec.round_id:
            raise MessageRefused("other_round", env.round_id)
        if type(env.sender) is not int or not 0 <= env.sender < spec.n:
            raise MessageRefused("unknown_sender", str(env.sender))
        if env.sender == self.me:
            raise MessageRefused("own")
        if env.phase not in PHASES:
            raise MessageRefused("malformed", "unknown phase")
        if now > spec.deadline(env.phase):
            raise MessageRefused("late", f"{env.phase} from {env.sender}")
        if env.sender in self.inbox[env.phase]:
            raise MessageRefused("duplicate", f"{env.phase} from {env.sender}")
        self._validate_shape(env)
        if not verify(spec.parties[env.sender], env.signing_bytes(), env.signature):
            raise MessageRefused("forged", f"{env.phase} from {env.sender}")

    def _is_equivocation(self, env: Envelope) -> bool:
        """Is ``env`` a second, different, validly signed message of its sender and phase?"""
        stored = self.inbox[env.phase][env.sender]
        if env.signing_bytes() == stored.signing_bytes():
            return False  # a replay of the same message
        try:
            self._validate_shape(env)
        except MessageRefused:
            return False
        return verify(self.spec.parties[env.sender], env.signing_bytes(), env.signature)

    def _validate_shape(self, env: Envelope) -> None:
        spec, n = self.spec, self.spec.n
        used = {
            "commitments": bool(env.commitments),
            "against": bool(env.against),
            "answered": bool(env.answered),
            "pairs": bool(env.pairs),
            "boxes": bool(env.boxes),
        }
        allowed = {
            Phase.SHARE: {"commitments", "boxes"},
            Phase.COMPLAIN: {"against"},
            Phase.ANSWER: {"answered", "pairs"},
            Phase.SUM: {"boxes"},
        }[env.phase]
        extra = [k for k, v in used.items() if v and k not in allowed]
        if extra:
            raise MessageRefused("malformed", f"{env.phase} carries {extra[0]}")
        if len(env.signature) != SIGNATURE_SIZE:
            raise MessageRefused("malformed", "signature size")
        if env.phase in (Phase.SHARE, Phase.SUM) and (
            len(env.boxes) != n
            or any(
                (len(b) != 0) if j == env.sender else (len(b) != self._box_size())
                for j, b in enumerate(env.boxes)
            )
        ):
            raise MessageRefused("malformed", "boxes")
        if env.phase is Phase.SHARE and (
            len(env.commitments) != spec.width * (spec.threshold + 1)
            or any(len(c) != group.POINT_SIZE for c in env.commitments)
        ):
            raise MessageRefused("malformed", "commitments")
        for ids in (env.against, env.answered):
            if list(ids) != sorted(set(ids)) or any(
                type(i) is not int or not 0 <= i < n or i == env.sender for i in ids
            ):
                raise MessageRefused("malformed", "party list")
        if env.phase is Phase.ANSWER and (
            not env.answered
            or len(env.pairs) != len(env.answered) * spec.width
            or any(not (0 <= s < group.L and 0 <= r < group.L) for s, r in env.pairs)
        ):
            raise MessageRefused("malformed", "answer")

    def _box_size(self) -> int:
        return BOX_OVERHEAD + _CONTEXT + self.spec.width * _PAIR

    # --- boxes and signatures -----------------------------------------------------------

    def _box(self, peer: int) -> Box:
        box = self._boxes.get(peer)
        if box is None:  # one X25519 per peer, not per message
            box = self._boxes[peer] = Box(self._box_key, self._peer_box[peer])
        return box

    def _seal(self, phase: Phase, to: int, pairs: PackedShare) -> bytes:
        plain = _context(self.spec, phase, self.me, to) + _encode_pairs(pairs)
        return bytes(self._box(to).encrypt(plain))

    def _open(self, env: Envelope) -> PackedShare | None:
        """The pairs ``env`` boxed to this party, or None if the box does not open."""
        raw = env.boxes[self.me]
        try:
            plain = bytes(self._box(env.sender).decrypt(raw))
            if plain[:_CONTEXT] != _context(self.spec, env.phase, env.sender, self.me):
                return None
            return _decode_pairs(plain[_CONTEXT:], self.spec.width)
        except (CryptoError, BadPoint, ValueError):
            return None

    def _sign(self, env: Envelope) -> Envelope:
        return Envelope(
            env.round_id,
            env.phase,
            env.sender,
            env.commitments,
            env.against,
            env.answered,
            env.pairs,
            env.boxes,
            self._key.sign(env.signing_bytes()),
        )

    # --- the state machine --------------------------------------------------------------

    def _fail(self, failure: RoundFailed) -> list[Envelope]:
        self.state, self.failure = State.FAILED, failure
        return []

    def _advance(self, now: float) -> list[Envelope]:
        out: list[Envelope] = []
        while self.started and not self.finished:
            step = self._step(now)
            if step is None:
                break
            out.extend(step)
        return out

    def _phase_closed(self, phase: Phase, now: float) -> bool:
        return len(self.inbox[phase]) == self.spec.n or now >= self.spec.deadline(phase)

    def _step(self, now: float) -> list[Envelope] | None:
        """One transition, or None if the current state must wait."""
        if self.state is State.SHARING:
            return self._close_sharing(now) if self._phase_closed(Phase.SHARE, now) else None
        if self.state is State.COMPLAINING:
            return self._close_complaints(now) if self._phase_closed(Phase.COMPLAIN, now) else None
        if self.state is State.ANSWERING:
            return self._close_answers(now)
        if self.state is State.SUMMING:
            return self._close_sums(now)
        return None

    def _close_sharing(self, now: float) -> list[Envelope]:
        spec = self.spec
        missing = tuple(i for i in range(spec.n) if i not in self.inbox[Phase.SHARE])
        if missing:
            return self._fail(RoundFailed("missed the share deadline", excluded=missing))
        t1 = spec.threshold + 1
        for i, env in self.inbox[Phase.SHARE].items():
            if i == self.me:
                continue
            cs = env.commitments
            self._commitments[i] = tuple(
                tuple(cs[c * t1 : (c + 1) * t1]) for c in range(spec.width)
            )
            share = self._open(env)
            if share is not None:
                self._shares[i] = share
        against = self._find_bad_dealers()
        env = self._sign(Envelope(spec.round_id, Phase.COMPLAIN, self.me, against=against))
        self.inbox[Phase.COMPLAIN][self.me] = env
        self.state = State.COMPLAINING
        return [env]

    def _find_bad_dealers(self) -> tuple[int, ...]:
        """Dealers whose share to this party does not open their commitments."""
        n, x = self.spec.n, self.me + 1
        if len(self._shares) == n:
            # Fast path: one check of the summed shares against the summed commitments.
            try:
                # kept for the sum phase: summing the commitments is most of a bank's CPU
                self._aggregate = compute_aggregate([self._commitments[i] for i in range(n)])
                if is_valid_share(self._aggregate, x, self._sum_shares(range(n))):
                    return ()
            except BadPoint:
                pass
        return tuple(
            i
            for i in range(n)
            if i != self.me
            and not (i in self._shares and is_valid_share(self._commitments[i], x, self._shares[i]))
        )

    def _sum_shares(self, dealers: Sequence[int] | range) -> PackedShare:
        width = self.spec.width
        return tuple(
            (
                sum(self._shares[i][c][0] for i in dealers) % group.L,
                sum(self._shares[i][c][1] for i in dealers) % group.L,
            )
            for c in range(width)
        )

    def _close_complaints(self, now: float) -> list[Envelope]:
        accused = sorted({i for env in self.inbox[Phase.COMPLAIN].values() for i in env.against})
        if not accused:
            return self._enter_summing()
        self.state = State.ANSWERING
        if self.me not in accused:
            return []
        complainers = tuple(
            sorted(j for j, env in self.inbox[Phase.COMPLAIN].items() if self.me in env.against)
        )
        pairs = tuple(p for j in complainers for p in compute_share(self._own_dealing, j + 1))
        env = self._sign(
            Envelope(self.spec.round_id, Phase.ANSWER, self.me, answered=complainers, pairs=pairs)
        )
        self.inbox[Phase.ANSWER][self.me] = env
        return [env]

    def _close_answers(self, now: float) -> list[Envelope] | None:
        complaints = {j: env.against for j, env in self.inbox[Phase.COMPLAIN].items()}
        accused = sorted({i for against in complaints.values() for i in against})
        if not (all(i in self.inbox[Phase.ANSWER] for i in accused)) and now < self.spec.deadline(
            Phase.ANSWER
        ):
            return None
        width = self.spec.width
        cheaters = []
        for i in accused:
            complainers = sorted(j for j, against in complaints.items() if i in against)
            env = self.inbox[Phase.ANSWER].get(i)
            if env is None or not set(complainers) <= set(env.answered):
                cheaters.append(i)
                continue
            for k, j in enumerate(env.answered):
                share = env.pairs[k * width : (k + 1) * width]
                if not is_valid_share(self._commitments[i], j + 1, share):
                    cheaters.append(i)
                    break
                if j == self.me:
                    self._shares[i] = share
        if cheaters:
            return self._fail(
                RoundFailed(
                    "a dealer's shares do not open its commitments", cheaters=tuple(cheaters)
                )
            )
        return self._enter_summing()

    def _enter_summing(self) -> list[Envelope]:
        spec = self.spec
        if not self._aggregate:  # commitments do not change after the share phase
            self._aggregate = compute_aggregate([self._commitments[i] for i in range(spec.n)])
        mine = self._sum_shares(range(spec.n))
        self._sums[self.me] = mine
        boxes = tuple(
            b"" if j == self.me else self._seal(Phase.SUM, j, mine) for j in range(spec.n)
        )
        env = self._sign(Envelope(spec.round_id, Phase.SUM, self.me, boxes=boxes))
        self.inbox[Phase.SUM][self.me] = env
        self.state = State.SUMMING
        return [env]

    def _close_sums(self, now: float) -> list[Envelope] | None:
        spec = self.spec
        for j, env in self.inbox[Phase.SUM].items():
            if j in self._sums or j in self._bad_sums:
                continue
            share = self._open(env)
            if share is None:
                self._bad_sums.add(j)
            else:
                self._sums[j] = share
        t1 = spec.threshold + 1
        if len(self._sums) >= t1:
            chosen = dict(sorted(self._sums.items())[:t1])
            opened = reconstruct({j + 1: share for j, share in chosen.items()})
            if all(group.commit(s, r) == self._aggregate[c][0] for c, (s, r) in enumerate(opened)):
                return self._finish(tuple(s for s, _ in opened))
            # Some sum share lies: check each alone against the summed commitments.
            liars = [
                j
                for j in chosen
                if j != self.me and not is_valid_share(self._aggregate, j + 1, self._sums[j])
            ]
            if not liars:  # cannot happen while Pedersen binds; never loop on it
                return self._fail(RoundFailed("sum shares open to no committed value"))
            for j in liars:
                del self._sums[j]
                self._bad_sums.add(j)
            return [] if len(self._sums) >= t1 else self._wait_sums(now)
        return self._wait_sums(now)

    def _wait_sums(self, now: float) -> list[Envelope] | None:
        if now < self.spec.deadline(Phase.SUM):
            return None
        return self._fail(
            RoundFailed(
                f"{len(self._sums)} valid sum shares by the deadline, "
                f"{self.spec.threshold + 1} needed",
                cheaters=tuple(sorted(self._bad_sums)),
            )
        )

    def _finish(self, packed: tuple[int, ...]) -> list[Envelope]:
        n = self.spec.n
        try:
            values = unpack_values(packed, n + 1, n)
        except RoundFailed as exc:
            return self._fail(exc)
        positions, gross = values[:n], values[n]
        if sum(positions) != 0:
            return self._fail(
                RoundFailed("net positions do not sum to zero: a party shared an unbalanced input")
            )
        self.result = NettingResult(self.spec.round_id, self.me, positions, gross)
        self.state = State.DONE
        return []

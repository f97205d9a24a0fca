"""A pure HTLC watchtower: from ``htlc.*`` events on several chains, what anyone may submit.

An HTLC lock ends in one of two calls, and both may be submitted by anyone, because
neither can pay the submitter: ``claim(lock_id, preimage)`` pays the lock's receiver and
``refund(lock_id)`` pays its sender. So a third party holding none of the swappers' keys
can finish a swap whose party went offline:

* **claim**: a secret revealed by an ``htlc.claimed`` event (on any watched chain) opens
  every open lock with the same hashlock, e.g. the initiator's lock on A once the
  initiator claimed on B. The claim is offered while ``h + claim_margin < T``, so that it
  is included below ``T`` (a claim executes iff its block's height is below ``T``).
* **refund**: an open lock whose chain reached ``h >= T + finality`` (the refund executes
  iff its block's height is at least ``T``; ``finality`` makes the expiry, and the absence
  of a claim below it, final first).

Events in (:meth:`Watchtower.observe`, one call per committed block, heights increasing),
actions out (:meth:`Watchtower.actions`, given each chain's latest height). No clock, no
chain access, no keys: the caller feeds blocks, signs what comes out with its own key,
and submits it. Nothing here is trusted that the chains would not check themselves: a
lock is identified by the id derived from its terms (never the event's ``lock_id``), a
secret is used only if it is exactly 32 bytes and hashes to the hashlock (the contract's
own rule), and an event of the wrong shape is ignored and counted. A wrong action costs a
failed transaction, never funds: the chain refuses a claim or refund of a closed lock.

Memory is bounded. A lock is forgotten once its ``htlc.claimed`` or ``htlc.refunded``
event is observed (or :meth:`Watchtower.settled` reports its receipt). At most
``max_open`` locks are tracked; beyond that the tower drops expired locks first (a refund
never expires: the sender can still refund it alone) and then the oldest observed, and
counts each drop. A secret is kept while an open lock with its hashlock needs it, and
otherwise among the ``max_spare_secrets`` most recent, so that a lock observed after its
secret (one chain's feed lagging another's) is still claimed.

The whole state is a JSON snapshot (:meth:`Watchtower.to_json`), validated as untrusted
when loaded (:meth:`Watchtower.from_json`); a daemon stores it together with its cursors
and resumes feeding each chain after :meth:`Watchtower.cursor`.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chains.crypto import PrivateKey
from chains.encoding import MAX_INT, JSONValue, from_hex
from chains.errors import EncodingError
from chains.types import Event, Tx
from htlc.errors import InvalidSnapshot, WatchError
from htlc.swap import is_secret
from htlc.types import LockStatus, LockTerms, lock_from_event

__all__ = [
    "COUNTS",
    "DEFAULT_MAX_OPEN",
    "DEFAULT_MAX_SPARE_SECRETS",
    "Action",
    "Watchtower",
    "is_htlc_event",
]

DEFAULT_MAX_OPEN = 100_000
DEFAULT_MAX_SPARE_SECRETS = 10_000
_MAX_CAP = 10_000_000  # a sanity bound on the caps, so a snapshot cannot ask for anything
_MAX_FINALITY = 1_000_000
_SNAPSHOT_VERSION = 1

COUNTS = (
    "blocks",  # blocks observed
    "locks",  # htlc.locked events that opened a tracked lock
    "closed",  # tracked locks closed by an observed claim or refund, or settled()
    "secrets",  # distinct valid secrets learnt from htlc.claimed events
    "malformed",  # events of an untrusted shape, ignored
    "bad_preimage",  # htlc.claimed events whose preimage does not open the hashlock
    "foreign",  # observe() calls for a chain this tower does not watch, ignored
    "replayed",  # observe() calls at or below the chain's last observed height, ignored
    "dropped",  # open locks forgotten because max_open was reached
)
"""The keys of :attr:`Watchtower.counts` (running totals, for metrics)."""

_Key = tuple[str, str]  # (chain id, lock id hex)


@dataclass(frozen=True, slots=True)
class Action:
    """One transaction anyone may submit now: a claim or a refund of one lock."""

    chain_id: str
    """The chain to submit it to."""
    method: str
    """The ``htlc`` module call: ``"claim"`` or ``"refund"``."""
    args: dict[str, JSONValue]
    """Exactly the call's arguments: ``{"lock_id", "preimage"}`` or ``{"lock_id"}`` (hex)."""
    lock_id: str
    """The lock it closes (hex)."""
    reason: str
    """Why, in one line, for logs."""

    def build_tx(self, key: PrivateKey, nonce: int) -> Tx:
        """The transaction, signed by any key: a claim pays the receiver and a refund the
        sender, whoever signs."""
        return Tx.create(key, self.chain_id, nonce, "htlc", self.method, dict(self.args))


@dataclass(frozen=True, slots=True)
class _Open:
    """An open lock the tower tracks."""

    terms: LockTerms
    """Its terms (the id derives from them)."""
    lock_id: str
    """Its id, hex."""
    opened: int
    """Height of the block whose ``htlc.locked`` event was observed."""


@dataclass(frozen=True, slots=True)
class _Secret:
    """A secret revealed by a claim, and where."""

    preimage: bytes
    """Exactly 32 bytes; SHA-256 of it is the hashlock it is stored under."""
    chain_id: str
    """The chain whose ``htlc.claimed`` event revealed it."""
    height: int
    """The height of that event's block."""


class Watchtower:
    """Tracks open HTLC locks on ``chain_ids`` and says which claims and refunds are due.

    ``finality`` (blocks, per chain, default 0) delays refunds until ``h >= T +
    finality``; ``claim_margin`` (at least 1) stops offering a claim when ``h +
    claim_margin >= T``, so that it still lands below ``T``. Raises :class:`WatchError`
    for arguments that do not validate.
    """

    def __init__(
        self,
        chain_ids: Sequence[str],
        *,
        finality: Mapping[str, int] | None = None,
        claim_margin: int = 1,
        max_open: int = DEFAULT_MAX_OPEN,
        max_spare_secrets: int = DEFAULT_MAX_SPARE_SECRETS,
    ) -> None:
        chains = _check_chain_ids(chain_ids)
        self.chain_ids: tuple[str, ...] = chains
        """The watched chains, in the order :meth:`actions` lists them."""
        self.finality: dict[str, int] = _check_finality(finality, chains)
        """Blocks to wait past a timelock before offering its refund, per chain."""
        self.claim_margin: int = _check_int(claim_margin, "claim_margin", 1, _MAX_FINALITY)
        """Blocks before the timelock at which claims are no longer offered."""
        self.max_open: int = _check_int(max_open, "max_open", 1, _MAX_CAP)
        """At most this many open locks are tracked."""
        self.max_spare_secrets: int = _check_int(
            max_spare_secrets, "max_spare_secrets", 0, _MAX_CAP
        )
        """At most this many secrets no open lock needs are kept."""
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        """Running totals (see :data:`COUNTS`)."""
        self._seen: dict[str, int] = {}  # chain -> last observed height
        self._open: OrderedDict[_Key, _Open] = OrderedDict()  # oldest observed first
        self._by_hash: dict[bytes, set[_Key]] = {}  # hashlock -> open locks
        self._expiry: dict[str, list[tuple[int, str]]] = {c: [] for c in chains}  # sorted
        self._claimable: set[_Key] = set()  # open locks whose secret is known
        self._needed: dict[bytes, _Secret] = {}  # hashlock -> secret some open lock needs
        self._spare: OrderedDict[bytes, _Secret] = OrderedDict()  # the others, oldest first
        self._revision = 0

    def configure(
        self, *, finality: Mapping[str, int] | None = None, claim_margin: int | None = None
    ) -> None:
        """Change the timing settings, e.g. after :meth:`from_json` when the operator's
        config changed since the snapshot (a chain missing from ``finality`` gets 0).
        Raises :class:`WatchError` and changes nothing if either does not validate."""
        new_finality = (
            self.finality if finality is None else _check_finality(finality, self.chain_ids)
        )
        margin = self.claim_margin
        if claim_margin is not None:
            margin = _check_int(claim_margin, "claim_margin", 1, _MAX_FINALITY)
        self.finality, self.claim_margin = new_finality, margin

    # --- reading ----------------------------------------------------------------------
    @property
    def open_locks(self) -> int:
        """How many open locks are tracked."""
        return len(self._open)

    @property
    def revision(self) -> int:
        """Changes whenever a lock or a secret is added or forgotten, and only then (not
        when heights merely advance). A caller persisting snapshots may skip one while the
        revision is unchanged: replaying the blocks since the stored one changes nothing
        but the heights and counts."""
        return self._revision

    @property
    def secrets_held(self) -> int:
        """How many secrets are kept (needed or spare)."""
        return len(self._needed) + len(self._spare)

    def cursor(self, chain_id: str) -> int | None:
        """The last height observed on ``chain_id`` (feed from the next one), or ``None``."""
        return self._seen.get(chain_id)

    def is_open(self, chain_id: str, lock_id: str) -> bool:
        """Whether the tower tracks ``lock_id`` on ``chain_id`` as open."""
        return (chain_id, lock_id) in self._open

    # --- feeding ----------------------------------------------------------------------
    def observe(self, chain_id: str, height: int, events: Sequence[Event]) -> None:
        """Feed the events of ``chain_id``'s committed block at ``height``.

        One call per block, heights increasing (blocks without ``htlc.*`` events may be
        skipped); a call at or below the last observed height is a replay and ignored, as
        is a chain not watched (both counted). Events other than ``htlc.*`` are skipped;
        an ``htlc.*`` event of an untrusted shape, or a claim whose preimage does not open
        the hashlock, is ignored and counted. Raises :class:`WatchError` for a height that
        is not a non-negative integer or ``events`` that is not a sequence (nothing changes).
        """
        h = _check_int(height, "height", 0, MAX_INT)
        if not _is_sequence(events):
            raise WatchError("events", "expected a sequence of events")
        if not _is_watched(chain_id, self._expiry):
            self.counts["foreign"] += 1
            return
        if h <= self._seen.get(chain_id, -1):
            self.counts["replayed"] += 1
            return
        self._seen[chain_id] = h
        self.counts["blocks"] += 1
        for event in events:
            self._observe_event(chain_id, h, event)

    def settled(self, chain_id: str, lock_id: str) -> None:
        """Forget ``lock_id`` on ``chain_id``: the caller saw an ok receipt of its claim or
        refund (the closing event, when observed, does the same). An unknown lock is a no-op;
        raises :class:`WatchError` for a chain not watched or an id that is not 32 bytes of
        lowercase hex."""
        if not _is_watched(chain_id, self._expiry):
            raise WatchError("chain_id", f"{chain_id!r} is not watched")
        try:
            from_hex(lock_id, "lock_id", 32)
        except EncodingError as exc:
            raise WatchError("lock_id", exc.reason) from None
        if self._close((chain_id, lock_id)):
            self.counts["closed"] += 1

    def _observe_event(self, chain_id: str, height: int, event: object) -> None:
        try:
            terms, status, preimage = _parse_event(chain_id, event)
        except _NotHTLC:
            return
        except (EncodingError, TypeError, ValueError):  # untrusted shape
            self.counts["malformed"] += 1
            return
        key = (chain_id, terms.lock_id.hex())
        if status is LockStatus.LOCKED:
            if self._add(key, terms, height):
                self.counts["locks"] += 1
            return
        if status is LockStatus.CLAIMED:
            # the contract accepts only this preimage, so an event with another one is
            # not a claim the chain executed: ignore all of it, the close included
            if preimage is None or not is_secret(terms.hashlock, preimage):
                self.counts["bad_preimage"] += 1
                return
            self._learn(terms.hashlock, _Secret(preimage, chain_id, height))
        if self._close(key):
            self.counts["closed"] += 1

    # --- deciding ---------------------------------------------------------------------
    def actions(self, heights: Mapping[str, int]) -> list[Action]:
        """What anyone may submit now, given each chain's latest height (chains missing
        from ``heights`` get no actions; chains not watched are ignored).

        Per chain, in the order of ``chain_ids``: claims of open locks whose secret is known
        while ``h + claim_margin < T``, then refunds of open locks with ``h >= T +
        finality``, each by timelock then lock id. ``h`` is the larger of the given height
        and the last observed one. Never an action for a lock whose claim or refund was
        observed or settled. A pure read: the same actions come back until their closing
        events are observed (the caller keeps its own in-flight set). Raises
        :class:`WatchError` for a height that is not a non-negative integer.
        """
        given = _check_heights(heights)
        out: list[Action] = []
        for chain_id in self.chain_ids:
            if chain_id not in given:
                continue
            h = max(given[chain_id], self._seen.get(chain_id, -1))
            claims = sorted(
                (self._open[k] for k in self._claimable if k[0] == chain_id),
                key=lambda o: (o.terms.timelock, o.lock_id),
            )
            for lock in claims:
                if h + self.claim_margin < lock.terms.timelock:
                    out.append(self._claim(lock, h))
            expiry = self._expiry[chain_id]
            due = bisect.bisect_left(expiry, (h - self.finality[chain_id] + 1, ""))
            out.extend(_refund(chain_id, lock_id, t, h) for t, lock_id in expiry[:due])
        return out

    def _claim(self, lock: _Open, height: int) -> Action:
        secret = self._needed[lock.terms.hashlock]
        t = lock.terms.timelock
        return Action(
            lock.terms.chain_id,
            "claim",
            {"lock_id": lock.lock_id, "preimage": secret.preimage.hex()},
            lock.lock_id,
            f"secret revealed on {secret.chain_id} at height {secret.height}; "
            f"claim for the receiver before expiry {t} (height {height})",
        )

    # --- bookkeeping ------------------------------------------------------------------
    def _add(self, key: _Key, terms: LockTerms, height: int, *, insort: bool = True) -> bool:
        if key in self._open:
            return False
        if len(self._open) >= self.max_open:
            self._evict()
        self._revision += 1
        self._open[key] = _Open(terms, key[1], height)
        self._by_hash.setdefault(terms.hashlock, set()).add(key)
        if insort:
            bisect.insort(self._expiry[key[0]], (terms.timelock, key[1]))
        else:  # the caller sorts once at the end (loading a snapshot)
            self._expiry[key[0]].append((terms.timelock, key[1]))
        if terms.hashlock not in self._needed:
            spare = self._spare.pop(terms.hashlock, None)
            if spare is None:
                return True
            self._needed[terms.hashlock] = spare
        self._claimable.add(key)
        return True

    def _close(self, key: _Key) -> bool:
        lock = self._open.pop(key, None)
        if lock is None:
            return False
        self._revision += 1
        self._claimable.discard(key)
        expiry = self._expiry[key[0]]
        del expiry[bisect.bisect_left(expiry, (lock.terms.timelock, key[1]))]
        hashlock = lock.terms.hashlock
        others = self._by_hash[hashlock]
        others.discard(key)
        if not others:
            del self._by_hash[hashlock]
            secret = self._needed.pop(hashlock, None)
            if secret is not None:  # no longer needed: keep it among the spares
                self._keep_spare(hashlock, secret)
        return True

    def _evict(self) -> None:
        victim: _Key | None = None
        for chain_id in self.chain_ids:  # expired first: their refund never runs out
            expiry = self._expiry[chain_id]
            if expiry and expiry[0][0] <= self._seen.get(chain_id, -1):
                victim = (chain_id, expiry[0][1])
                break
        self._close(victim or next(iter(self._open)))
        self.counts["dropped"] += 1

    def _learn(self, hashlock: bytes, secret: _Secret) -> None:
        if hashlock in self._needed or hashlock in self._spare:
            return
        self.counts["secrets"] += 1
        self._revision += 1
        waiting = self._by_hash.get(hashlock)
        if waiting:
            self._needed[hashlock] = secret
            self._claimable.update(waiting)
        else:
            self._keep_spare(hashlock, secret)

    def _keep_spare(self, hashlock: bytes, secret: _Secret) -> None:
        if self.max_spare_secrets == 0:
            return
        self._spare[hashlock] = secret
        while len(self._spare) > self.max_spare_secrets:
            self._spare.popitem(last=False)

    # --- snapshots --------------------------------------------------------------------
    def to_json(self) -> JSONValue:
        """The whole state as JSON (configuration, cursors, open locks, secrets, counts)."""
        secrets = [*self._needed.items(), *self._spare.items()]
        return {
            "version": _SNAPSHOT_VERSION,
            "chains": list(self.chain_ids),
            "finality": dict(self.finality),
            "claim_margin": self.claim_margin,
            "max_open": self.max_open,
            "max_spare_secrets": self.max_spare_secrets,
            "seen": dict(self._seen),
            "locks": [
                [
                    o.terms.chain_id,
                    o.terms.sender,
                    o.terms.receiver,
                    o.terms.denom,
                    o.terms.amount,
                    o.terms.hashlock.hex(),
                    o.terms.timelock,
                    o.opened,
                ]
                for o in self._open.values()
            ],
            "secrets": [[h.hex(), s.preimage.hex(), s.chain_id, s.height] for h, s in secrets],
            "counts": dict(self.counts),
        }

    @classmethod
    def from_json(cls, value: object) -> Watchtower:
        """Rebuild a tower from :meth:`to_json` output. The snapshot is untrusted: anything
        that does not parse or add up (an unwatched chain, a lock twice, a secret that does
        not open its hashlock, more than the caps) raises :class:`InvalidSnapshot`."""
        d = _mapping(value, "snapshot", _SNAPSHOT_KEYS)
        if type(d["version"]) is not int or d["version"] != _SNAPSHOT_VERSION:
            raise InvalidSnapshot("version", f"expected {_SNAPSHOT_VERSION}")
        try:
            tower = cls(
                _check_chain_ids(d["chains"]),
                finality=d["finality"],
                claim_margin=d["claim_margin"],
                max_open=d["max_open"],
                max_spare_secrets=d["max_spare_secrets"],
            )
        except WatchError as exc:
            raise InvalidSnapshot(exc.what, exc.reason) from None
        watched = tower._expiry
        seen = _mapping(d["seen"], "seen")
        for chain_id, height in seen.items():
            if not _is_watched(chain_id, watched):
                raise InvalidSnapshot("seen", f"{chain_id!r} is not watched")
            tower._seen[chain_id] = _snapshot_int(height, f"seen.{chain_id}", 0, MAX_INT)
        for i, row in enumerate(_rows(d["locks"], "locks", 8, tower.max_open)):
            what = f"locks[{i}]"
            try:
                terms = LockTerms.from_json(dict(zip(_LOCK_FIELDS, row, strict=False)), what)
            except EncodingError as exc:
                raise InvalidSnapshot(exc.what, exc.reason) from None
            if not _is_watched(terms.chain_id, watched):
                raise InvalidSnapshot(f"{what}.chain_id", "not a watched chain")
            key = (terms.chain_id, terms.lock_id.hex())
            if key in tower._open:
                raise InvalidSnapshot(what, "a duplicate lock")
            opened = _snapshot_int(row[7], f"{what}.opened", 0, seen.get(terms.chain_id, -1))
            tower._add(key, terms, opened, insort=False)
        for expiry in watched.values():
            expiry.sort()
        limit = len(tower._by_hash) + tower.max_spare_secrets
        for i, row in enumerate(_rows(d["secrets"], "secrets", 4, limit)):
            what = f"secrets[{i}]"
            try:
                hashlock = from_hex(row[0], f"{what}.hashlock", 32)
                preimage = from_hex(row[1], f"{what}.preimage", 32)
            except EncodingError as exc:
                raise InvalidSnapshot(exc.what, exc.reason) from None
            chain_id = row[2]
            if not _is_watched(chain_id, watched):
                raise InvalidSnapshot(f"{what}.chain_id", "not a watched chain")
            height = _snapshot_int(row[3], f"{what}.height", 0, seen.get(chain_id, -1))
            if not is_secret(hashlock, preimage):
                raise InvalidSnapshot(what, "the preimage does not open the hashlock")
            if hashlock in tower._needed or hashlock in tower._spare:
                raise InvalidSnapshot(what, "a duplicate secret")
            if hashlock not in tower._by_hash and len(tower._spare) >= tower.max_spare_secrets:
                raise InvalidSnapshot("secrets", "more spare secrets than max_spare_secrets")
            tower._learn(hashlock, _Secret(preimage, chain_id, height))
        tower.counts = dict.fromkeys(COUNTS, 0)  # loading is not observing: counts are restored
        counts = _mapping(d["counts"], "counts")
        for name, n in counts.items():
            if name not in tower.counts:
                raise InvalidSnapshot("counts", f"unknown count {name!r}")
            tower.counts[name] = _snapshot_int(n, f"counts.{name}", 0, MAX_INT)
        tower._revision = 0
        return tower


# --- parsing (every input untrusted) ---------------------------------------------------


def is_htlc_event(event_type: str) -> bool:
    """Whether the watchtower looks at events of this type (it skips all others): a
    subscriber follows only these for a swap watcher."""
    return event_type.startswith("htlc.")


class _NotHTLC(Exception):
    """Not an htlc lifecycle event: skipped without counting."""


def _parse_event(chain_id: str, event: object) -> tuple[LockTerms, LockStatus, bytes | None]:
    """Terms, status and preimage of an ``htlc.*`` event, parsed as the party driver does
    (:func:`htlc.types.lock_from_event`). Raises :class:`_NotHTLC` for other events and
    :class:`EncodingError` (or ``TypeError``/``ValueError``) for untrusted shapes."""
    if not isinstance(event, Event):
        raise EncodingError("event", "not an event")
    kind: object = event.type
    attrs: object = event.attributes
    if not isinstance(kind, str) or not is_htlc_event(kind):
        raise _NotHTLC
    if not isinstance(attrs, Mapping):
        raise EncodingError(kind, "attributes are not an object")
    lock = lock_from_event(chain_id, event)
    if lock is None:
        raise _NotHTLC
    hint = attrs.get("lock_id")
    if hint is not None and hint != lock.lock_id.hex():  # an honest chain's always match
        raise EncodingError(f"{kind}.lock_id", "does not match the lock's terms")
    return lock.terms, lock.status, lock.preimage


def _refund(chain_id: str, lock_id: str, timelock: int, height: int) -> Action:
    return Action(
        chain_id,
        "refund",
        {"lock_id": lock_id},
        lock_id,
        f"expired at {timelock} (height {height}); refund to the sender",
    )


def _is_watched(chain_id: object, watched: Mapping[str, object]) -> bool:
    return isinstance(chain_id, str) and chain_id in watched


def _is_sequence(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _check_int(value: object, what: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:  # not a bool either
        raise WatchError(what, f"expected an integer in [{lo}, {hi}]")
    return value


def _check_chain_ids(value: object) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise WatchError("chain_ids", "expected a list of chain ids")
    chains = tuple(value)
    if not chains:
        raise WatchError("chain_ids", "expected at least one chain")
    for c in chains:
        if not isinstance(c, str) or not 0 < len(c) <= 64:
            raise WatchError("chain_ids", f"{c!r} is not a chain id")
    if len(set(chains)) != len(chains):
        raise WatchError("chain_ids", "a chain is listed twice")
    return chains


def _check_finality(value: object, chains: Sequence[str]) -> dict[str, int]:
    out = dict.fromkeys(chains, 0)
    if value is None:
        return out
    if not isinstance(value, Mapping):
        raise WatchError("finality", "expected a mapping of chain id to blocks")
    for chain_id, blocks in value.items():
        if chain_id not in out:
            raise WatchError("finality", f"{chain_id!r} is not watched")
        out[chain_id] = _check_int(blocks, f"finality.{chain_id}", 0, _MAX_FINALITY)
    return out


def _check_heights(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise WatchError("heights", "expected a mapping of chain id to height")
    out: dict[str, int] = {}
    for chain_id, height in value.items():
        if not isinstance(chain_id, str):
            raise WatchError("heights", f"{chain_id!r} is not a chain id")
        out[chain_id] = _check_int(height, f"heights.{chain_id}", 0, MAX_INT)
    return out


_LOCK_FIELDS = ("chain_id", "sender", "receiver", "denom", "amount", "hashlock", "timelock")
_SNAPSHOT_KEYS = frozenset(
    {
        "version",
        "chains",
        "finality",
        "claim_margin",
        "max_open",
        "max_spare_secrets",
        "seen",
        "locks",
        "secrets",
        "counts",
    }
)


def _mapping(value: object, what: str, keys: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidSnapshot(what, "expected an object")
    if keys is not None and set(value) != keys:
        missing, unknown = sorted(keys - set(value)), sorted(set(value) - keys)
        raise InvalidSnapshot(
            what, f"missing keys {missing}" if missing else f"unknown keys {unknown}"
        )
    return dict(value)


def _rows(value: object, what: str, width: int, limit: int) -> Iterable[list[Any]]:
    if not isinstance(value, list):
        raise InvalidSnapshot(what, "expected a list")
    if len(value) > limit:
        raise InvalidSnapshot(what, f"{len(value)} entries, more than the cap {limit}")
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidSnapshot(f"{what}[{i}]", f"expected a list of {width} values")
        yield row


def _snapshot_int(value: object, what: str, lo: int, hi: int) -> int:
    try:
        return _check_int(value, what, lo, hi)
    except WatchError as exc:
        raise InvalidSnapshot(exc.what, exc.reason) from None

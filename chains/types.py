"""Core ledger values: transactions, events, headers, commits, validator sets, receipts.

All frozen. Each has ``to_json()`` (the wire/canonical form, see ``chains.encoding``) and a
``from_json()`` that treats its input as hostile and raises :class:`EncodingError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from chains.crypto import PrivateKey, address
from chains.encoding import JSONValue, canonical, check_value, from_hex, sign_bytes
from chains.errors import EncodingError
from chains.merkle import inclusion_proofs, merkle_root

__all__ = [
    "Block",
    "Commit",
    "CommitSig",
    "Event",
    "EventProof",
    "Header",
    "Receipt",
    "Tx",
    "Validator",
    "ValidatorSet",
    "vote_sign_bytes",
]

HASH = 32
ZERO_HASH = bytes(HASH)


def _obj(d: object, what: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise EncodingError(what, "expected an object")
    return d


def _int(d: Mapping[str, Any], key: str, what: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise EncodingError(f"{what}.{key}", f"expected an integer in [{lo}, {hi}]")
    return v


def _str(d: Mapping[str, Any], key: str, what: str, max_len: int = 128) -> str:
    v = d.get(key)
    if (
        not isinstance(v, str)
        or not v
        or len(v) > max_len
        or not v.isascii()
        or not v.isprintable()
    ):
        raise EncodingError(f"{what}.{key}", f"expected printable ASCII of 1..{max_len} chars")
    return v


def _hex(d: Mapping[str, Any], key: str, what: str, size: int) -> bytes:
    return from_hex(d.get(key), f"{what}.{key}", size)


def _exact_keys(d: Mapping[str, Any], keys: frozenset[str], what: str) -> None:
    if d.keys() != keys:
        extra = sorted(set(d) - keys)
        missing = sorted(keys - set(d))
        raise EncodingError(what, f"unexpected keys {extra} / missing keys {missing}")


# --- transactions ---------------------------------------------------------------------

_TX_KEYS = frozenset({"chain_id", "sender", "nonce", "module", "method", "args", "signature"})
MAX_TX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Tx:
    """A signed call of one module method."""

    chain_id: str
    """The chain this transaction is valid on (part of the signed bytes)."""
    sender: bytes
    """The sender's 32-byte ed25519 public key; the sender's address derives from it."""
    nonce: int
    """The sender's next sequence number: strictly 0, 1, 2, ... per account."""
    module: str
    """The module to call, e.g. ``bank``."""
    method: str
    """The method of that module, e.g. ``transfer``."""
    args: Mapping[str, JSONValue]
    """Method arguments: a canonical-JSON object (bytes as hex)."""
    signature: bytes
    """ed25519 signature over ``sign_bytes("tx", body)``."""
    wire: bytes = field(default=b"", compare=False, repr=False)
    """Canonical bytes of ``to_json()``: the leaf committed in ``tx_root`` (derived)."""
    hash: bytes = field(default=b"", compare=False)
    """SHA-256 of ``wire`` (derived)."""
    sender_address: str = field(default="", compare=False)
    """Address of ``sender`` (derived)."""

    def __post_init__(self) -> None:
        wire = canonical(self.to_json())
        object.__setattr__(self, "wire", wire)
        object.__setattr__(self, "hash", sha256(wire).digest())
        object.__setattr__(self, "sender_address", address(self.sender))

    def body(self) -> dict[str, JSONValue]:
        return {
            "chain_id": self.chain_id,
            "sender": self.sender.hex(),
            "nonce": self.nonce,
            "module": self.module,
            "method": self.method,
            "args": self.args,
        }

    def sign_bytes(self) -> bytes:
        return sign_bytes("tx", self.body())

    def to_json(self) -> dict[str, JSONValue]:
        body = self.body()
        body["signature"] = self.signature.hex()
        return body

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        chain_id: str,
        nonce: int,
        module: str,
        method: str,
        args: Mapping[str, JSONValue],
    ) -> Tx:
        """Build and sign a transaction."""
        check_value(args, "args")
        body = {
            "chain_id": chain_id,
            "sender": key.public_key.hex(),
            "nonce": nonce,
            "module": module,
            "method": method,
            "args": args,
        }
        sig = key.sign(sign_bytes("tx", body))
        return cls(chain_id, key.public_key, nonce, module, method, dict(args), sig)

    @classmethod
    def from_json(cls, d: object) -> Tx:
        o = _obj(d, "tx")
        _exact_keys(o, _TX_KEYS, "tx")
        args = o["args"]
        if not isinstance(args, Mapping):
            raise EncodingError("tx.args", "expected an object")
        check_value(args, "tx.args")
        tx = cls(
            chain_id=_str(o, "chain_id", "tx", 64),
            sender=_hex(o, "sender", "tx", 32),
            nonce=_int(o, "nonce", "tx"),
            module=_str(o, "module", "tx", 32),
            method=_str(o, "method", "tx", 64),
            args=dict(args),
            signature=_hex(o, "signature", "tx", 64),
        )
        if len(tx.wire) > MAX_TX_BYTES:
            raise EncodingError("tx", f"larger than {MAX_TX_BYTES} bytes")
        return tx


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Something a module did, committed in the block's ``event_root``.

    ``type`` is always ``<module>.<name>``: the chain prefixes the emitting module's name,
    so no module can emit an event that looks like another module's.
    """

    type: str
    """``<module>.<name>``, e.g. ``bank.transfer``."""
    attributes: Mapping[str, JSONValue]
    """Canonical-JSON attributes."""
    _leaf: bytes = field(init=False, default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        # Encoded once, at emission: a module emitting something that is not JSON fails
        # its own transaction (rolled back) instead of halting block production later.
        leaf = canonical({"type": self.type, "attributes": self.attributes})
        object.__setattr__(self, "_leaf", leaf)

    @property
    def module(self) -> str:
        return self.type.split(".", 1)[0]

    def to_json(self) -> dict[str, JSONValue]:
        # a copy: a caller editing the wire form must not edit a committed block's event
        return {"type": self.type, "attributes": dict(self.attributes)}

    def leaf(self) -> bytes:
        """Bytes committed in ``event_root``: ``canonical({"attributes":…, "type":…})``."""
        return self._leaf

    @classmethod
    def from_json(cls, d: object) -> Event:
        o = _obj(d, "event")
        _exact_keys(o, frozenset({"type", "attributes"}), "event")
        attrs = o["attributes"]
        if not isinstance(attrs, Mapping):
            raise EncodingError("event.attributes", "expected an object")
        check_value(attrs, "event.attributes")
        t = _str(o, "type", "event")
        if "." not in t:
            raise EncodingError("event.type", "expected <module>.<name>")
        return cls(t, dict(attrs))


# --- validators -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Validator:
    """A consensus participant."""

    public_key: bytes
    """32-byte ed25519 key that signs votes."""
    power: int
    """Voting power (> 0)."""

    def to_json(self) -> dict[str, JSONValue]:
        return {"public_key": self.public_key.hex(), "power": self.power}


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    """An ordered validator set (sorted by public key, no duplicates)."""

    validators: tuple[Validator, ...]
    """Members, sorted by public key."""
    total_power: int = field(default=0, compare=False)
    """Sum of voting power (derived)."""
    hash: bytes = field(default=b"", compare=False)
    """RFC 6962 root over ``canonical(validator.to_json())`` (derived)."""
    by_key: Mapping[bytes, int] = field(default_factory=dict, compare=False, repr=False)
    """Public key → power (derived)."""

    def __post_init__(self) -> None:
        vals = self.validators
        if not vals:
            raise EncodingError("validator set", "empty")
        keys = [v.public_key for v in vals]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise EncodingError("validator set", "not sorted by key or has duplicates")
        for v in vals:
            if len(v.public_key) != 32 or v.power <= 0 or v.power > 2**60:
                raise EncodingError("validator set", "bad key or power")
        object.__setattr__(self, "total_power", sum(v.power for v in vals))
        object.__setattr__(self, "hash", merkle_root([canonical(v.to_json()) for v in vals]))
        object.__setattr__(self, "by_key", {v.public_key: v.power for v in vals})

    @classmethod
    def of(cls, members: Sequence[tuple[bytes, int]]) -> ValidatorSet:
        return cls(tuple(Validator(k, p) for k, p in sorted(members)))

    def proposer(self, height: int) -> Validator:
        """Weighted round robin: each validator proposes ``power`` of every
        ``total_power`` consecutive heights."""
        slot = height % self.total_power
        for v in self.validators:
            if slot < v.power:
                return v
            slot -= v.power
        raise AssertionError("unreachable: slot < total_power")

    def to_json(self) -> list[JSONValue]:
        return [v.to_json() for v in self.validators]

    @classmethod
    def from_json(cls, d: object) -> ValidatorSet:
        if not isinstance(d, list) or not 0 < len(d) <= 256:
            raise EncodingError("validator set", "expected a list of 1..256 validators")
        vals = []
        for i, item in enumerate(d):
            o = _obj(item, f"validators[{i}]")
            _exact_keys(o, frozenset({"public_key", "power"}), f"validators[{i}]")
            vals.append(
                Validator(
                    _hex(o, "public_key", f"validators[{i}]", 32),
                    _int(o, "power", f"validators[{i}]", 1, 2**60),
                )
            )
        return cls(tuple(vals))


# --- headers and commits --------------------------------------------------------------

_HEADER_KEYS = frozenset(
    {
        "chain_id",
        "height",
        "time",
        "prev_hash",
        "tx_root",
        "tx_count",
        "event_root",
        "event_count",
        "state_root",
        "validators_hash",
        "next_validators_hash",
        "proposer",
    }
)
_POW_HEADER_KEYS = _HEADER_KEYS | {"target", "nonce"}
_POS_HEADER_KEYS = _HEADER_KEYS | {"slot", "seal"}


@dataclass(frozen=True, slots=True)
class Header:
    """What a light client needs of a block; its hash is what validators sign."""

    chain_id: str
    """The chain this header belongs to."""
    height: int
    """Block height, 1 for the first block."""
    time: int
    """Block time, Unix milliseconds, strictly increasing."""
    prev_hash: bytes
    """Hash of the previous header (the genesis hash at height 1)."""
    tx_root: bytes
    """RFC 6962 root over the block's transactions (``Tx.leaf``)."""
    tx_count: int
    """Number of transactions: a proof's tree size must equal it."""
    event_root: bytes
    """RFC 6962 root over the block's events (``Event.leaf``)."""
    event_count: int
    """Number of events: a proof's tree size must equal it."""
    state_root: bytes
    """Commitment to the state after this block (see ``chains.state``)."""
    validators_hash: bytes
    """Hash of the validator set that signs this header."""
    next_validators_hash: bytes
    """Hash of the validator set that signs the next header."""
    proposer: bytes
    """Public key of the proposer of this block (a PoW chain: the miner's)."""
    target: bytes = b""
    """PoW only: the 32-byte big-endian target the seal meets; empty, and then not
    encoded, on a BFT chain (whose headers and hashes are thus unchanged)."""
    nonce: int | None = None
    """PoW only: the seal (see ``chains.pow``); None, and then not encoded, otherwise."""
    slot: int | None = None
    """PoS only: the proposer's slot at this height (see ``chains.pos``); None, and then
    not encoded, otherwise."""
    seal: bytes = b""
    """PoS only: the proposer's 64-byte signature (see ``chains.pos``); empty, and then
    not encoded, otherwise."""

    def to_json(self) -> dict[str, JSONValue]:
        d = self._bft_json()
        if self.target:
            d["target"] = self.target.hex()
        if self.nonce is not None:
            d["nonce"] = self.nonce
        if self.slot is not None:
            d["slot"] = self.slot
        if self.seal:
            d["seal"] = self.seal.hex()
        return d

    def _bft_json(self) -> dict[str, JSONValue]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "time": self.time,
            "prev_hash": self.prev_hash.hex(),
            "tx_root": self.tx_root.hex(),
            "tx_count": self.tx_count,
            "event_root": self.event_root.hex(),
            "event_count": self.event_count,
            "state_root": self.state_root.hex(),
            "validators_hash": self.validators_hash.hex(),
            "next_validators_hash": self.next_validators_hash.hex(),
            "proposer": self.proposer.hex(),
        }

    @property
    def hash(self) -> bytes:
        """``SHA-256(canonical(header))``."""
        return sha256(canonical(self.to_json())).digest()

    @classmethod
    def from_json(cls, d: object) -> Header:
        o = _obj(d, "header")
        pow_seal = "nonce" in o or "target" in o
        pos_seal = "slot" in o or "seal" in o
        keys = _POS_HEADER_KEYS if pos_seal else _POW_HEADER_KEYS if pow_seal else _HEADER_KEYS
        _exact_keys(o, keys, "header")
        return cls(
            chain_id=_str(o, "chain_id", "header", 64),
            height=_int(o, "height", "header", 1),
            time=_int(o, "time", "header"),
            prev_hash=_hex(o, "prev_hash", "header", HASH),
            tx_root=_hex(o, "tx_root", "header", HASH),
            tx_count=_int(o, "tx_count", "header"),
            event_root=_hex(o, "event_root", "header", HASH),
            event_count=_int(o, "event_count", "header"),
            state_root=_hex(o, "state_root", "header", HASH),
            validators_hash=_hex(o, "validators_hash", "header", HASH),
            next_validators_hash=_hex(o, "next_validators_hash", "header", HASH),
            proposer=_hex(o, "proposer", "header", 32),
            target=_hex(o, "target", "header", HASH) if pow_seal else b"",
            nonce=_int(o, "nonce", "header") if pow_seal else None,
            slot=_int(o, "slot", "header") if pos_seal else None,
            seal=_hex(o, "seal", "header", 64) if pos_seal else b"",
        )


def vote_sign_bytes(chain_id: str, height: int, block_hash: bytes) -> bytes:
    """What a validator signs to commit a header (domain ``vote``)."""
    return sign_bytes(
        "vote", {"chain_id": chain_id, "height": height, "block_hash": block_hash.hex()}
    )


@dataclass(frozen=True, slots=True)
class CommitSig:
    """One validator's signature in a commit."""

    validator: bytes
    """The validator's public key."""
    signature: bytes
    """ed25519 signature over ``vote_sign_bytes(chain_id, height, block_hash)``."""

    def to_json(self) -> dict[str, JSONValue]:
        return {"validator": self.validator.hex(), "signature": self.signature.hex()}


@dataclass(frozen=True, slots=True)
class Commit:
    """Signatures of validators on one header."""

    height: int
    """Height of the committed header."""
    block_hash: bytes
    """``Header.hash`` of the committed header."""
    signatures: tuple[CommitSig, ...]
    """The validators' votes."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "height": self.height,
            "block_hash": self.block_hash.hex(),
            "signatures": [s.to_json() for s in self.signatures],
        }

    @classmethod
    def from_json(cls, d: object) -> Commit:
        o = _obj(d, "commit")
        _exact_keys(o, frozenset({"height", "block_hash", "signatures"}), "commit")
        sigs = o["signatures"]
        if not isinstance(sigs, list) or len(sigs) > 256:
            raise EncodingError("commit.signatures", "expected a list of at most 256")
        out = []
        for i, s in enumerate(sigs):
            so = _obj(s, f"commit.signatures[{i}]")
            _exact_keys(so, frozenset({"validator", "signature"}), f"commit.signatures[{i}]")
            out.append(
                CommitSig(
                    _hex(so, "validator", f"commit.signatures[{i}]", 32),
                    _hex(so, "signature", f"commit.signatures[{i}]", 64),
                )
            )
        return cls(
            _int(o, "height", "commit", 1), _hex(o, "block_hash", "commit", HASH), tuple(out)
        )


# --- receipts and blocks --------------------------------------------------------------


_RECEIPT_KEYS = frozenset(
    {"tx_hash", "height", "index", "ok", "code", "error", "first_event", "events"}
)


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one transaction in a committed block."""

    tx_hash: bytes
    """``Tx.hash``."""
    height: int
    """Height of the block that includes the transaction."""
    index: int
    """Position of the transaction in the block."""
    ok: bool
    """True when the call succeeded."""
    code: str
    """``ok``, or the failure's error class name, e.g. ``InsufficientFunds``."""
    error: str
    """One-line failure message ("" when ok)."""
    first_event: int
    """Index in the block's event list of this transaction's first event."""
    events: tuple[Event, ...]
    """Events emitted (none on failure)."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "tx_hash": self.tx_hash.hex(),
            "height": self.height,
            "index": self.index,
            "ok": self.ok,
            "code": self.code,
            "error": self.error,
            "first_event": self.first_event,
            "events": [e.to_json() for e in self.events],
        }

    @classmethod
    def from_json(cls, d: object) -> Receipt:
        o = _obj(d, "receipt")
        _exact_keys(o, _RECEIPT_KEYS, "receipt")
        events = o.get("events")
        if not isinstance(events, list):
            raise EncodingError("receipt.events", "expected a list")
        ok = o.get("ok")
        if not isinstance(ok, bool):
            raise EncodingError("receipt.ok", "expected a boolean")
        err = o.get("error")
        if not isinstance(err, str):
            raise EncodingError("receipt.error", "expected a string")
        return cls(
            tx_hash=_hex(o, "tx_hash", "receipt", HASH),
            height=_int(o, "height", "receipt", 1),
            index=_int(o, "index", "receipt"),
            ok=ok,
            code=_str(o, "code", "receipt"),
            error=err,
            first_event=_int(o, "first_event", "receipt"),
            events=tuple(Event.from_json(e) for e in events),
        )


@dataclass(frozen=True, slots=True)
class Block:
    """A committed block: header, its commit, transactions, receipts and events."""

    header: Header
    """The signed header."""
    commit: Commit
    """>2/3 of the validator set's signatures on ``header``."""
    txs: tuple[Tx, ...]
    """Transactions in execution order."""
    receipts: tuple[Receipt, ...]
    """One per transaction."""
    events: tuple[Event, ...]
    """All events of the block, in ``event_root`` order."""

    @property
    def height(self) -> int:
        return self.header.height

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "header": self.header.to_json(),
            "commit": self.commit.to_json(),
            "txs": [t.to_json() for t in self.txs],
            "receipts": [r.to_json() for r in self.receipts],
            "events": [e.to_json() for e in self.events],
        }

    @classmethod
    def from_json(cls, d: object) -> Block:
        o = _obj(d, "block")
        _exact_keys(o, frozenset({"header", "commit", "txs", "receipts", "events"}), "block")
        for k in ("txs", "receipts", "events"):
            if not isinstance(o[k], list):
                raise EncodingError(f"block.{k}", "expected a list")
        return cls(
            Header.from_json(o["header"]),
            Commit.from_json(o["commit"]),
            tuple(Tx.from_json(t) for t in o["txs"]),
            tuple(Receipt.from_json(r) for r in o["receipts"]),
            tuple(Event.from_json(e) for e in o["events"]),
        )

    def prove_event(self, index: int) -> EventProof:
        """Inclusion proof of event ``index`` against ``header.event_root``."""
        return self.prove_events([index])[0]

    def prove_events(self, indices: Iterable[int]) -> list[EventProof]:
        """Proofs of many events from one tree (``prove_event`` rebuilds it per call)."""
        wanted = list(indices)
        for index in wanted:
            if not 0 <= index < len(self.events):
                raise IndexError(f"block {self.height} has no event {index}")
        paths = inclusion_proofs([e.leaf() for e in self.events], wanted)
        return [
            EventProof(
                self.header.chain_id,
                self.height,
                index,
                len(self.events),
                self.events[index],
                tuple(path),
            )
            for index, path in zip(wanted, paths, strict=True)
        ]


@dataclass(frozen=True, slots=True)
class EventProof:
    """An event with its RFC 6962 audit path to a header's ``event_root``."""

    chain_id: str
    """Chain that committed the event."""
    height: int
    """Height of the header whose ``event_root`` the proof verifies against."""
    index: int
    """Position of the event in that block."""
    tree_size: int
    """Number of events in that block (must equal ``header.event_count``)."""
    event: Event
    """The event itself."""
    proof: tuple[bytes, ...]
    """Sibling hashes, deepest first."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "index": self.index,
            "tree_size": self.tree_size,
            "event": self.event.to_json(),
            "proof": [p.hex() for p in self.proof],
        }

    @classmethod
    def from_json(cls, d: object) -> EventProof:
        o = _obj(d, "event proof")
        keys = frozenset({"chain_id", "height", "index", "tree_size", "event", "proof"})
        _exact_keys(o, keys, "event proof")
        proof = o["proof"]
        if not isinstance(proof, list) or len(proof) > 64:
            raise EncodingError("event proof.proof", "expected a list of at most 64 hashes")
        return cls(
            _str(o, "chain_id", "event proof", 64),
            _int(o, "height", "event proof", 1),
            _int(o, "index", "event proof"),
            _int(o, "tree_size", "event proof"),
            Event.from_json(o["event"]),
            tuple(from_hex(p, f"event proof.proof[{i}]", HASH) for i, p in enumerate(proof)),
        )

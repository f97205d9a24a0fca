"""Bus payloads: topics, JSON shapes and their conversion to core types.

``docs/wire.md`` is the contract for third parties; this module is its implementation.

Topics (``{chain_id}`` is one topic level: ``[A-Za-z0-9_.-]{1,64}``)::

    interlock/v1/chains/{chain_id}/headers   QoS 1   one per height: header, commit, signing set
    interlock/v1/chains/{chain_id}/events    QoS 1   one or more per height: events with proofs
    interlock/v1/chains/{chain_id}/status    QoS 1, retained: online/offline, last height
    interlock/v1/chains/{chain_id}/reorgs    QoS 1   one per reorganisation: fork height, new tip

Every payload is a UTF-8 JSON object with ``"v": 1`` and a ``"kind"``. Events are sent
*with their RFC 6962 inclusion proofs* (not as a bare list to rebuild the tree from), so a
consumer can check any single event against the header's ``event_root`` without the
others; a block with many events is split over several ``events`` messages, each
self-contained.

Everything here treats input as hostile: a payload over :data:`MAX_PAYLOAD_BYTES` is
refused before parsing; anything else that is not exactly the documented shape raises a
:class:`WireError`. Decoding checks shape only — signatures and proofs are checked by
:mod:`chains.service.subscriber`, which raises the verification errors below.

Errors::

    InterlockError
    └── WireError                 a bus payload was rejected (it changed nothing)
        ├── PayloadTooLarge       over MAX_PAYLOAD_BYTES, refused unparsed
        ├── UnknownTopic          not an interlock/v1 chain topic
        ├── MalformedPayload      not JSON, or not the documented shape
        ├── UnsupportedVersion    "v" is not 1
        ├── WrongChain            payload of another chain than its topic / the subscriber's
        ├── UntrustedHeader       commit or validator set does not verify
        └── BadEventProof         an event does not prove against its verified header
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from chains.encoding import JSONValue, canonical, check_value
from chains.errors import EncodingError, InterlockError
from chains.merkle import inclusion_proofs
from chains.module import CHAIN_ID_PATTERN
from chains.pos import MAX_SLOT
from chains.types import (
    Block,
    Commit,
    CommitSig,
    Event,
    EventProof,
    Header,
    Validator,
    ValidatorSet,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "TOPIC_PREFIX",
    "WIRE_VERSION",
    "BadEventProof",
    "BlockEvents",
    "ChainReorg",
    "ChainStatus",
    "Envelope",
    "MalformedPayload",
    "PayloadTooLarge",
    "RawEvent",
    "SignedHeader",
    "UnknownTopic",
    "UnsupportedVersion",
    "UntrustedHeader",
    "WireError",
    "WrongChain",
    "all_chains_filter",
    "chain_filter",
    "decode",
    "decode_envelope",
    "decode_raw_event",
    "encode_events",
    "encode_header",
    "encode_reorg",
    "encode_status",
    "events_topic",
    "headers_topic",
    "open_envelope",
    "open_events",
    "parse_topic",
    "reorgs_topic",
    "status_topic",
]

WIRE_VERSION = 1
TOPIC_PREFIX = "interlock/v1"
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""Largest payload a receiver parses (a header with 256 validators is ~80 KB)."""
EVENTS_CHUNK_BYTES = 1024 * 1024
"""A publisher starts a new ``events`` message for a block past about this size."""
MAX_EVENTS_PER_MESSAGE = 65_536
MAX_VALIDATORS = 256

CHAIN_ID_RE = re.compile(f"^{CHAIN_ID_PATTERN}$")  # the one grammar (chains.module)
KINDS = ("headers", "events", "status", "reorgs")


# --- errors ---------------------------------------------------------------------------


class WireError(InterlockError):
    """A bus payload was rejected; nothing was changed by it."""


class PayloadTooLarge(WireError):
    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"payload of {size} bytes is over the {limit}-byte limit")


class UnknownTopic(WireError):
    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"not an interlock/v1 chain topic: {topic!r:.120}")


class MalformedPayload(WireError):
    def __init__(self, what: str, reason: str) -> None:
        self.what, self.reason = what, reason
        super().__init__(f"malformed {what} payload: {reason}")


class UnsupportedVersion(WireError):
    def __init__(self, got: object) -> None:
        self.got = got
        super().__init__(f"unsupported wire version {got!r:.40} (this reader speaks v1)")


class WrongChain(WireError):
    code = "wire_wrong_chain"  # chains.errors.WrongChain (a transaction's) is wrong_chain

    def __init__(self, expected: str, got: str) -> None:
        self.expected, self.got = expected, got
        super().__init__(f"payload is for chain {got!r}, expected {expected!r}")


class UntrustedHeader(WireError):
    def __init__(self, chain_id: str, height: int, reason: str) -> None:
        self.chain_id, self.height, self.reason = chain_id, height, reason
        super().__init__(f"header {chain_id}@{height} does not verify: {reason}")


class BadEventProof(WireError):
    def __init__(self, chain_id: str, height: int, index: int, reason: str) -> None:
        self.chain_id, self.height, self.index, self.reason = chain_id, height, index, reason
        super().__init__(f"event {index} of {chain_id}@{height} does not verify: {reason}")


# --- topics ---------------------------------------------------------------------------


def _check_chain_id(chain_id: str) -> str:
    if not CHAIN_ID_RE.match(chain_id):
        raise WrongChain("a chain id: a letter then up to 63 of [A-Za-z0-9._-]", chain_id)
    return chain_id


def headers_topic(chain_id: str) -> str:
    return f"{TOPIC_PREFIX}/chains/{_check_chain_id(chain_id)}/headers"


def events_topic(chain_id: str) -> str:
    return f"{TOPIC_PREFIX}/chains/{_check_chain_id(chain_id)}/events"


def status_topic(chain_id: str) -> str:
    return f"{TOPIC_PREFIX}/chains/{_check_chain_id(chain_id)}/status"


def reorgs_topic(chain_id: str) -> str:
    return f"{TOPIC_PREFIX}/chains/{_check_chain_id(chain_id)}/reorgs"


def chain_filter(chain_id: str) -> str:
    """Every topic of one chain."""
    return f"{TOPIC_PREFIX}/chains/{_check_chain_id(chain_id)}/+"


def all_chains_filter() -> str:
    return f"{TOPIC_PREFIX}/chains/+/+"


def parse_topic(topic: str) -> tuple[str, str]:
    """``interlock/v1/chains/{chain_id}/{kind}`` → ``(chain_id, kind)``."""
    parts = topic.split("/")
    if (
        len(parts) != 5
        or parts[0] != "interlock"
        or parts[1] != "v1"
        or parts[2] != "chains"
        or parts[4] not in KINDS
        or not CHAIN_ID_RE.match(parts[3])
    ):
        raise UnknownTopic(topic)
    return parts[3], parts[4]


# --- pydantic shapes (the edge) -------------------------------------------------------

Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Sig = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
ChainId = Annotated[str, StringConstraints(pattern=f"^{CHAIN_ID_PATTERN}$")]
Height = Annotated[int, Field(ge=1, le=2**63 - 1)]
Version = Annotated[int, Field(ge=WIRE_VERSION, le=WIRE_VERSION)]  # strict: not true, not 1.0
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class HeaderModel(_Model):
    chain_id: ChainId
    height: Height
    time: Count
    prev_hash: Hash
    tx_root: Hash
    tx_count: Count
    event_root: Hash
    event_count: Count
    state_root: Hash
    validators_hash: Hash
    next_validators_hash: Hash
    proposer: Hash
    target: Hash | None = None  # proof of work only (docs/wire.md): both or neither
    nonce: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    slot: Annotated[int, Field(ge=0, le=MAX_SLOT)] | None = None  # proof of stake only:
    seal: Sig | None = None  # both or neither, never with target and nonce


class CommitSigModel(_Model):
    validator: Hash
    signature: Sig


class CommitModel(_Model):
    height: Height
    block_hash: Hash
    signatures: Annotated[list[CommitSigModel], Field(max_length=MAX_VALIDATORS)]


class ValidatorModel(_Model):
    public_key: Hash
    power: Annotated[int, Field(ge=1, le=2**60)]


class HeaderPayload(_Model):
    """``chains/{chain_id}/headers``: a signed header with the set that signed it."""

    v: Version
    kind: Literal["header"]
    header: HeaderModel
    commit: CommitModel
    validators: Annotated[list[ValidatorModel], Field(min_length=1, max_length=MAX_VALIDATORS)]


class EventModel(_Model):
    type: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{3,128}$")]
    attributes: dict[str, Any]


class ProvenEventModel(_Model):
    index: Count
    event: EventModel
    proof: Annotated[list[Hash], Field(max_length=64)]


class EventsPayload(_Model):
    """``chains/{chain_id}/events``: some or all events of one block, each with its proof."""

    v: Version
    kind: Literal["events"]
    chain_id: ChainId
    height: Height
    block_hash: Hash
    event_count: Count
    events: Annotated[list[ProvenEventModel], Field(max_length=MAX_EVENTS_PER_MESSAGE)]


class StatusPayload(_Model):
    """``chains/{chain_id}/status`` (retained): is the chain's publisher up, and where."""

    v: Version
    kind: Literal["status"]
    chain_id: ChainId
    state: Literal["online", "offline"]
    height: Count | None
    time: Count | None


class ReorgPayload(_Model):
    """``chains/{chain_id}/reorgs``: the chain's publisher saw its node replace the blocks
    above ``fork_height`` (a branch with more work). A claim, not a proof."""

    v: Version
    kind: Literal["reorg"]
    chain_id: ChainId
    fork_height: Count
    old_height: Height
    new_height: Height
    new_tip: Hash
    time: Count


# --- core-side values -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """A header message: not yet verified."""

    header: Header
    """The header."""
    commit: Commit
    """Signatures claimed to be on it."""
    validators: ValidatorSet
    """The set claimed to have signed it (must hash to ``header.validators_hash``)."""

    @property
    def chain_id(self) -> str:
        return self.header.chain_id

    @property
    def height(self) -> int:
        return self.header.height


@dataclass(frozen=True, slots=True)
class BlockEvents:
    """An events message: some events of one block, each with its audit path. Unverified."""

    chain_id: str
    """The chain."""
    height: int
    """The block height."""
    block_hash: bytes
    """``Header.hash`` of the block the events belong to."""
    event_count: int
    """Events in the whole block (the tree size)."""
    proofs: tuple[EventProof, ...]
    """The events carried by this message, with their proofs."""


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """A status message (informational: it proves nothing)."""

    chain_id: str
    """The chain."""
    state: str
    """``online`` or ``offline``."""
    height: int | None
    """The publisher's last published height, if known."""
    time: int | None
    """Unix ms when the status was written, if known."""


@dataclass(frozen=True, slots=True)
class ChainReorg:
    """A reorg message (informational: a follower checks the chain's branch itself)."""

    chain_id: str
    """The chain."""
    fork_height: int
    """The last height both branches share; the blocks above it were replaced."""
    old_height: int
    """The tip that was replaced."""
    new_height: int
    """The new branch's tip."""
    new_tip: bytes
    """``Header.hash`` of the new tip."""
    time: int
    """Unix ms when the publisher saw it."""


Decoded = SignedHeader | BlockEvents | ChainStatus | ChainReorg


# --- decoding -------------------------------------------------------------------------


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "payload"
    return f"{loc}: {err['msg']}"[:200]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A payload parsed as JSON with only its cheap fields checked: not yet its shape.

    What a receiver needs to throw a message away before paying for the full shape check
    (pydantic over every event costs ~20 us an event; a 4 MiB payload of tiny events, over
    a second): the chain, the kind, the height and, for events, the block it claims.
    """

    chain_id: str
    """The chain of the topic (the payload's own chain id agrees with it)."""
    kind: str
    """The topic's kind: ``headers``, ``events``, ``status`` or ``reorgs``."""
    height: int | None
    """The height claimed (a status may carry none)."""
    size: int
    """Payload bytes."""
    block_hash: str | None
    """Events: the hex hash of the block claimed."""
    event_count: int | None
    """Events: the block's event count claimed."""
    items: int
    """Events carried (events), validators carried (headers), 0 (status)."""
    obj: dict[str, Any]
    """The parsed JSON object, for :func:`decode_envelope`."""


def _int_field(kind: str, obj: dict[str, Any], key: str, low: int) -> int:
    v = obj.get(key)
    if type(v) is not int or not low <= v <= 2**63 - 1:  # not true, not 1.0
        raise MalformedPayload(kind, f"{key}: expected an integer >= {low}")
    return v


def _list_field(kind: str, obj: dict[str, Any], key: str, most: int) -> int:
    v = obj.get(key)
    if not isinstance(v, list):
        raise MalformedPayload(kind, f"{key}: expected a list")
    if len(v) > most:
        raise MalformedPayload(kind, f"{key}: more than {most} items")
    return len(v)


def open_envelope(topic: str, payload: bytes) -> Envelope:
    """Size, topic, JSON, version, chain id, height and counts; raises a :class:`WireError`.

    Costs one C-speed JSON parse and a few dictionary reads, whatever the payload holds.
    A message this refuses, :func:`decode` would have refused too.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(len(payload), MAX_PAYLOAD_BYTES)
    chain_id, kind = parse_topic(topic)
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise MalformedPayload(kind, f"not JSON ({str(err).split(':')[0]})") from None
    if not isinstance(obj, dict):
        raise MalformedPayload(kind, "expected a JSON object")
    version = obj.get("v")
    if type(version) is not int or version != WIRE_VERSION:  # not 1.0, not true
        raise UnsupportedVersion(version)
    where = obj.get("header") if kind == "headers" else obj
    if not isinstance(where, dict):
        raise MalformedPayload(kind, "header: expected an object")
    claimed = where.get("chain_id")
    if not isinstance(claimed, str) or not CHAIN_ID_RE.match(claimed):
        raise MalformedPayload(kind, "chain_id: expected [A-Za-z0-9_.-]{1,64}")
    if claimed != chain_id:
        raise WrongChain(chain_id, claimed)
    block_hash: str | None = None
    event_count: int | None = None
    items = 0
    if kind == "status":
        height = None if obj.get("height") is None else _int_field(kind, obj, "height", 0)
    elif kind == "reorgs":
        height = _int_field(kind, obj, "fork_height", 0)
    elif kind == "headers":
        height = _int_field(kind, where, "height", 1)
        items = _list_field(kind, obj, "validators", MAX_VALIDATORS)
    else:
        height = _int_field(kind, obj, "height", 1)
        event_count = _int_field(kind, obj, "event_count", 0)
        items = _list_field(kind, obj, "events", MAX_EVENTS_PER_MESSAGE)
        if items > event_count:  # a block's events cannot outnumber its count
            raise MalformedPayload(kind, f"events: more than event_count {event_count}")
        bh = obj.get("block_hash")
        if not isinstance(bh, str):
            raise MalformedPayload(kind, "block_hash: expected a hex string")
        block_hash = bh
    return Envelope(chain_id, kind, height, len(payload), block_hash, event_count, items, obj)


def decode_envelope(env: Envelope) -> Decoded:
    """The full shape check of an opened payload, into core values (a :class:`WireError`
    otherwise). The version is checked already, so a failure here is about the shape."""
    kind = env.kind
    try:
        parsed = _MODELS[kind].model_validate(env.obj)
    except ValidationError as exc:
        raise MalformedPayload(kind, _first_error(exc)) from None
    try:
        if isinstance(parsed, HeaderPayload):
            return _signed_header(env.chain_id, parsed)
        if isinstance(parsed, EventsPayload):
            return _block_events(env.chain_id, parsed)
        if isinstance(parsed, ReorgPayload):
            return _reorg(env.chain_id, parsed)
        assert isinstance(parsed, StatusPayload)
        return _status(env.chain_id, parsed)
    except EncodingError as exc:
        raise MalformedPayload(kind, str(exc)) from None


def decode(topic: str, payload: bytes) -> Decoded:
    """Parse one bus message into core values, or raise a :class:`WireError`.

    Order matters: the size check comes before any parsing, the cheap checks of
    :func:`open_envelope` (version first, so a v2 payload is reported as a version
    problem, not as noise) before the full shape check.
    """
    return decode_envelope(open_envelope(topic, payload))


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One entry of an ``events`` message, opened without its shape check. Unverified:
    its ``leaf`` is the event's canonical bytes as carried, so once that leaf proves
    against a verified header's ``event_root``, the entry *is* the chain's event (the
    chain commits canonical bytes only, and canonical bytes parse back to one value), its
    ``type`` included; before that, nothing in it is true."""

    index: int
    """The position claimed."""
    type: str
    """The event's type as carried."""
    leaf: bytes
    """``canonical(event)`` of the event as carried: its Merkle leaf, if genuine."""
    entry: dict[str, Any]
    """The parsed entry (``index``, ``event``, ``proof``), for :func:`decode_raw_event`."""

    def proof(self) -> tuple[bytes, ...]:
        """The audit path carried with the entry (shape checked, not verified)."""
        path = self.entry.get("proof")
        if not isinstance(path, list) or len(path) > 64:
            raise MalformedPayload("events", "proof: expected a list of at most 64 hashes")
        try:
            out = tuple(bytes.fromhex(h) for h in path)
        except (TypeError, ValueError):
            raise MalformedPayload("events", "proof: expected hex hashes") from None
        if any(len(h) != 32 for h in out):
            raise MalformedPayload("events", "proof: expected 32-byte hashes")
        return out


def open_events(env: Envelope) -> list[RawEvent]:
    """The entries of an opened ``events`` payload at the cost of one C-speed re-encode
    each: no shape check of the events (the pydantic one costs ~20 us an event), which a
    reader pays with :func:`decode_raw_event` only for the events it acts on, after their
    leaves proved. Raises :class:`MalformedPayload` for entries that cannot be leaves."""
    out = []
    for e in env.obj["events"]:  # a list: open_envelope checked it
        if not isinstance(e, dict):
            raise MalformedPayload("events", "events: expected objects")
        index, event = e.get("index"), e.get("event")
        if type(index) is not int or not 0 <= index < 2**63:
            raise MalformedPayload("events", "index: expected an integer >= 0")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedPayload("events", "event: expected an object with a type")
        try:
            leaf = canonical(event)
        except EncodingError as exc:
            raise MalformedPayload("events", str(exc)) from None
        out.append(RawEvent(index, event["type"], leaf, e))
    return out


def decode_raw_event(raw: RawEvent) -> Event:
    """The full shape check of one entry's event, into a core :class:`Event`."""
    try:
        model = EventModel.model_validate(raw.entry["event"])
    except ValidationError as exc:
        raise MalformedPayload("events", _first_error(exc)) from None
    try:
        return _event(model)
    except EncodingError as exc:
        raise MalformedPayload("events", str(exc)) from None


_MODELS: dict[str, type[HeaderPayload | EventsPayload | StatusPayload | ReorgPayload]] = {
    "headers": HeaderPayload,
    "events": EventsPayload,
    "status": StatusPayload,
    "reorgs": ReorgPayload,
}


def _signed_header(topic_chain: str, p: HeaderPayload) -> SignedHeader:
    h, c = p.header, p.commit
    if h.chain_id != topic_chain:
        raise WrongChain(topic_chain, h.chain_id)
    if (h.target is None) != (h.nonce is None):
        raise MalformedPayload("header", "a proof-of-work header carries both target and nonce")
    if (h.slot is None) != (h.seal is None):
        raise MalformedPayload("header", "a proof-of-stake header carries both slot and seal")
    if h.slot is not None and h.nonce is not None:
        raise MalformedPayload("header", "a header is sealed by work or by stake, not both")
    # The shapes are validated above; build the core values without a second pass.
    header = Header(
        h.chain_id,
        h.height,
        h.time,
        bytes.fromhex(h.prev_hash),
        bytes.fromhex(h.tx_root),
        h.tx_count,
        bytes.fromhex(h.event_root),
        h.event_count,
        bytes.fromhex(h.state_root),
        bytes.fromhex(h.validators_hash),
        bytes.fromhex(h.next_validators_hash),
        bytes.fromhex(h.proposer),
        b"" if h.target is None else bytes.fromhex(h.target),
        h.nonce,
        h.slot,
        b"" if h.seal is None else bytes.fromhex(h.seal),
    )
    commit = Commit(
        c.height,
        bytes.fromhex(c.block_hash),
        tuple(
            CommitSig(bytes.fromhex(s.validator), bytes.fromhex(s.signature)) for s in c.signatures
        ),
    )
    # ValidatorSet checks order, duplicates and powers (EncodingError).
    validators = ValidatorSet(
        tuple(Validator(bytes.fromhex(v.public_key), v.power) for v in p.validators)
    )
    return SignedHeader(header, commit, validators)


def _event(e: EventModel) -> Event:
    if "." not in e.type:
        raise EncodingError("event.type", "expected <module>.<name>")
    check_value(e.attributes, "event.attributes")
    return Event(e.type, e.attributes)


def _block_events(topic_chain: str, p: EventsPayload) -> BlockEvents:
    if p.chain_id != topic_chain:
        raise WrongChain(topic_chain, p.chain_id)
    proofs = tuple(
        EventProof(
            p.chain_id,
            p.height,
            e.index,
            p.event_count,
            _event(e.event),
            tuple(bytes.fromhex(h) for h in e.proof),
        )
        for e in p.events
    )
    return BlockEvents(p.chain_id, p.height, bytes.fromhex(p.block_hash), p.event_count, proofs)


def _status(topic_chain: str, p: StatusPayload) -> ChainStatus:
    if p.chain_id != topic_chain:
        raise WrongChain(topic_chain, p.chain_id)
    return ChainStatus(p.chain_id, p.state, p.height, p.time)


def _reorg(topic_chain: str, p: ReorgPayload) -> ChainReorg:
    if p.chain_id != topic_chain:
        raise WrongChain(topic_chain, p.chain_id)
    if not p.fork_height < p.old_height or not p.fork_height < p.new_height:
        raise MalformedPayload("reorgs", "old_height and new_height must be above fork_height")
    return ChainReorg(
        p.chain_id, p.fork_height, p.old_height, p.new_height, bytes.fromhex(p.new_tip), p.time
    )


# --- encoding -------------------------------------------------------------------------


def encode_header(block: Block, validators: ValidatorSet) -> bytes:
    """The ``headers`` payload of a committed block and the set that signed it."""
    return canonical(
        {
            "v": WIRE_VERSION,
            "kind": "header",
            "header": block.header.to_json(),
            "commit": block.commit.to_json(),
            "validators": validators.to_json(),
        }
    )


def encode_events(block: Block, chunk_bytes: int = EVENTS_CHUNK_BYTES) -> list[bytes]:
    """The ``events`` payloads of a block: at least one (an empty block sends ``[]``)."""
    header = block.header
    leaves = [e.leaf() for e in block.events]
    paths = inclusion_proofs(leaves, range(len(leaves)))
    base: dict[str, JSONValue] = {
        "v": WIRE_VERSION,
        "kind": "events",
        "chain_id": header.chain_id,
        "height": header.height,
        "block_hash": block.commit.block_hash.hex(),
        "event_count": len(block.events),
    }
    chunks: list[list[JSONValue]] = [[]]
    size = 0
    for i, (event, path) in enumerate(zip(block.events, paths, strict=True)):
        item = {"index": i, "event": event.to_json(), "proof": [p.hex() for p in path]}
        item_size = len(canonical(event.to_json())) + 67 * len(path) + 48
        if chunks[-1] and (size + item_size > chunk_bytes or len(chunks[-1]) >= 16_384):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return [canonical({**base, "events": c}) for c in chunks]


def encode_status(
    chain_id: str, state: Literal["online", "offline"], height: int | None, time: int | None
) -> bytes:
    return canonical(
        {
            "v": WIRE_VERSION,
            "kind": "status",
            "chain_id": _check_chain_id(chain_id),
            "state": state,
            "height": height,
            "time": time,
        }
    )


def encode_reorg(
    chain_id: str, fork_height: int, old_height: int, new_tip: Header, time: int
) -> bytes:
    """The ``reorgs`` payload: the blocks above ``fork_height`` (up to ``old_height``)
    were replaced by a branch ending with ``new_tip``."""
    return canonical(
        {
            "v": WIRE_VERSION,
            "kind": "reorg",
            "chain_id": _check_chain_id(chain_id),
            "fork_height": fork_height,
            "old_height": old_height,
            "new_height": new_tip.height,
            "new_tip": new_tip.hash.hex(),
            "time": time,
        }
    )

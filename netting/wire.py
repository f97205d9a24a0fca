"""Netting messages on the bus: topics, the JSON shape, and its conversion to
:class:`~netting.protocol.Envelope` (the edge: pydantic here, nowhere in the core).

Topics (``{round_id}``: ``[a-z0-9][a-z0-9._-]{0,63}``; ``{party}``: the sender's index)::

    interlock/v1/netting/{round_id}/{phase}/{party}   QoS 1, retained (cleared at the end)
    phase ∈ share | complain | answer | sum

A payload is one JSON object, exactly the signed value of
:meth:`Envelope.signed_value` plus ``"sig"`` (hex): ``round``, ``phase``, ``from``,
``commit`` (hex points), ``against``, ``answered`` (party indices), ``pairs`` (hex scalar
pairs), ``boxes`` (hex ``crypto_box`` ciphertexts, ``""`` at the sender's index).

Strangers can publish here, so a payload is refused **unparsed** if it is larger than
:func:`max_payload` allows for the round (a bound from ``n``, ``t`` and the packing), and
the topic must name the same round, phase and sender as the payload. Shape only: the
signature and everything else are the core's to check.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from netting import group
from netting.errors import BadPoint, MessageRefused
from netting.protocol import BOX_OVERHEAD, Envelope, Phase, RoundSpec
from netting.sharing import MAX_PARTIES

__all__ = [
    "TOPIC_PREFIX",
    "decode_envelope",
    "encode_envelope",
    "max_payload",
    "round_filter",
    "topic_for",
]

TOPIC_PREFIX = "interlock/v1/netting"

_Hex32 = Annotated[str, StringConstraints(min_length=64, max_length=64, pattern=r"^[0-9a-f]*$")]
_Hex64 = Annotated[str, StringConstraints(min_length=128, max_length=128, pattern=r"^[0-9a-f]*$")]
_HexBox = Annotated[str, StringConstraints(max_length=1 << 16, pattern=r"^(?:[0-9a-f]{2})*$")]
_Index = Annotated[int, Field(ge=0, lt=MAX_PARTIES)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    round: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    phase: Literal["share", "complain", "answer", "sum"]
    sender: _Index = Field(alias="from")
    commit: list[_Hex32] = Field(max_length=MAX_PARTIES * MAX_PARTIES)
    against: list[_Index] = Field(max_length=MAX_PARTIES)
    answered: list[_Index] = Field(max_length=MAX_PARTIES)
    pairs: list[list[_Hex32]] = Field(max_length=MAX_PARTIES * MAX_PARTIES)
    boxes: list[_HexBox] = Field(max_length=MAX_PARTIES)
    sig: _Hex64


def topic_for(round_id: str, phase: Phase, sender: int) -> str:
    return f"{TOPIC_PREFIX}/{round_id}/{phase}/{sender}"


def round_filter(round_id: str) -> str:
    """Every message of one round."""
    return f"{TOPIC_PREFIX}/{round_id}/#"


def max_payload(spec: RoundSpec) -> int:
    """The largest payload an honest party of ``spec`` can send (hex doubles bytes)."""
    n, t1, width = spec.n, spec.threshold + 1, spec.width
    box = BOX_OVERHEAD + 32 + width * 2 * group.SCALAR_SIZE
    share = n * (2 * box + 3) + width * t1 * 67
    answer = (n - 1) * (4 + width * 135)
    return 1024 + max(share, answer)


def encode_envelope(env: Envelope) -> bytes:
    value = env.signed_value()
    value["sig"] = env.signature.hex()
    return orjson.dumps(value)


def decode_envelope(topic: str, payload: bytes, spec: RoundSpec) -> Envelope:
    """The envelope a payload carries; raises :class:`MessageRefused` (``oversize``,
    ``malformed`` or ``topic``) for anything else."""
    if len(payload) > max_payload(spec):
        raise MessageRefused("oversize", f"{len(payload)} bytes on {topic:.100}")
    try:
        w = _Wire.model_validate_json(payload)
    except ValidationError as exc:
        raise MessageRefused("malformed", str(exc.errors()[0].get("msg", ""))) from None
    phase = Phase(w.phase)
    if topic != topic_for(w.round, phase, w.sender):
        raise MessageRefused("topic", f"{topic:.100}")
    if any(len(p) != 2 for p in w.pairs):
        raise MessageRefused("malformed", "a pair has two scalars")
    try:
        pairs = tuple(
            (
                group.from_scalar_bytes(bytes.fromhex(s)),
                group.from_scalar_bytes(bytes.fromhex(r)),
            )
            for s, r in w.pairs
        )
    except BadPoint as exc:  # a scalar not reduced mod L
        raise MessageRefused("malformed", str(exc)) from None
    return Envelope(
        w.round,
        phase,
        w.sender,
        commitments=tuple(bytes.fromhex(c) for c in w.commit),
        against=tuple(w.against),
        answered=tuple(w.answered),
        pairs=pairs,
        boxes=tuple(bytes.fromhex(b) for b in w.boxes),
        signature=bytes.fromhex(w.sig),
    )

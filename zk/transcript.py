"""A domain-separated Fiat–Shamir transcript, in the spirit of Merlin.

Merlin (merlin.cool) runs STROBE-128 over Keccak; no maintained binding of either is
installed, so this transcript keeps Merlin's interface and guarantees with SHA-512, the
hash the group's libsodium already uses:

* The state is one running SHA-512. It starts with the frame
  ``("dom-sep", b"interlock/zk/v1" + label)``, so a transcript for one protocol never
  meets another's challenges.
* Every append is a frame ``u32le(len(label)) ‖ label ‖ u32le(len(data)) ‖ data``: the
  framing is injective, so two different sequences of appends never hash alike.
* A challenge hashes a copy of the state with the frame ``("challenge", label)``, takes
  the 64-byte digest, and then appends that digest to the state itself: every later
  challenge depends on every earlier one, as in Merlin. A scalar challenge is the digest
  read little endian, reduced mod ``L`` (bias below 2^-250).

A proof is bound to everything the caller appended before it (the chain id, the
transaction's sender and nonce, the statement), so a proof replayed under another
transcript meets another challenge and is rejected. A ``Transcript`` is the one mutable
object of this package: prover and verifier each build theirs from the same appends.
"""

from __future__ import annotations

import hashlib

from zk.group import L, encode_scalar

__all__ = ["PROTOCOL", "Transcript"]

PROTOCOL = b"interlock/zk/v1"


def _frame(label: bytes, data: bytes) -> bytes:
    return len(label).to_bytes(4, "little") + label + len(data).to_bytes(4, "little") + data


class Transcript:
    """The running transcript of one statement and its proofs."""

    __slots__ = ("_state",)

    def __init__(self, label: bytes) -> None:
        self._state = hashlib.sha512(_frame(b"dom-sep", PROTOCOL + label))

    def append_message(self, label: bytes, data: bytes) -> None:
        self._state.update(_frame(label, data))

    def append_point(self, label: bytes, point: bytes) -> None:
        self.append_message(label, point)

    def append_scalar(self, label: bytes, k: int) -> None:
        self.append_message(label, encode_scalar(k))

    def append_u64(self, label: bytes, n: int) -> None:
        self.append_message(label, n.to_bytes(8, "little"))

    def challenge_bytes(self, label: bytes) -> bytes:
        """64 bytes that depend on every append so far; they are appended in turn."""
        fork = self._state.copy()
        fork.update(_frame(b"challenge", label))
        out = fork.digest()
        self._state.update(_frame(b"challenge-output", out))
        return out

    def challenge_scalar(self, label: bytes) -> int:
        return int.from_bytes(self.challenge_bytes(label), "little") % L

    def clone(self) -> Transcript:
        """An independent copy (a verifier that checks several proofs from one point)."""
        other = Transcript.__new__(Transcript)
        other._state = self._state.copy()
        return other

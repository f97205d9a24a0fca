"""Errors of the zero-knowledge package.

Every error keeps the offending values as attributes and renders as one line.

    InterlockError
    └── ZkError                  a proof, key or ciphertext cannot be used
        ├── MalformedEncoding    bytes that are not what the format says: wrong length, a
        │                        point off the curve or outside the prime-order group, a
        │                        non-canonical encoding, a scalar not reduced mod L, the
        │                        identity where it is forbidden
        ├── ProofRejected        well-formed, but the proof does not verify (a forgery, a
        │                        tampered statement, or a proof made under another transcript)
        └── InvalidWitness       the prover was asked to prove something false (an amount
                                 out of range, a key that does not match); nothing is made
"""

from __future__ import annotations

from chains.errors import InterlockError

__all__ = ["InvalidWitness", "MalformedEncoding", "ProofRejected", "ZkError"]


class ZkError(InterlockError):
    """A proof, key or ciphertext cannot be used."""


class MalformedEncoding(ZkError):
    def __init__(self, what: str, reason: str) -> None:
        self.what, self.reason = what, reason
        super().__init__(f"malformed {what}: {reason}")


class ProofRejected(ZkError):
    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason
        super().__init__(f"{kind} proof rejected: {reason}")


class InvalidWitness(ZkError):
    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason
        super().__init__(f"cannot prove {kind}: {reason}")

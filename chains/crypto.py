"""ed25519 keys, signatures and addresses: the one seam over the crypto backend.

Backend chosen by measurement (``bench/ledger.py`` prints both rates): libsodium through
PyNaCl verifies about twice as many signatures per second as ``cryptography`` on this
machine. Only this module imports either library.

An address is ``hex(SHA-256(b"interlock/v1/addr\\x00" ‖ public_key)[:20])``: 40 lowercase
hex digits. Module accounts (escrows) use :func:`module_address`, which no key can own.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature as _CgInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError, CryptoError

__all__ = [
    "BACKEND",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "PrivateKey",
    "address",
    "module_address",
    "verify",
    "verify_with_cryptography",
]

BACKEND = "pynacl"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """An ed25519 signing key."""

    seed: bytes = field(repr=False)
    """The 32-byte secret seed."""
    public_key: bytes = b""
    """The 32-byte public key (derived)."""
    _sk: bytes = field(default=b"", repr=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        pk, sk = crypto_sign_seed_keypair(seed)
        return cls(seed=seed, public_key=pk, _sk=sk)

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls.from_seed(os.urandom(32))

    @classmethod
    def derive(cls, *labels: str) -> PrivateKey:
        """Deterministic key for devnets and tests: never use for real funds."""
        return cls.from_seed(hashlib.sha256("/".join(labels).encode()).digest())

    @property
    def address(self) -> str:
        return address(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return crypto_sign(message, self._sk)[:SIGNATURE_SIZE]


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid ed25519 signature. Never raises."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


def verify_with_cryptography(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """The same check through ``cryptography``; kept for the backend benchmark."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (_CgInvalidSignature, ValueError):
        return False
    return True


def address(public_key: bytes) -> str:
    return hashlib.sha256(b"interlock/v1/addr\x00" + public_key).digest()[:20].hex()


def module_address(module: str, *sub: str) -> str:
    """Address of a module-owned account (escrow); no private key maps to it."""
    label = "/".join((module, *sub)).encode()
    return hashlib.sha256(b"interlock/v1/module\x00" + label).digest()[:20].hex()

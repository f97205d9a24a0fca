"""Errors of the user's side: the keystore, the commands that read and write chains, and
a chain process that stops.

Each renders as one line a user can act on; each keeps the offending values.

    InterlockError (chains.errors)
    ├── CommandError                  a command the user gave cannot be carried out
    │   ├── KeystoreError             the keystore refused
    │   │   ├── BadKeyName
    │   │   ├── KeyNotFound
    │   │   ├── KeyExists
    │   │   ├── WrongPassphrase
    │   │   ├── KeystoreCorrupt
    │   │   └── UnsupportedKeystoreVersion
    │   ├── BadAmount                 ``100usd`` that does not parse
    │   ├── UnknownChain              a chain no config or flag names
    │   ├── ChainUnreachable          its RPC did not answer
    │   ├── NotFound                  a tx, block, client or transfer the chain does not have
    │   ├── WrongSwapKey              a swap store's sealed secret does not open with this key
    │   └── SwapKeyNeeded             a swap's secret cannot be stored without a key to seal it
    └── ChainFailed                   a node of this process stopped producing blocks: exit 1
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chains.errors import InterlockError

__all__ = [
    "BadAmount",
    "BadKeyName",
    "ChainFailed",
    "ChainUnreachable",
    "CommandError",
    "KeyExists",
    "KeyNotFound",
    "KeystoreCorrupt",
    "KeystoreError",
    "NotFound",
    "SwapKeyNeeded",
    "UnknownChain",
    "UnsupportedKeystoreVersion",
    "WrongPassphrase",
    "WrongSwapKey",
]


class CommandError(InterlockError):
    """A command the user gave cannot be carried out; nothing was submitted."""


class ChainFailed(InterlockError):
    """A node stopped producing blocks (fail-stop): the process exits 1, so a supervisor
    restarts it; the restart resumes at the last persisted block."""

    def __init__(self, chain_ids: Sequence[str]) -> None:
        self.chain_ids = tuple(chain_ids)
        super().__init__(f"{', '.join(chain_ids)} stopped producing blocks (see the log)")


# --- keystore --------------------------------------------------------------------------


class KeystoreError(CommandError):
    """The keystore refused; the files on disk are as they were."""


class BadKeyName(KeystoreError):
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"bad key name {name[:80]!r}: {reason}")


class KeyNotFound(KeystoreError):
    def __init__(self, name: str, where: Path) -> None:
        self.name = name
        self.where = where
        super().__init__(f"no key {name!r} in {where} (see 'interlock keys list')")


class KeyExists(KeystoreError):
    def __init__(self, name: str, where: Path) -> None:
        self.name = name
        self.where = where
        super().__init__(f"key {name!r} already exists in {where}; delete it first")


class WrongPassphrase(KeystoreError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"wrong passphrase for key {name!r}")


class KeystoreCorrupt(KeystoreError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"keystore file {path} is unusable: {reason}")


class UnsupportedKeystoreVersion(KeystoreError):
    def __init__(self, path: Path, version: object) -> None:
        self.path = path
        self.version = version
        super().__init__(
            f"keystore file {path} has version {str(version)[:20]!r}, which this interlock "
            "does not read (upgrade interlock)"
        )


# --- commands --------------------------------------------------------------------------


class BadAmount(CommandError):
    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"bad amount {text[:80]!r}: {reason}")


class UnknownChain(CommandError):
    def __init__(self, chain_id: str, known: tuple[str, ...] = ()) -> None:
        self.chain_id = chain_id
        self.known = known
        hint = f" (known: {', '.join(known)})" if known else ""
        super().__init__(f"unknown chain {chain_id[:80]!r}{hint}")


class ChainUnreachable(CommandError):
    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"chain RPC at {where} unreachable: {reason}")


class NotFound(CommandError):
    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"not found: {what}")


class WrongSwapKey(CommandError):
    def __init__(self, path: Path, swap_id: str) -> None:
        self.path, self.swap_id = path, swap_id
        super().__init__(
            f"swap store {path}: the secret of swap {swap_id[:16]}... does not open with this "
            "key (written with another key, or edited)"
        )


class SwapKeyNeeded(CommandError):
    def __init__(self, path: Path, swap_id: str) -> None:
        self.path, self.swap_id = path, swap_id
        super().__init__(
            f"swap store {path}: swap {swap_id[:16]}... has a secret and the store no key "
            "to seal it with"
        )


# --- swap offers (interlock.offers) ----------------------------------------------------
#
#   InterlockError
#   └── OfferError                a swap offer message refused; nothing recorded
#       ├── OversizedMessage      longer than the limit (refused before parsing)
#       ├── MalformedMessage      not the documented shape or a field's format
#       ├── ExpiredMessage        past its expiry
#       ├── OfferMismatch         names another offer or acceptance than this one
#       ├── ForgedMessage         the signature does not verify
#       ├── OfferTaken            the offer already has an answered acceptance (a replay)
#       └── UnsafeAnswer          the maker's timelocks leave the taker too little time


class OfferError(InterlockError):
    """A swap offer, acceptance or answer was refused; nothing was recorded."""


class OversizedMessage(OfferError):
    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"message of {size} bytes refused: the limit is {limit}")


class MalformedMessage(OfferError):
    def __init__(self, what: str, reason: str) -> None:
        self.what, self.reason = what, reason
        super().__init__(f"malformed {what}: {reason}")


class ExpiredMessage(OfferError):
    def __init__(self, what: str, expires_ms: int, now_ms: int) -> None:
        self.what, self.expires_ms, self.now_ms = what, expires_ms, now_ms
        super().__init__(f"{what} expired {(now_ms - expires_ms) / 1000:.0f} s ago")


class OfferMismatch(OfferError):
    def __init__(self, what: str, reason: str) -> None:
        self.what, self.reason = what, reason
        super().__init__(f"{what} refused: {reason}")


class ForgedMessage(OfferError):
    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} refused: the signature does not verify")


class OfferTaken(OfferError):
    def __init__(self, offer_id: str, accept_id: str) -> None:
        self.offer_id, self.accept_id = offer_id, accept_id
        super().__init__(
            f"offer {offer_id[:16]}... is already taken (acceptance {accept_id[:16]}...)"
        )


class UnsafeAnswer(OfferError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"answer refused: {reason}")

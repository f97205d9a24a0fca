"""Errors of the user's side: the keystore and the commands that read and write chains.

Each renders as one line a user can act on; each keeps the offending values.

    InterlockError (chains.errors)
    └── CommandError                  a command the user gave cannot be carried out
        ├── KeystoreError             the keystore refused
        │   ├── BadKeyName
        │   ├── KeyNotFound
        │   ├── KeyExists
        │   ├── WrongPassphrase
        │   ├── KeystoreCorrupt
        │   └── UnsupportedKeystoreVersion
        ├── BadAmount                 ``100usd`` that does not parse
        ├── UnknownChain              a chain no config or flag names
        ├── ChainUnreachable          its RPC did not answer
        └── NotFound                  a tx, block, client or transfer the chain does not have
"""

from __future__ import annotations

from pathlib import Path

from chains.errors import InterlockError

__all__ = [
    "BadAmount",
    "BadKeyName",
    "ChainUnreachable",
    "CommandError",
    "KeyExists",
    "KeyNotFound",
    "KeystoreCorrupt",
    "KeystoreError",
    "NotFound",
    "UnknownChain",
    "UnsupportedKeystoreVersion",
    "WrongPassphrase",
]


class CommandError(InterlockError):
    """A command the user gave cannot be carried out; nothing was submitted."""


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

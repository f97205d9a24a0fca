"""The keystore: ed25519 keys encrypted at rest, one versioned JSON file per key.

Keys live in ``<home>/keys/<name>.json`` (home: ``$INTERLOCK_HOME`` or ``~/.interlock``),
in the spirit of the Ethereum v3 keystore::

    {"version": 1, "kind": "interlock-keystore",
     "address": "<40 hex>", "public_key": "<64 hex>",
     "crypto": {"kdf": "scrypt", "kdfparams": {"n": 131072, "r": 8, "p": 1, "dklen": 32,
                                               "salt": "<64 hex>"},
                "cipher": "aes-256-gcm", "nonce": "<24 hex>", "ciphertext": "<96 hex>"},
     "checksum": "<SHA-256 of the canonical JSON of every other field>"}

* The secret is the 32-byte ed25519 seed, sealed with AES-256-GCM under a key scrypt
  derives from the passphrase. The public parts (version, address, public key, KDF
  parameters, cipher) are the AEAD's associated data: editing any of them makes the key
  unopenable rather than silently different.
* The checksum lets a damaged or edited file be told apart from a wrong passphrase (and
  lets ``keys list`` check files without the passphrase). It is not a MAC: whoever can
  write the file can recompute it; the AEAD tag is what authenticates.
* Files are written atomically (a 0600 temp file, fsync, then a hard link that fails if
  the name exists) so a crash leaves the old key or the new one, never half of one, and
  an existing key is never overwritten.
* The KDF parameters read from a file are bounded, so a hostile file cannot make a load
  allocate gigabytes.

``load_key`` is the one way a command or the relayer daemon turns a key reference into a
key: ``devnet:alice`` derives the well-known devnet account from the devnet seed (never
real funds, named as such); any other reference is a keystore name.
"""

from __future__ import annotations

import builtins
import contextlib
import getpass
import hashlib
import json
import os
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chains.crypto import PrivateKey, address
from interlock.errors import (
    BadKeyName,
    KeyExists,
    KeyNotFound,
    KeystoreCorrupt,
    KeystoreError,
    UnsupportedKeystoreVersion,
    WrongPassphrase,
)

__all__ = [
    "DEFAULT_SCRYPT",
    "DEFAULT_SEED",
    "DEVNET_PREFIX",
    "FORMAT_VERSION",
    "KeyInfo",
    "Keystore",
    "ScryptParams",
    "derive_at_rest_key",
    "interlock_home",
    "load_key",
    "open_at_rest",
    "seal_at_rest",
    "validate_key_name",
]

DEVNET_PREFIX = "devnet:"
"""A key reference with this prefix names a devnet account derived from the devnet seed."""
DEFAULT_SEED = "interlock-devnet"
"""The devnet seed when a command or a config file names none."""

FORMAT_VERSION = 1
KIND = "interlock-keystore"
CIPHER = "aes-256-gcm"
SEED_SIZE = 32
NONCE_SIZE = 12
SALT_SIZE = 32

HOME_ENV = "INTERLOCK_HOME"
PASSPHRASE_ENV = "INTERLOCK_PASSPHRASE"
SCRYPT_N_ENV = "INTERLOCK_SCRYPT_N"
"""Overrides scrypt's ``n`` for keys written from now on: for tests only, it weakens them."""

MAX_FILE_BYTES = 64 * 1024
"""A keystore file is under 1 KB; anything much larger is not one (and is not read)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt's cost parameters (RFC 7914)."""

    n: int
    """CPU/memory cost, a power of two; memory is ``128 * n * r`` bytes."""
    r: int = 8
    """Block size."""
    p: int = 1
    """Parallelism."""

    def validate(self) -> None:
        """Refuse parameters that are malformed or would cost more than a key is worth
        (1 GiB of memory): a hostile file must not be able to exhaust the machine."""
        if not (2 <= self.n <= 2**20 and self.n & (self.n - 1) == 0):
            raise ValueError(f"scrypt n={self.n} is not a power of two in [2, 2^20]")
        if not (1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise ValueError(f"scrypt r={self.r}, p={self.p} out of range (r<=32, p<=16)")
        if 128 * self.n * self.r * self.p > 2**30:
            raise ValueError("scrypt parameters need more than 1 GiB")


DEFAULT_SCRYPT = ScryptParams(n=2**17, r=8, p=1)
"""128 MiB and about 0.6 s of one core here: half of Ethereum's "standard" cost (2^18),
chosen because every command that signs pays it once; the cost is stored in the file, so
it can be raised later without breaking old keys."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the keystore says about a key without its passphrase (never the secret)."""

    name: str
    """The keystore name (the file's stem)."""
    address: str
    """The account address, 40 hex digits."""
    public_key: bytes
    """The 32-byte ed25519 public key."""


def validate_key_name(name: str) -> None:
    """Refuse a name that is not a plain file stem (no paths, no hidden files)."""
    if name.startswith(DEVNET_PREFIX):
        raise BadKeyName(name, f"'{DEVNET_PREFIX}' names devnet keys, never keystore keys")
    if not _NAME.fullmatch(name):
        raise BadKeyName(name, "use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit")


def interlock_home() -> Path:
    """``$INTERLOCK_HOME``, or ``~/.interlock``."""
    env = os.environ.get(HOME_ENV, "")
    return Path(env) if env else Path.home() / ".interlock"


def _scrypt_from_env() -> ScryptParams:
    raw = os.environ.get(SCRYPT_N_ENV, "")
    if not raw:
        return DEFAULT_SCRYPT
    try:
        params = ScryptParams(n=int(raw), r=DEFAULT_SCRYPT.r, p=DEFAULT_SCRYPT.p)
        params.validate()
    except ValueError as exc:
        raise KeystoreError(f"{SCRYPT_N_ENV}={raw[:20]!r}: {exc}") from None
    return params


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _derive_key(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p)
    return kdf.derive(passphrase.encode("utf-8"))


def _associated_data(doc: dict[str, Any]) -> bytes:
    """The public parts the AEAD binds to the secret (everything but nonce/ciphertext)."""
    crypto = doc["crypto"]
    return _canonical(
        {
            "version": doc["version"],
            "kind": doc["kind"],
            "address": doc["address"],
            "public_key": doc["public_key"],
            "kdf": crypto["kdf"],
            "kdfparams": crypto["kdfparams"],
            "cipher": crypto["cipher"],
        }
    )


def _checksum(doc: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "checksum"})).hexdigest()


def seal(key: PrivateKey, passphrase: str, params: ScryptParams) -> dict[str, Any]:
    """The keystore document for ``key`` (pure but for the random salt and nonce)."""
    params.validate()
    salt = secrets.token_bytes(SALT_SIZE)
    nonce = secrets.token_bytes(NONCE_SIZE)
    doc: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "kind": KIND,
        "address": key.address,
        "public_key": key.public_key.hex(),
        "crypto": {
            "kdf": "scrypt",
            "kdfparams": {
                "n": params.n,
                "r": params.r,
                "p": params.p,
                "dklen": 32,
                "salt": salt.hex(),
            },
            "cipher": CIPHER,
            "nonce": nonce.hex(),
        },
    }
    sealed = AESGCM(_derive_key(passphrase, salt, params)).encrypt(
        nonce, key.seed, _associated_data(doc)
    )
    doc["crypto"]["ciphertext"] = sealed.hex()
    doc["checksum"] = _checksum(doc)
    return doc


def derive_at_rest_key(key: PrivateKey, purpose: bytes) -> bytes:
    """A 32-byte AES-256-GCM key for data a party keeps at rest, derived from its ed25519
    seed with HKDF-SHA256; ``purpose`` separates the uses (one key never serves two).

    As strong as the key material: a keystore key's seed never leaves the keystore
    unsealed; a devnet key's is public (devnet data is never secret)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key.seed)


def seal_at_rest(aead_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce ‖ AES-256-GCM(plaintext)`` with ``aad`` bound (a fresh random nonce)."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + AESGCM(aead_key).encrypt(nonce, plaintext, aad)


def open_at_rest(aead_key: bytes, sealed: bytes, aad: bytes) -> bytes | None:
    """What :func:`seal_at_rest` sealed, or None for another key, other ``aad`` or an edit."""
    if len(sealed) < NONCE_SIZE + 16:
        return None
    try:
        return AESGCM(aead_key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
    except InvalidTag:
        return None


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A keystore file that passed every check that needs no passphrase."""

    info: KeyInfo
    params: ScryptParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    aad: bytes


def _hex(value: object, size: int | None, what: str, path: Path) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-f]{2})*", value):
        raise KeystoreCorrupt(path, f"{what} is not lowercase hex")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise KeystoreCorrupt(path, f"{what} is {len(raw)} bytes, expected {size}")
    return raw


def _int(obj: dict[str, Any], key: str, path: Path) -> int:
    value = obj.get(key)
    if type(value) is not int:
        raise KeystoreCorrupt(path, f"kdfparams.{key} is not an integer")
    return value


def parse(name: str, text: bytes, path: Path) -> _Parsed:
    """Check a keystore file's bytes: version, checksum, every field. Needs no passphrase."""
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeystoreCorrupt(path, "not valid JSON (truncated or damaged?)") from None
    if not isinstance(doc, dict):
        raise KeystoreCorrupt(path, "not a JSON object")
    version = doc.get("version")
    if type(version) is not int:
        raise KeystoreCorrupt(path, "no integer 'version'")
    if version != FORMAT_VERSION:
        raise UnsupportedKeystoreVersion(path, version)
    if doc.get("kind") != KIND:
        raise KeystoreCorrupt(path, f"'kind' is not {KIND!r}")
    expected = {"version", "kind", "address", "public_key", "crypto", "checksum"}
    if set(doc) != expected:
        raise KeystoreCorrupt(path, f"fields {sorted(doc)} are not {sorted(expected)}")
    if not isinstance(doc["checksum"], str) or doc["checksum"] != _checksum(doc):
        raise KeystoreCorrupt(path, "checksum mismatch (the file was damaged or edited)")
    crypto = doc["crypto"]
    want = {"kdf", "kdfparams", "cipher", "nonce", "ciphertext"}
    if not isinstance(crypto, dict) or set(crypto) != want:
        raise KeystoreCorrupt(path, f"'crypto' must have exactly {sorted(want)}")
    if crypto["kdf"] != "scrypt" or crypto["cipher"] != CIPHER:
        raise KeystoreCorrupt(path, f"only scrypt and {CIPHER} are supported")
    kp = crypto["kdfparams"]
    if not isinstance(kp, dict) or set(kp) != {"n", "r", "p", "dklen", "salt"}:
        raise KeystoreCorrupt(path, "'kdfparams' must have exactly n, r, p, dklen, salt")
    params = ScryptParams(n=_int(kp, "n", path), r=_int(kp, "r", path), p=_int(kp, "p", path))
    try:
        params.validate()
    except ValueError as exc:
        raise KeystoreCorrupt(path, str(exc)) from None
    if kp["dklen"] != 32:
        raise KeystoreCorrupt(path, "kdfparams.dklen must be 32")
    public_key = _hex(doc["public_key"], 32, "public_key", path)
    if doc["address"] != address(public_key):
        raise KeystoreCorrupt(path, "address does not match public_key")
    return _Parsed(
        info=KeyInfo(name=name, address=doc["address"], public_key=public_key),
        params=params,
        salt=_hex(kp["salt"], SALT_SIZE, "salt", path),
        nonce=_hex(crypto["nonce"], NONCE_SIZE, "nonce", path),
        ciphertext=_hex(crypto["ciphertext"], SEED_SIZE + 16, "ciphertext", path),
        aad=_associated_data(doc),
    )


def open_sealed(parsed: _Parsed, passphrase: str, path: Path) -> PrivateKey:
    """Decrypt a parsed keystore file. The checksum already passed, so a failed tag means
    the passphrase is wrong (or someone recomputed the checksum over an edit)."""
    aead = AESGCM(_derive_key(passphrase, parsed.salt, parsed.params))
    try:
        seed = aead.decrypt(parsed.nonce, parsed.ciphertext, parsed.aad)
    except InvalidTag:
        raise WrongPassphrase(parsed.info.name) from None
    key = PrivateKey.from_seed(seed)
    if key.public_key != parsed.info.public_key:
        raise KeystoreCorrupt(path, "the sealed secret does not match public_key")
    return key


class Keystore:
    """The keys under ``home / "keys"``; every method either does all or changes nothing."""

    def __init__(self, home: Path, *, scrypt: ScryptParams | None = None) -> None:
        self.home = home
        self.dir = home / "keys"
        self._scrypt = scrypt

    def path(self, name: str) -> Path:
        validate_key_name(name)
        return self.dir / f"{name}.json"

    def add(self, name: str, key: PrivateKey, passphrase: str) -> None:
        """Store ``key`` as ``name``, sealed with ``passphrase``; never overwrites."""
        path = self.path(name)
        if not passphrase:
            raise KeystoreError("empty passphrase: a key at rest needs one")
        if path.exists():
            raise KeyExists(name, self.dir)
        params = self._scrypt or _scrypt_from_env()
        data = json.dumps(seal(key, passphrase, params), indent=2).encode() + b"\n"
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.dir / f".{name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # unlike rename, fails if the name was taken meanwhile
            except FileExistsError:
                raise KeyExists(name, self.dir) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._sync_dir()

    def _read(self, name: str) -> _Parsed:
        path = self.path(name)
        try:
            with path.open("rb") as f:
                text = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise KeyNotFound(name, self.dir) from None
        except OSError as exc:
            raise KeystoreCorrupt(path, exc.strerror or type(exc).__name__) from None
        if len(text) > MAX_FILE_BYTES:
            raise KeystoreCorrupt(path, f"larger than {MAX_FILE_BYTES} bytes")
        return parse(name, text, path)

    def load(self, name: str, passphrase: str) -> PrivateKey:
        return open_sealed(self._read(name), passphrase, self.path(name))

    def show(self, name: str) -> KeyInfo:
        """Address and public key (the file is checked; the secret is not opened)."""
        return self._read(name).info

    def list(self) -> builtins.list[KeyInfo]:
        """Every readable key, by name. Unreadable files are left out: see :meth:`problems`."""
        return [info for info in self._scan() if isinstance(info, KeyInfo)]

    def problems(self) -> builtins.list[KeystoreError]:
        """What is wrong with each unreadable file in the keystore directory."""
        return [err for err in self._scan() if isinstance(err, KeystoreError)]

    def _scan(self) -> builtins.list[KeyInfo | KeystoreError]:
        if not self.dir.is_dir():
            return []
        found: builtins.list[KeyInfo | KeystoreError] = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                found.append(self._read(path.stem).info)
            except KeystoreError as exc:
                found.append(exc)
        return found

    def delete(self, name: str) -> None:
        path = self.path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise KeyNotFound(name, self.dir) from None
        self._sync_dir()

    def _sync_dir(self) -> None:
        # the link/unlink is durable only once the directory entry is on disk
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prompt_passphrase(prompt: str) -> str:
    """Ask on the terminal; refuse rather than read a secret from a pipe by surprise."""
    if not sys.stdin.isatty():
        raise KeystoreError(f"no passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    return getpass.getpass(prompt)


def get_passphrase(prompt: str, callback: Callable[[], str] | None = None) -> str:
    """The callback's answer, else ``$INTERLOCK_PASSPHRASE``, else a terminal prompt."""
    if callback is not None:
        return callback()
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env
    return prompt_passphrase(prompt)


def load_key(
    ref: str,
    *,
    seed: str,
    home: Path | None = None,
    passphrase: Callable[[], str] | None = None,
) -> PrivateKey:
    """The key ``ref`` names: ``devnet:<account>`` derives it from the devnet ``seed``
    (as :func:`chains.devnet.build_devnet` does); any other ref is a keystore name, opened
    with the passphrase from ``passphrase()``, ``$INTERLOCK_PASSPHRASE`` or a prompt."""
    if ref.startswith(DEVNET_PREFIX):
        account = ref[len(DEVNET_PREFIX) :]
        if not _NAME.fullmatch(account):
            raise BadKeyName(ref, "a devnet account name is 1-64 of [A-Za-z0-9_.-]")
        return PrivateKey.derive(seed, account)
    store = Keystore(home if home is not None else interlock_home())
    parsed = store._read(ref)  # a missing or bad file fails before anyone is asked
    secret = get_passphrase(f"passphrase for key {ref!r}: ", passphrase)
    return open_sealed(parsed, secret, store.path(ref))

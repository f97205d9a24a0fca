"""The keystore: round trips, and every hostile file refused with nothing changed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from chains.crypto import PrivateKey
from interlock.errors import (
    BadKeyName,
    KeyExists,
    KeyNotFound,
    KeystoreCorrupt,
    KeystoreError,
    UnsupportedKeystoreVersion,
    WrongPassphrase,
)
from interlock.keys import (
    DEFAULT_SCRYPT,
    Keystore,
    ScryptParams,
    interlock_home,
    load_key,
)

FAST = ScryptParams(n=16, r=8, p=1)


@pytest.fixture
def store(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path, scrypt=FAST)


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.derive("test", "keys")


def test_add_load_round_trip(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    loaded = store.load("alice", "pw")
    assert loaded.seed == key.seed
    assert loaded.public_key == key.public_key


def test_file_is_private_and_holds_no_secret(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    path = store.dir / "alice.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    text = path.read_text()
    assert key.seed.hex() not in text
    doc = json.loads(text)
    assert doc["version"] == 1
    assert doc["crypto"]["kdfparams"]["n"] == FAST.n
    assert [p.name for p in store.dir.iterdir()] == ["alice.json"]  # no temp file left


def test_show_and_list_need_no_passphrase(store: Keystore, key: PrivateKey) -> None:
    other = PrivateKey.derive("test", "other")
    store.add("zed", other, "pw2")
    store.add("alice", key, "pw")
    info = store.show("alice")
    assert (info.name, info.address, info.public_key) == ("alice", key.address, key.public_key)
    assert [i.name for i in store.list()] == ["alice", "zed"]
    assert store.problems() == []


def test_empty_keystore_lists_nothing(store: Keystore) -> None:
    assert store.list() == []


def test_wrong_passphrase(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    before = (store.dir / "alice.json").read_bytes()
    with pytest.raises(WrongPassphrase, match="wrong passphrase for key 'alice'"):
        store.load("alice", "PW")
    assert (store.dir / "alice.json").read_bytes() == before


def test_add_never_overwrites(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    before = (store.dir / "alice.json").read_bytes()
    with pytest.raises(KeyExists):
        store.add("alice", PrivateKey.derive("x"), "pw")
    assert (store.dir / "alice.json").read_bytes() == before


def test_empty_passphrase_refused(store: Keystore, key: PrivateKey) -> None:
    with pytest.raises(KeystoreError, match="empty passphrase"):
        store.add("alice", key, "")
    assert not (store.dir / "alice.json").exists()


@pytest.mark.parametrize(
    "name", ["", "../evil", "a/b", ".hidden", "devnet:alice", "x" * 65, "sp ace", "é"]
)
def test_bad_names_refused(store: Keystore, key: PrivateKey, name: str) -> None:
    with pytest.raises(BadKeyName):
        store.add(name, key, "pw")
    with pytest.raises(BadKeyName):
        store.load(name, "pw")
    assert not store.dir.exists()


def test_missing_key(store: Keystore) -> None:
    with pytest.raises(KeyNotFound, match="no key 'bob'"):
        store.load("bob", "pw")
    with pytest.raises(KeyNotFound):
        store.delete("bob")


def test_delete(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    store.delete("alice")
    assert store.list() == []
    with pytest.raises(KeyNotFound):
        store.show("alice")


def _edit(store: Keystore, name: str, fix_checksum: bool, change: object) -> None:
    from interlock.keys import _checksum

    path = store.dir / f"{name}.json"
    doc = json.loads(path.read_text())
    change(doc)  # type: ignore[operator]
    if fix_checksum:
        doc["checksum"] = _checksum(doc)
    path.write_text(json.dumps(doc))


def test_truncated_file(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    path = store.dir / "alice.json"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(KeystoreCorrupt, match="not valid JSON"):
        store.load("alice", "pw")
    with pytest.raises(KeystoreCorrupt):
        store.show("alice")
    assert store.list() == []
    assert len(store.problems()) == 1


def test_future_version(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    _edit(store, "alice", True, lambda d: d.update(version=2))
    with pytest.raises(UnsupportedKeystoreVersion, match="version '2'"):
        store.load("alice", "pw")
    with pytest.raises(KeyExists):  # and it is not replaced by a new add
        store.add("alice", key, "pw")


def test_edited_file_fails_checksum(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    other = PrivateKey.derive("mallory")
    _edit(store, "alice", False, lambda d: d.update(public_key=other.public_key.hex()))
    with pytest.raises(KeystoreCorrupt, match="checksum mismatch"):
        store.load("alice", "pw")


def test_edited_public_parts_with_fixed_checksum_do_not_open(
    store: Keystore, key: PrivateKey
) -> None:
    """The AEAD binds the public parts: a consistent-looking swap of public key and address
    makes the file unopenable, never a key that is silently different."""
    store.add("alice", key, "pw")
    other = PrivateKey.derive("mallory")
    _edit(
        store,
        "alice",
        True,
        lambda d: d.update(public_key=other.public_key.hex(), address=other.address),
    )
    with pytest.raises(WrongPassphrase):
        store.load("alice", "pw")


def test_address_must_match_public_key(store: Keystore, key: PrivateKey) -> None:
    store.add("alice", key, "pw")
    _edit(store, "alice", True, lambda d: d.update(address="00" * 20))
    with pytest.raises(KeystoreCorrupt, match="address does not match"):
        store.show("alice")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"n": 2**30}, "power of two"),
        ({"n": 1000}, "power of two"),
        ({"r": 0}, "out of range"),
        ({"p": 100}, "out of range"),
        ({"n": 2**20, "r": 16}, "1 GiB"),
        ({"n": "16"}, "not an integer"),
        ({"dklen": 16}, "dklen"),
        ({"salt": "zz"}, "not lowercase hex"),
    ],
)
def test_hostile_kdf_params_refused_before_any_work(
    store: Keystore, key: PrivateKey, params: dict[str, object], reason: str
) -> None:
    store.add("alice", key, "pw")
    _edit(store, "alice", True, lambda d: d["crypto"]["kdfparams"].update(params))
    with pytest.raises(KeystoreCorrupt, match=reason):
        store.load("alice", "pw")


@pytest.mark.parametrize(
    "doc",
    [
        "[]",
        "{}",
        '{"version": "1"}',
        '{"version": 1, "kind": "other"}',
        '{"version": 1, "kind": "interlock-keystore"}',
    ],
)
def test_malformed_documents(store: Keystore, doc: str) -> None:
    store.dir.mkdir(parents=True)
    (store.dir / "bad.json").write_text(doc)
    with pytest.raises(KeystoreCorrupt):
        store.show("bad")


def test_oversized_file_not_read(store: Keystore) -> None:
    store.dir.mkdir(parents=True)
    (store.dir / "big.json").write_bytes(b" " * 100_000)
    with pytest.raises(KeystoreCorrupt, match="larger than"):
        store.show("big")


def test_default_cost_is_memory_hard() -> None:
    DEFAULT_SCRYPT.validate()
    assert 128 * DEFAULT_SCRYPT.n * DEFAULT_SCRYPT.r >= 64 * 2**20


def test_scrypt_n_from_env(
    tmp_path: Path, key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_SCRYPT_N", "32")
    Keystore(tmp_path).add("alice", key, "pw")
    doc = json.loads((tmp_path / "keys" / "alice.json").read_text())
    assert doc["crypto"]["kdfparams"]["n"] == 32
    monkeypatch.setenv("INTERLOCK_SCRYPT_N", "33")
    with pytest.raises(KeystoreError, match="INTERLOCK_SCRYPT_N"):
        Keystore(tmp_path).add("bob", key, "pw")


# --- load_key ------------------------------------------------------------------------


def test_load_key_devnet() -> None:
    assert load_key("devnet:alice", seed="s").seed == PrivateKey.derive("s", "alice").seed
    with pytest.raises(BadKeyName):
        load_key("devnet:", seed="s")
    with pytest.raises(BadKeyName):
        load_key("devnet:../x", seed="s")


def test_load_key_keystore_passphrase_sources(
    store: Keystore, key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add("alice", key, "pw")
    got = load_key("alice", seed="s", home=store.home, passphrase=lambda: "pw")
    assert got.seed == key.seed
    monkeypatch.setenv("INTERLOCK_PASSPHRASE", "pw")
    assert load_key("alice", seed="s", home=store.home).seed == key.seed
    monkeypatch.setenv("INTERLOCK_PASSPHRASE", "nope")
    with pytest.raises(WrongPassphrase):
        load_key("alice", seed="s", home=store.home)


def test_load_key_missing_fails_before_asking(store: Keystore) -> None:
    def ask() -> str:
        raise AssertionError("asked for a passphrase for a key that does not exist")

    with pytest.raises(KeyNotFound):
        load_key("ghost", seed="s", home=store.home, passphrase=ask)


def test_load_key_without_tty_or_env(
    store: Keystore, key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add("alice", key, "pw")
    monkeypatch.delenv("INTERLOCK_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # noqa: SIM115
    with pytest.raises(KeystoreError, match="INTERLOCK_PASSPHRASE"):
        load_key("alice", seed="s", home=store.home)


def test_interlock_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path))
    assert interlock_home() == tmp_path
    monkeypatch.setenv("INTERLOCK_HOME", "")
    assert interlock_home() == Path.home() / ".interlock"

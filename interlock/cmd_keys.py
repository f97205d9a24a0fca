"""``interlock keys``: add, import, list, show and delete keys of the keystore.

The passphrase comes from ``$INTERLOCK_PASSPHRASE`` (scripts) or a terminal prompt (asked
twice when a key is written). A secret is never printed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from chains.crypto import PrivateKey
from interlock.commands import emit
from interlock.errors import CommandError, KeyExists, KeystoreError
from interlock.keys import (
    DEFAULT_SEED,
    DEVNET_PREFIX,
    PASSPHRASE_ENV,
    KeyInfo,
    Keystore,
    interlock_home,
    prompt_passphrase,
    validate_key_name,
)

__all__ = ["run_add", "run_delete", "run_import", "run_list", "run_show"]


def _store(args: argparse.Namespace) -> Keystore:
    return Keystore(args.home or interlock_home())


def _info_json(info: KeyInfo) -> dict[str, str]:
    return {"name": info.name, "address": info.address, "public_key": info.public_key.hex()}


def _new_passphrase(name: str) -> str:
    """From the environment, else asked twice on the terminal."""
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env
    first = prompt_passphrase(f"passphrase for new key {name!r}: ")
    if prompt_passphrase("again: ") != first:
        raise KeystoreError("the passphrases differ; nothing stored")
    return first


def _store_key(args: argparse.Namespace, key: PrivateKey, how: str) -> int:
    store = _store(args)
    validate_key_name(args.name)
    if store.path(args.name).exists():  # fail before asking for a passphrase
        raise KeyExists(args.name, store.dir)
    store.add(args.name, key, _new_passphrase(args.name))
    info = store.show(args.name)
    emit(args, _info_json(info), [f"{how} key {info.name}: address {info.address}"])
    return 0


def run_add(args: argparse.Namespace) -> int:
    return _store_key(args, PrivateKey.generate(), "new")


_HEX_SECRET = re.compile(r"[0-9a-fA-F]{64}")


def run_import(args: argparse.Namespace) -> int:
    if args.devnet_seed is not None:
        account = args.account or args.name
        validate_key_name(account)
        key = PrivateKey.derive(args.devnet_seed, account)
        return _store_key(args, key, f"imported devnet account {account!r} as")
    if args.account is not None:
        raise CommandError("--account only goes with --devnet-seed")
    if sys.stdin.isatty():
        print("paste the 32-byte secret as 64 hex digits, then Enter:", file=sys.stderr)
    text = sys.stdin.readline(200).strip()
    if not _HEX_SECRET.fullmatch(text):
        raise CommandError("expected the secret on stdin as 64 hex digits; nothing stored")
    return _store_key(args, PrivateKey.from_seed(bytes.fromhex(text)), "imported")


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    keys = store.list()
    problems = store.problems()
    for p in problems:
        print(f"interlock: warning: {p}", file=sys.stderr)
    lines = [f"{k.name:<24} {k.address}" for k in keys] or [f"no keys in {store.dir}"]
    emit(args, {"keys": [_info_json(k) for k in keys], "dir": str(store.dir)}, lines)
    return 1 if problems else 0


def run_show(args: argparse.Namespace) -> int:
    if args.name.startswith(DEVNET_PREFIX):  # derived from the seed, never stored
        account = args.name[len(DEVNET_PREFIX) :]
        if not account:
            raise CommandError("devnet:NAME needs a NAME")
        key = PrivateKey.derive(args.seed or DEFAULT_SEED, account)
        info = KeyInfo(args.name, key.address, key.public_key)
    else:
        info = _store(args).show(args.name)
    emit(
        args,
        _info_json(info),
        [
            f"name        {info.name}",
            f"address     {info.address}",
            f"public key  {info.public_key.hex()}",
        ],
    )
    return 0


def run_delete(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.name.startswith(DEVNET_PREFIX):
        raise CommandError("devnet keys derive from the seed; there is nothing to delete")
    info = store.show(args.name) if store.path(args.name).exists() else None
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError("deleting a key is for good: pass --yes (nothing deleted)")
        what = f"{args.name} ({info.address})" if info else args.name
        answer = input(f"delete key {what} for good? type its name to confirm: ")
        if answer.strip() != args.name:
            raise CommandError("not confirmed; nothing deleted")
    store.delete(args.name)
    print(f"deleted key {args.name}")
    return 0

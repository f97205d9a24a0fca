"""``interlock private``: confidential balances (the opt-in ``confidential`` module) for a
person at a terminal.

Each account's ElGamal key is derived from its keystore key
(``zk.wallet.keypair_from_seed``), so nothing new is kept; the wallet reads its encrypted
balance from the chain and decrypts it to build each proof (values below 2^32 decrypt;
baby-step giant-step)::

    interlock private deposit 100usd --key alice          registers the key first if needed
    interlock private transfer bob 40usd --key alice      the amount never appears on chain
    interlock private balance usd --key bob               decrypted here, never sent
    interlock private withdraw 10usd --key bob
    interlock private auditor set --auditor auditor       governance designates the auditor
    interlock private audit TXHASH --auditor auditor      what a transfer moved

Proofs are made here and checked by the chain; a payment the balance cannot cover is
refused here (nothing is sent), as is every malformed argument, in one line.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from chains.crypto import PrivateKey
from chains.service.rpc_client import HttpChain
from interlock.cmd_common import (
    Chains,
    parse_amount,
    submit,
)
from interlock.commands import emit
from interlock.errors import CommandError, NotFound
from zk.elgamal import Ciphertext, ElGamalKeypair, decrypt
from zk.errors import ZkError
from zk.wallet import keypair_from_seed, register_args, transfer_args, withdraw_args

__all__ = ["audit", "auditor_set", "balance", "deposit", "transfer", "withdraw"]

BOUND = 2**32
"""Balances and amounts this wallet decrypts: below 2^32 base units."""
NAME = "confidential"


async def _ciphertext(chain: HttpChain, path: str, args: dict[str, Any]) -> Ciphertext:
    raw = await chain.query(NAME, path, args)
    try:
        return Ciphertext.from_bytes(bytes.fromhex(str(raw)))
    except (ValueError, ZkError):
        raise CommandError(f"{chain.chain_id} answered a malformed ciphertext") from None


async def _balance(chain: HttpChain, key: PrivateKey, kp: ElGamalKeypair, denom: str) -> Any:
    """The balance ciphertext as the chain holds it, and its value."""
    ct = await _ciphertext(chain, "balance", {"address": key.address, "denom": denom})
    value = decrypt(kp.secret, ct, BOUND)
    if value is None:
        raise CommandError(f"the private {denom} balance does not decrypt below 2^32")
    return ct, value


async def _registered(chain: HttpChain, key: PrivateKey, kp: ElGamalKeypair) -> None:
    """Register the account's ElGamal key unless it is; refuse another key's."""
    have = await chain.query(NAME, "key", {"address": key.address})
    if have is None:
        await submit(chain, key, NAME, "register", register_args(chain.chain_id, key.address, kp))
    elif have != kp.public.hex():
        raise CommandError(f"{key.address} registered another key on {chain.chain_id}")


def _done(args: argparse.Namespace, chain: HttpChain, what: str, height: int, **obj: Any) -> int:
    emit(
        args,
        {"chain_id": chain.chain_id, "height": height, **obj},
        [f"{chain.chain_id}: {what} at height {height}"],
    )
    return 0


async def _account(
    chains: Chains, args: argparse.Namespace
) -> tuple[PrivateKey, ElGamalKeypair, HttpChain]:
    """The ``--key`` account, its ElGamal key pair, and the chain."""
    key = chains.key(args.key)
    return key, keypair_from_seed(key.seed), await chains.pick(args.chain)


async def deposit(args: argparse.Namespace) -> int:
    amount, denom = parse_amount(args.amount)
    async with Chains.from_args(args) as chains:
        key, kp, chain = await _account(chains, args)
        await _registered(chain, key, kp)
        r = await submit(chain, key, NAME, "deposit", {"denom": denom, "amount": amount})
    return _done(args, chain, f"deposited {amount} {denom}", r.height, amount=amount)


async def transfer(args: argparse.Namespace) -> int:
    amount, denom = parse_amount(args.amount)
    async with Chains.from_args(args) as chains:
        to = chains.address(args.to)
        key, kp, chain = await _account(chains, args)
        receiver = await chain.query(NAME, "key", {"address": to})
        auditor = await chain.query(NAME, "auditor", {})
        if receiver is None:
            raise CommandError(f"{to} has no private account on {chain.chain_id}")
        if auditor is None:
            raise CommandError(f"{chain.chain_id}'s governance has not set an auditor")
        ct, value = await _balance(chain, key, kp, denom)
        if amount > value:
            raise CommandError(f"the private balance is {value} {denom}, less than {amount}")
        call = transfer_args(
            chain.chain_id,
            key.address,
            kp,
            ct,
            value,
            to,
            bytes.fromhex(str(receiver)),
            bytes.fromhex(str(auditor)),
            denom,
            amount,
        )
        r = await submit(chain, key, NAME, "transfer", call)
    return _done(args, chain, f"paid {to} privately", r.height, tx=r.tx_hash.hex())


async def withdraw(args: argparse.Namespace) -> int:
    amount, denom = parse_amount(args.amount)
    async with Chains.from_args(args) as chains:
        key, kp, chain = await _account(chains, args)
        ct, value = await _balance(chain, key, kp, denom)
        if amount > value:
            raise CommandError(f"the private balance is {value} {denom}, less than {amount}")
        call = withdraw_args(chain.chain_id, key.address, kp, ct, value, denom, amount)
        r = await submit(chain, key, NAME, "withdraw", call)
    return _done(args, chain, f"withdrew {amount} {denom}", r.height, amount=amount)


async def balance(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9/:._-]{1,127}", args.denom):
        raise CommandError(f"bad denom {args.denom[:40]!r}")
    async with Chains.from_args(args) as chains:
        key, kp, chain = await _account(chains, args)
        _, value = await _balance(chain, key, kp, args.denom)
    line = f"{key.address} on {chain.chain_id}: {value} {args.denom} private"
    emit(args, {"chain_id": chain.chain_id, "address": key.address, "balance": value}, [line])
    return 0


async def auditor_set(args: argparse.Namespace) -> int:
    async with Chains.from_args(args) as chains:
        auditor = keypair_from_seed(chains.key(args.auditor).seed)
        chain = await chains.pick(args.chain)
        if args.authority == "devnet":
            gov = PrivateKey.derive(chains.seed, chain.chain_id, "gov")
        else:
            gov = chains.key(args.authority)
        call = register_args(chain.chain_id, gov.address, auditor, b"set_auditor")
        r = await submit(chain, gov, NAME, "set_auditor", call)
    return _done(args, chain, "auditor set", r.height, pubkey=auditor.public.hex())


async def audit(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", args.hash):
        raise CommandError(f"bad tx hash {args.hash[:80]!r}: expected 64 hex digits")
    async with Chains.from_args(args) as chains:
        kp = keypair_from_seed(chains.key(args.auditor).seed)
        chain = await chains.pick(args.chain)
        receipt = await chain.get_receipt(bytes.fromhex(args.hash))
    event = next(
        (e for e in (receipt.events if receipt else ()) if e.type == f"{NAME}.transferred"), None
    )
    if event is None:
        raise NotFound(f"a private transfer {args.hash.lower()} on {chain.chain_id}")
    try:
        ct = Ciphertext.from_bytes(bytes.fromhex(str(event.attributes["auditor_ct"])))
    except (KeyError, ValueError, ZkError):
        raise CommandError("the transfer's auditor ciphertext is malformed") from None
    value = decrypt(kp.secret, ct, BOUND)
    if value is None:
        raise CommandError("not encrypted to this auditor's key (or 2^32 and over)")
    a = event.attributes
    line = f"{a['from']} paid {a['to']} {value} {a['denom']}"
    emit(args, {"chain_id": chain.chain_id, "amount": value, **dict(a)}, [line])
    return 0

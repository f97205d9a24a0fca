"""``interlock compliance``: the governance of a chain's ``compliance`` module, and KYC.

Thin wrappers over the module's transactions (:mod:`zk.registry`), signed by the chain's
governance key, ``--authority``: ``devnet`` (derived from the devnet seed, as ``interlock
path create`` derives it) or a keystore name::

    interlock compliance provider add PUBKEY|KEY --name NAME       register_provider
    interlock compliance provider revoke PUBKEY|KEY                revoke_provider
    interlock compliance deny add ADDRESS|KEY                      deny
    interlock compliance deny remove ADDRESS|KEY                   allow
    interlock compliance policy set --remote R [--jurisdiction J] --min-level N
        --limit N --window DURATION --travel-rule-threshold N      set_policy
    interlock compliance policy clear --remote R [--jurisdiction J]  clear_policy

A KYC provider signs an attestation off chain (``issue``, with its own key; the personal
data is only hashed, never written anywhere), and its holder records it on chain with a
proof that it controls the address (``attest``, with the holder's key)::

    interlock compliance issue ADDRESS|KEY --provider KEY --jurisdiction US --level 2
        --valid-days 365 --data TEXT > att.json
    interlock compliance attest att.json --key KEY
    interlock compliance show [ADDRESS|KEY]     providers; an account's attestation, denial

Every argument is checked here with the module's own parsers before anything is signed
(one line, exit 2); the chain checks again and a refusal is its receipt's one line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from chains.crypto import PrivateKey
from chains.errors import InvalidArgument
from chains.module import is_chain_id
from interlock.cmd_common import (
    Chains,
    parse_duration,
    submit,
)
from interlock.commands import emit
from interlock.errors import CommandError
from interlock.keys import DEVNET_PREFIX, Keystore
from zk.compliance import KycAttestation, Policy, prove_holder

__all__ = [
    "attest",
    "deny_add",
    "deny_remove",
    "issue",
    "policy_clear",
    "policy_set",
    "provider_add",
    "revoke",
    "show",
]

_JURISDICTION = re.compile(r"[A-Z]{2}|\*")


def _path(args: argparse.Namespace) -> dict[str, str]:
    if not is_chain_id(args.remote):
        raise CommandError(f"bad --remote {args.remote[:80]!r}: expected a chain id")
    if not _JURISDICTION.fullmatch(args.jurisdiction):
        raise CommandError(
            f"bad --jurisdiction {args.jurisdiction[:40]!r}: expected ISO 3166 alpha-2 "
            "(e.g. US) or *"
        )
    return {"remote_chain": args.remote, "jurisdiction": args.jurisdiction}


def _pubkey(chains: Chains, ref: str) -> str:
    """A public key as 64 hex digits, or a key's (devnet:NAME, or a keystore name)."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", ref):
        return ref.lower()
    if ref.startswith(DEVNET_PREFIX):
        return chains.key(ref).public_key.hex()
    return Keystore(chains.home).show(ref).public_key.hex()


async def _govern(args: argparse.Namespace, method: str, call: dict[str, Any]) -> int:
    """Sign ``compliance.method(call)`` with the authority, submit, print the outcome."""
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        if args.authority == "devnet":
            key = PrivateKey.derive(chains.seed, chain.chain_id, "gov")
        else:
            key = chains.key(args.authority)
        r = await submit(chain, key, "compliance", method, call)
    line = f"{chain.chain_id}: compliance.{method} committed at height {r.height}"
    emit(args, {"chain_id": chain.chain_id, "method": method, "height": r.height, **call}, [line])
    return 0


async def provider_add(args: argparse.Namespace) -> int:
    if not 1 <= len(args.name) <= 64:
        raise CommandError("bad --name: 1 to 64 characters")
    pubkey = _pubkey(Chains.from_args(args), args.pubkey)
    return await _govern(args, "register_provider", {"pubkey": pubkey, "name": args.name})


async def revoke(args: argparse.Namespace) -> int:
    pubkey = _pubkey(Chains.from_args(args), args.pubkey)
    return await _govern(args, "revoke_provider", {"pubkey": pubkey})


async def deny_add(args: argparse.Namespace) -> int:
    return await _govern(args, "deny", {"address": Chains.from_args(args).address(args.account)})


async def deny_remove(args: argparse.Namespace) -> int:
    return await _govern(args, "allow", {"address": Chains.from_args(args).address(args.account)})


async def policy_set(args: argparse.Namespace) -> int:
    call: dict[str, Any] = {
        **_path(args),
        "min_kyc_level": args.min_level,
        "limit": args.limit,
        "window_ms": int(parse_duration(args.window) * 1000),
        "travel_rule_threshold": args.travel_rule_threshold,
    }
    Policy.from_json(call)  # the module's own bounds, before anything is signed
    return await _govern(args, "set_policy", call)


async def policy_clear(args: argparse.Namespace) -> int:
    return await _govern(args, "clear_policy", _path(args))


async def issue(args: argparse.Namespace) -> int:
    chains = Chains.from_args(args)
    if not 1 <= args.valid_days <= 3660:
        raise CommandError(f"bad --valid-days {args.valid_days}: expected 1 to 3660")
    provider = chains.key(args.provider)
    unsigned = KycAttestation(
        address=chains.address(args.account),
        jurisdiction=args.jurisdiction,
        level=args.level,
        expiry_ms=int(time.time() * 1000) + args.valid_days * 86_400_000,
        data_hash=hashlib.sha256(args.data.encode()).digest(),
        provider=provider.public_key,
        signature=bytes(64),
    )
    doc = unsigned.to_json()
    doc["signature"] = provider.sign(unsigned.signed_bytes()).hex()
    KycAttestation.from_json(doc)  # jurisdiction, level: the module's own checks
    print(json.dumps(doc, sort_keys=True), flush=True)
    return 0


def _read_attestation(name: str) -> KycAttestation:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {name[:80]}: {exc.__class__.__name__}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise CommandError(f"{name[:80]}: not JSON (expected an attestation)") from None
    return KycAttestation.from_json(doc)


async def attest(args: argparse.Namespace) -> int:
    att = _read_attestation(args.file)
    async with Chains.from_args(args) as chains:
        key = chains.key(args.key)
        if key.address != att.address:
            raise InvalidArgument(
                "--key", f"the attestation is for {att.address}, the key is {key.address}"
            )
        chain = await chains.pick(args.chain)
        call = {
            "attestation": att.to_json(),
            "public_key": key.public_key.hex(),
            "proof": prove_holder(att, key.seed).hex(),
        }
        r = await submit(chain, key, "compliance", "attest", call)
    line = (
        f"{chain.chain_id}: {att.address} attested ({att.jurisdiction}, level {att.level}) "
        f"at height {r.height}"
    )
    emit(args, {"chain_id": chain.chain_id, "address": att.address, "height": r.height}, [line])
    return 0


async def show(args: argparse.Namespace) -> int:
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        obj: dict[str, Any] = {
            "chain_id": chain.chain_id,
            "providers": await chain.query("compliance", "providers", {}),
        }
        if args.account is not None:
            addr = chains.address(args.account)
            obj["address"] = addr
            obj["denied"] = await chain.query("compliance", "denied", {"address": addr})
            obj["attestation"] = await chain.query("compliance", "attestation", {"address": addr})
    lines = [f"{chain.chain_id} KYC providers:"]
    providers = obj["providers"] if isinstance(obj["providers"], list) else []
    lines += [f"  {p.get('pubkey')} {p.get('name')}" for p in providers] or ["  (none)"]
    if args.account is not None:
        att = obj["attestation"]
        lines.append(f"{obj['address']}: {'DENIED' if obj['denied'] else 'not denied'}")
        lines.append(
            f"  attested {att['jurisdiction']} level {att['level']}, expires {att['expiry_ms']}"
            if isinstance(att, dict)
            else "  no attestation"
        )
    emit(args, obj, lines)
    return 0

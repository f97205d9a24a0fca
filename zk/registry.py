"""The ``compliance`` chain module: KYC providers, attestations, policies, the deny list;
and the checks the bridge runs against them on every transfer.

Calls (``args`` are hostile; every refusal is a typed error and rolls the call back):

* governance only (``BlockInfo.authority``): ``register_provider(pubkey, name)``,
  ``revoke_provider(pubkey)`` (its attestations stop counting at once), ``deny(address)``
  and ``allow(address)`` (the sanctions deny list: such an address may neither send nor
  receive over the bridge), ``set_policy(remote_chain, jurisdiction, min_kyc_level,
  limit, window_ms, travel_rule_threshold)`` and ``clear_policy(remote_chain,
  jurisdiction)`` (``jurisdiction`` ``*``: the path's default), ``set_travel_key(pubkey)``
  (this chain's X25519 compliance key: travel-rule data of transfers *into* this chain is
  sealed to it).
* anyone: ``attest(attestation, public_key, proof)``: records a provider's attestation
  for its address once the holder's Schnorr proof shows control of the address key
  (:func:`zk.compliance.validate_attestation`); a later one replaces it.

What the bridge checks (:func:`process_transfer`, on the source's ``lock``/``burn`` and on
the destination's ``mint``/``release``), each time against
the block's time: neither sender nor recipient is denied here; then, if the path has a
policy for the local party's jurisdiction (its live attestation's, else the path's ``*``
default), that party's live KYC level, its amount over the policy's sliding window on this
path and denom, and travel-rule data from the threshold. No policy: only the deny list.
A chain without this module has no such state, so its bridge checks nothing.

The source refuses a lock that breaks its policy (the call fails, nothing changes). The
destination does not fail the delivery: it records the refusal and emits the expiry a
timeout would, which the source proves and refunds (:mod:`bridge.module`).

State keys::

    compliance/provider/<pubkey hex>              -> {"name"}
    compliance/kyc/<address>                      -> the attestation (JSON)
    compliance/denied/<address>                   -> true
    compliance/policy/<remote>/<jurisdiction>     -> policy (JSON)
    compliance/travel_key                         -> hex X25519 public key
    compliance/window/<remote>/<out|in>/<address>/<denom> -> [[time_ms, amount], ...]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from chains.encoding import JSONValue
from chains.errors import InvalidArgument, UnknownMethod
from chains.module import (
    BlockInfo,
    TxContext,
    arg_address,
    arg_bytes,
    arg_str,
    is_chain_id,
)
from chains.state import State
from chains.types import Event
from zk.compliance import (
    KycAttestation,
    Policy,
    validate_attestation,
    validate_provider,
    validate_sanctions,
    validate_transfer,
)
from zk.schnorr import SCHNORR_PROOF_SIZE

__all__ = [
    "ComplianceModule",
    "get_attestation",
    "get_policy",
    "get_travel_key",
    "is_denied",
    "process_transfer",
]

NAME = "compliance"


def _arg_remote(args: Mapping[str, Any]) -> str:
    v = args.get("remote_chain")
    if not is_chain_id(v):
        raise InvalidArgument("remote_chain", "expected a chain id")
    return v


def _arg_jurisdiction(args: Mapping[str, Any]) -> str:
    v = args.get("jurisdiction")
    if v != "*" and not (isinstance(v, str) and len(v) == 2 and v.isascii() and v.isupper()):
        raise InvalidArgument("jurisdiction", "expected ISO 3166 alpha-2 (e.g. US) or *")
    return str(v)


def get_attestation(state: State, addr: str) -> KycAttestation | None:
    raw = state.get(f"{NAME}/kyc/{addr}")
    return None if raw is None else KycAttestation.from_json(raw)


def get_policy(state: State, remote: str, jurisdiction: str) -> Policy | None:
    raw = state.get(f"{NAME}/policy/{remote}/{jurisdiction}")
    return None if raw is None else Policy.from_json(raw)


def get_travel_key(state: State) -> bytes | None:
    v = state.get(f"{NAME}/travel_key")
    return bytes.fromhex(v) if v else None


def is_denied(state: State, addr: str) -> bool:
    return f"{NAME}/denied/{addr}" in state


class _Denied:
    """The deny list as a container, read key by key (it may be long)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __contains__(self, addr: object) -> bool:
        return isinstance(addr, str) and is_denied(self.state, addr)


class _Providers:
    """The registered providers as a container of public keys."""

    def __init__(self, state: State) -> None:
        self.state = state

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and f"{NAME}/provider/{key.hex()}" in self.state


def process_transfer(
    state: State,
    block: BlockInfo,
    remote: str,
    *,
    outgoing: bool,
    sender: str,
    recipient: str,
    denom: str,
    amount: int,
    travel_rule_hash: bytes | None,
) -> None:
    """The bridge's check of a transfer on the path to or from ``remote`` (module
    docstring): ``outgoing`` on the source's lock or burn (the local party is the sender),
    else on the destination's mint or release (the recipient). Validates, then records the
    amount in the local party's window; raises :class:`ComplianceRefused` having written
    nothing, so the destination still delivers the batch's other packets."""
    parties = {"sender": sender, "recipient": recipient}
    validate_sanctions(_Denied(state), parties)
    who = "sender" if outgoing else "recipient"
    addr = parties[who]
    att = get_attestation(state, addr)
    policy = get_policy(state, remote, att.jurisdiction) if att else None
    policy = policy or get_policy(state, remote, "*")
    if policy is None:
        return
    level = 0
    if att is not None and policy.min_kyc_level > 0:
        validate_provider(att, _Providers(state), block.time)  # revoked, expired: refused
        level = att.level
    direction = "out" if outgoing else "in"
    key = f"{NAME}/window/{remote}/{direction}/{addr}/{denom}"
    since = block.time - policy.window_ms
    history = [(t, a) for t, a in state.get(key, ()) if t > since]
    validate_transfer(policy, who, level, amount, history, travel_rule_hash, block.time)
    state.set(key, [[t, a] for t, a in history] + [[block.time, amount]])


class ComplianceModule:
    """The registry (see the module docstring). Genesis: ``{}``."""

    name = NAME

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        if genesis:
            raise InvalidArgument("compliance genesis", "expected no keys (governance sets all)")

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        handler = self._METHODS.get(method)
        if handler is None:
            raise UnknownMethod(self.name, method)
        handler(self, ctx, args)

    # --- governance -------------------------------------------------------------------
    def register_provider(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("register a KYC provider")
        key = arg_bytes(args, "pubkey", 32)
        name = arg_str(args, "name", 64)
        ctx.state.set(f"{NAME}/provider/{key.hex()}", {"name": name})
        ctx.emit("provider_registered", {"pubkey": key.hex(), "name": name})

    def revoke_provider(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("revoke a KYC provider")
        key = arg_bytes(args, "pubkey", 32).hex()
        if f"{NAME}/provider/{key}" not in ctx.state:
            raise InvalidArgument("pubkey", "no such provider is registered")
        ctx.state.delete(f"{NAME}/provider/{key}")
        ctx.emit("provider_revoked", {"pubkey": key})

    def deny(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("add to the sanctions deny list")
        addr = arg_address(args, "address")
        ctx.state.set(f"{NAME}/denied/{addr}", True)
        ctx.emit("denied", {"address": addr})

    def allow(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("remove from the sanctions deny list")
        addr = arg_address(args, "address")
        if not is_denied(ctx.state, addr):
            raise InvalidArgument("address", "not on the deny list")
        ctx.state.delete(f"{NAME}/denied/{addr}")
        ctx.emit("allowed", {"address": addr})

    def set_policy(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("set a compliance policy")
        remote, jurisdiction = _arg_remote(args), _arg_jurisdiction(args)
        policy = Policy.from_json(args)
        ctx.state.set(f"{NAME}/policy/{remote}/{jurisdiction}", policy.to_json())
        ctx.emit(
            "policy_set", {"remote_chain": remote, "jurisdiction": jurisdiction, **policy.to_json()}
        )

    def clear_policy(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("clear a compliance policy")
        remote, jurisdiction = _arg_remote(args), _arg_jurisdiction(args)
        key = f"{NAME}/policy/{remote}/{jurisdiction}"
        if key not in ctx.state:
            raise InvalidArgument("jurisdiction", f"no policy for {remote}/{jurisdiction}")
        ctx.state.delete(key)
        ctx.emit("policy_cleared", {"remote_chain": remote, "jurisdiction": jurisdiction})

    def set_travel_key(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("set the travel-rule key")
        key = arg_bytes(args, "pubkey", 32)
        ctx.state.set(f"{NAME}/travel_key", key.hex())
        ctx.emit("travel_key_set", {"pubkey": key.hex()})

    # --- anyone -----------------------------------------------------------------------
    def attest(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        att = KycAttestation.from_json(args.get("attestation"))
        public_key = arg_bytes(args, "public_key", 32)
        proof = arg_bytes(args, "proof", SCHNORR_PROOF_SIZE)
        validate_attestation(att, public_key, proof, _Providers(ctx.state), ctx.block.time)
        ctx.state.set(f"{NAME}/kyc/{att.address}", att.to_json())
        ctx.emit(
            "attested",
            {
                "address": att.address,
                "jurisdiction": att.jurisdiction,
                "level": att.level,
                "expiry_ms": att.expiry_ms,
                "provider": att.provider.hex(),
            },
        )

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        return []

    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        if path == "providers":
            prefix = f"{NAME}/provider/"
            return [{"pubkey": k[len(prefix) :], **v} for k, v in state.items(prefix)]
        if path == "attestation":
            return state.get(f"{NAME}/kyc/{arg_address(args, 'address')}")
        if path == "denied":
            return is_denied(state, arg_address(args, "address"))
        if path == "policy":
            policy = get_policy(state, _arg_remote(args), _arg_jurisdiction(args))
            return None if policy is None else policy.to_json()
        if path == "travel_key":
            key = get_travel_key(state)
            return key.hex() if key else None
        raise InvalidArgument("path", f"compliance has no query {path!r}")

    _METHODS: ClassVar[Mapping[str, Callable[..., None]]] = {
        "register_provider": register_provider,
        "revoke_provider": revoke_provider,
        "deny": deny,
        "allow": allow,
        "set_policy": set_policy,
        "clear_policy": clear_policy,
        "set_travel_key": set_travel_key,
        "attest": attest,
    }

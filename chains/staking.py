"""The staking module of a proof-of-stake chain: bonded stake, unbonding, the stake table.

Stake is a bank balance moved into the module's escrow account (``module_address
("staking")``) and credited to a validator key. Calls (``public_key``: the validator's
32-byte ed25519 key, hex; only the key's own address may bond or unbond for it, so a
validator's stake is always its own):

* ``bond {public_key, amount}``: moves ``amount`` of the staking denom from the sender to
  the escrow; the key's bond grows by it (at most ``MAX_STAKE``, ``MAX_VALIDATORS``
  keys).
* ``unbond {public_key, amount}``: the key's bond shrinks by ``amount``
  (``InsufficientStake`` beyond it; the table may not become empty); the funds return to
  the key's address at the end of block ``h + unbonding_blocks`` (``h`` the unbond's
  block).

The stake table (the ``ValidatorSet`` that ``chains.pos`` judges eligibility by, at
``validators/set``) is rewritten from the bonds only at the end of an epoch's last block
(heights ``k · epoch_length``): a bond or unbond executed in block ``h`` takes effect at
height ``ceil(h / epoch_length) · epoch_length + 1`` (the chain announces it in the
epoch's last header as ``next_validators_hash``). Between epochs the table does not
move, whatever is bonded.

Genesis: ``{"denom": D}``; every genesis validator's power is its initial bond, minted
to the escrow (so the denom's supply counts it). The engine parameters are read from the
chain's state (``consensus/params``, written by the chain from its genesis).

State keys::

    staking/denom                                  -> str
    staking/bond/<public key hex>                  -> int (bonded now; the table follows)
    staking/unbonding/<height:020d>/<public key>   -> int (paid at the end of that height)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chains.bank import apply_mint, apply_transfer
from chains.crypto import address, module_address
from chains.encoding import JSONValue
from chains.errors import InsufficientStake, InvalidArgument, Unauthorized, UnknownMethod
from chains.module import BlockInfo, TxContext, arg_amount, arg_bytes, arg_denom
from chains.pos import PosParams
from chains.state import State
from chains.types import Event, ValidatorSet
from chains.validators import MAX_VALIDATORS, VALIDATORS_KEY, get_validator_set

__all__ = [
    "ESCROW",
    "MAX_STAKE",
    "PARAMS_KEY",
    "StakingModule",
    "get_bond",
    "get_bonds",
    "get_pos_params",
]

PARAMS_KEY = "consensus/params"
ESCROW = module_address("staking")
MAX_STAKE = 2**60  # a ValidatorSet power's bound
_BOND = "staking/bond/"
_UNBONDING = "staking/unbonding/"


def get_pos_params(state: State) -> PosParams:
    return PosParams.from_json(state.get(PARAMS_KEY))


def get_bond(state: State, public_key: bytes) -> int:
    v: int = state.get(_BOND + public_key.hex(), 0)
    return v


def get_bonds(state: State) -> dict[bytes, int]:
    return {bytes.fromhex(k[len(_BOND) :]): v for k, v in state.items(_BOND)}


def _unbonding_key(height: int, public_key: bytes) -> str:
    return f"{_UNBONDING}{height:020d}/{public_key.hex()}"


def _owned_key(ctx: TxContext, args: Mapping[str, Any]) -> bytes:
    key = arg_bytes(args, "public_key", 32)
    if address(key) != ctx.sender:
        raise Unauthorized(ctx.sender, f"bond or unbond for validator {key.hex()}")
    return key


class StakingModule:
    """Calls ``bond`` and ``unbond``; queries ``bond {public_key}``, ``bonds``,
    ``unbonding`` and ``table`` (the stake table in effect for the next block)."""

    name = "staking"

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        get_pos_params(state)  # a staking module only runs on a PoS chain
        denom = arg_denom(genesis)
        state.set("staking/denom", denom)
        for v in get_validator_set(state).validators:
            state.set(_BOND + v.public_key.hex(), v.power)
            apply_mint(state, ESCROW, denom, v.power)

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        state = ctx.state
        denom: str = state.get("staking/denom")
        if method == "bond":
            key = _owned_key(ctx, args)
            amount = arg_amount(args)
            bonded = get_bond(state, key) + amount
            if bonded > MAX_STAKE:
                raise InvalidArgument("amount", f"a validator's stake is at most {MAX_STAKE}")
            if bonded == amount and sum(1 for _ in state.items(_BOND)) >= MAX_VALIDATORS:
                raise InvalidArgument("public_key", f"at most {MAX_VALIDATORS} validators")
            apply_transfer(state, ctx.sender, ESCROW, denom, amount)
            state.set(_BOND + key.hex(), bonded)
            ctx.emit("bonded", {"public_key": key.hex(), "amount": amount, "bonded": bonded})
        elif method == "unbond":
            key = _owned_key(ctx, args)
            amount = arg_amount(args)
            bonded = get_bond(state, key)
            if amount > bonded:
                raise InsufficientStake(key.hex(), bonded, amount)
            if amount == bonded and all(k == key for k in get_bonds(state)):
                raise InvalidArgument("amount", "the last bonded stake cannot leave")
            if amount == bonded:
                state.delete(_BOND + key.hex())
            else:
                state.set(_BOND + key.hex(), bonded - amount)
            params = get_pos_params(state)
            due = ctx.block.height + params.unbonding_blocks
            pending = _unbonding_key(due, key)
            state.set(pending, state.get(pending, 0) + amount)
            ctx.emit(
                "unbonding",
                {"public_key": key.hex(), "amount": amount, "bonded": bonded - amount, "due": due},
            )
        else:
            raise UnknownMethod(self.name, method)

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        events: list[Event] = []
        denom: str = state.get("staking/denom")
        stop = _unbonding_key(block.height + 1, b"")
        for key, amount in list(state.items(_UNBONDING, stop=stop)):
            owner = address(bytes.fromhex(key.rsplit("/", 1)[1]))
            apply_transfer(state, ESCROW, owner, denom, amount)
            state.delete(key)
            events.append(
                Event("staking.unbonded", {"address": owner, "denom": denom, "amount": amount})
            )
        if block.height % get_pos_params(state).epoch_length == 0:
            table = ValidatorSet.of(list(get_bonds(state).items()))
            if table.to_json() != state.get(VALIDATORS_KEY):
                state.set(VALIDATORS_KEY, table.to_json())
                events.append(Event("staking.table", {"height": block.height + 1}))
        return events

    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        if path == "bond":
            return get_bond(state, arg_bytes(args, "public_key", 32))
        if path == "bonds":
            return {k.hex(): v for k, v in get_bonds(state).items()}
        if path == "unbonding":
            return {k[len(_UNBONDING) :]: v for k, v in state.items(_UNBONDING)}
        if path == "table":
            return state.get(VALIDATORS_KEY)
        raise InvalidArgument("path", f"staking has no query {path!r}")

"""The bank module: multi-denom balances, supply, and transfers.

State keys::

    bank/bal/<address>/<denom>  -> int  (absent = 0; never negative)
    bank/supply/<denom>         -> int  (sum of all balances of that denom)

The ``apply_*`` functions are the only way any module moves funds, so supply is conserved
by construction: ``transfer`` moves, ``mint`` and ``burn`` change supply and a balance
together. They check before they write, so a refused call changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chains.encoding import JSONValue
from chains.errors import InsufficientFunds, InvalidArgument, UnknownMethod
from chains.module import (
    MAX_AMOUNT,
    BlockInfo,
    TxContext,
    arg_address,
    arg_amount,
    arg_denom,
    is_denom,
)
from chains.state import State
from chains.types import Event

__all__ = [
    "BankModule",
    "apply_burn",
    "apply_mint",
    "apply_transfer",
    "get_balance",
    "get_balances",
    "get_supply",
]


def _bal_key(addr: str, denom: str) -> str:
    return f"bank/bal/{addr}/{denom}"


def get_balance(state: State, addr: str, denom: str) -> int:
    v: int = state.get(f"bank/bal/{addr}/{denom}", 0)
    return v


def get_balances(state: State, addr: str) -> dict[str, int]:
    prefix = f"bank/bal/{addr}/"
    return {k[len(prefix) :]: v for k, v in state.items(prefix)}


def get_supply(state: State, denom: str) -> int:
    v: int = state.get(f"bank/supply/{denom}", 0)
    return v


def _set_balance(state: State, addr: str, denom: str, amount: int) -> None:
    key = _bal_key(addr, denom)
    if amount:
        state.set(key, amount)
    else:
        state.delete(key)


def apply_transfer(state: State, sender: str, recipient: str, denom: str, amount: int) -> None:
    if amount <= 0:
        raise InvalidArgument("amount", "must be positive")
    have = get_balance(state, sender, denom)
    if have < amount:
        raise InsufficientFunds(sender, denom, have, amount)
    if sender == recipient:
        return
    _set_balance(state, sender, denom, have - amount)
    _set_balance(state, recipient, denom, get_balance(state, recipient, denom) + amount)


def apply_mint(state: State, recipient: str, denom: str, amount: int) -> None:
    if amount <= 0:
        raise InvalidArgument("amount", "must be positive")
    supply = get_supply(state, denom)
    if supply + amount > MAX_AMOUNT:
        raise InvalidArgument("amount", f"supply of {denom} would exceed {MAX_AMOUNT}")
    state.set(f"bank/supply/{denom}", supply + amount)
    _set_balance(state, recipient, denom, get_balance(state, recipient, denom) + amount)


def apply_burn(state: State, holder: str, denom: str, amount: int) -> None:
    if amount <= 0:
        raise InvalidArgument("amount", "must be positive")
    have = get_balance(state, holder, denom)
    if have < amount:
        raise InsufficientFunds(holder, denom, have, amount)
    _set_balance(state, holder, denom, have - amount)
    supply = get_supply(state, denom) - amount
    if supply:
        state.set(f"bank/supply/{denom}", supply)
    else:
        state.delete(f"bank/supply/{denom}")


class BankModule:
    """Genesis: ``{"balances": {address: {denom: amount}}}``. Call: ``transfer``."""

    name = "bank"

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        balances = genesis.get("balances", {})
        if not isinstance(balances, Mapping):
            raise InvalidArgument("bank.balances", "expected an object")
        for addr, coins in balances.items():
            arg_address({"address": addr}, "address")
            if not isinstance(coins, Mapping):
                raise InvalidArgument(f"bank.balances.{addr}", "expected an object")
            for denom, amount in coins.items():
                arg_denom({"denom": denom})
                apply_mint(state, addr, denom, arg_amount({"amount": amount}))

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        if method != "transfer":
            raise UnknownMethod(self.name, method)
        to = arg_address(args, "to")
        denom = arg_denom(args)
        amount = arg_amount(args)
        apply_transfer(ctx.state, ctx.sender, to, denom, amount)
        ctx.emit("transfer", {"from": ctx.sender, "to": to, "denom": denom, "amount": amount})

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        return []

    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        if path == "balance":
            return get_balance(state, arg_address(args, "address"), arg_denom(args))
        if path == "balances":
            return get_balances(state, arg_address(args, "address"))
        if path == "supply":
            denom = args.get("denom")
            if not is_denom(denom):
                raise InvalidArgument("denom", "expected a denom")
            return get_supply(state, denom)
        raise InvalidArgument("path", f"bank has no query {path!r}")

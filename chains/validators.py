"""The validators module: the validator set lives in state and only governance changes it.

State key ``validators/set`` holds the set that signs the *next* block, as the wire list
of ``{"public_key", "power"}``. A change made in block H is therefore announced by H's
``next_validators_hash`` and signs from H+1, which is what light clients follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chains.encoding import JSONValue
from chains.errors import InvalidArgument, UnknownMethod
from chains.module import BlockInfo, TxContext, arg_bytes, arg_int
from chains.state import State
from chains.types import Event, ValidatorSet

__all__ = ["VALIDATORS_KEY", "ValidatorsModule", "get_validator_set"]

VALIDATORS_KEY = "validators/set"
MAX_VALIDATORS = 128


def get_validator_set(state: State) -> ValidatorSet:
    return ValidatorSet.from_json(state.get(VALIDATORS_KEY))


class ValidatorsModule:
    """Call ``set_power(public_key, power)`` (governance only; power 0 removes)."""

    name = "validators"

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        return None  # the chain writes the genesis set itself

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        if method != "set_power":
            raise UnknownMethod(self.name, method)
        ctx.require_authority("change the validator set")
        key = arg_bytes(args, "public_key", 32)
        power = arg_int(args, "power", 0, 2**40)
        members = dict(get_validator_set(ctx.state).by_key)
        if power:
            members[key] = power
        else:
            members.pop(key, None)
        if not members:
            raise InvalidArgument("power", "the validator set cannot become empty")
        if len(members) > MAX_VALIDATORS:
            raise InvalidArgument("public_key", f"at most {MAX_VALIDATORS} validators")
        ctx.state.set(VALIDATORS_KEY, ValidatorSet.of(list(members.items())).to_json())
        ctx.emit("power_changed", {"public_key": key.hex(), "power": power})

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        return []

    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        if path == "next":
            return get_validator_set(state).to_json()
        raise InvalidArgument("path", f"validators has no query {path!r}")

"""The ``Module`` protocol: how a chain is composed of bank, light clients, htlc, bridge...

A chain dispatches each transaction to ``module.deliver(ctx, method, args)``. A module
reads and writes the shared :class:`~chains.state.State` under its own key prefix, emits
events through ``ctx.emit`` (the chain prefixes the module's name) and raises an
:class:`~chains.errors.InterlockError` to fail the call, which rolls back every write of
the transaction. ``chains`` never imports a module's package; the composition (devnet
builder, CLI) passes module instances in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, runtime_checkable

from chains.encoding import JSONValue, from_hex
from chains.errors import InvalidArgument, Unauthorized
from chains.state import State
from chains.types import Event

__all__ = [
    "BlockInfo",
    "Module",
    "TxContext",
    "arg_address",
    "arg_amount",
    "arg_bytes",
    "arg_denom",
    "arg_int",
    "arg_str",
    "is_address",
    "is_denom",
]

MAX_AMOUNT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """The block being executed, as modules see it."""

    chain_id: str
    """This chain's id."""
    height: int
    """Height of the block being built."""
    time: int
    """Its time, Unix milliseconds."""
    authority: str
    """The governance address (the only sender allowed to change paths or validators)."""


@dataclass(slots=True)
class TxContext:
    """What a module call may touch."""

    block: BlockInfo
    """The block being executed."""
    state: State
    """The chain state (writes are journaled and roll back on failure)."""
    sender: str
    """Address of the transaction's sender."""
    module: str
    """Name of the module being called."""
    events: list[Event] = field(default_factory=list)
    """Events emitted so far by this transaction."""

    def emit(self, name: str, attributes: Mapping[str, JSONValue]) -> None:
        self.events.append(Event(f"{self.module}.{name}", dict(attributes)))

    def require_authority(self, action: str) -> None:
        if self.sender != self.block.authority:
            raise Unauthorized(self.sender, action)


@runtime_checkable
class Module(Protocol):
    """A chain module. ``name`` is its namespace for calls, state keys and events."""

    name: str

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        """Write the module's genesis state."""

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        """Execute one call; raise an InterlockError to fail (all writes roll back)."""

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        """Run after the block's transactions; return events (module-prefixed)."""

    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        """Read-only view for RPC; raise InvalidArgument for an unknown path."""


# --- argument parsing: every module treats args as hostile ---------------------------


def arg_str(args: Mapping[str, Any], name: str, max_len: int = 128) -> str:
    v = args.get(name)
    if not isinstance(v, str) or not 0 < len(v) <= max_len:
        raise InvalidArgument(name, f"expected a non-empty string of at most {max_len} chars")
    return v


def arg_int(args: Mapping[str, Any], name: str, lo: int = 0, hi: int = MAX_AMOUNT) -> int:
    v = args.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise InvalidArgument(name, f"expected an integer in [{lo}, {hi}]")
    return v


def arg_amount(args: Mapping[str, Any], name: str = "amount") -> int:
    return arg_int(args, name, 1, MAX_AMOUNT)


def arg_bytes(args: Mapping[str, Any], name: str, size: int) -> bytes:
    v = args.get(name)
    try:
        return from_hex(v, name, size)
    except Exception:
        raise InvalidArgument(name, f"expected {size} bytes as lowercase hex") from None


_ADDRESS = re.compile(r"[0-9a-f]{40}")


def is_address(v: object) -> TypeGuard[str]:
    """40 lowercase hex digits. A regex, not a per-character loop: this runs for every
    transfer and every parsed event (hot path)."""
    return isinstance(v, str) and _ADDRESS.fullmatch(v) is not None


def arg_address(args: Mapping[str, Any], name: str) -> str:
    v = args.get(name)
    if not is_address(v):
        raise InvalidArgument(name, "expected an address (40 lowercase hex digits)")
    return v


CHAIN_ID_PATTERN = r"[A-Za-z][A-Za-z0-9._-]{0,63}"
"""The one chain-id grammar (genesis, config files, the wire, bridge paths): a letter,
then up to 63 of ``[A-Za-z0-9._-]``. Never a ``/``, so a wrapped denom's first segment is
exactly one chain id; a letter first, so that segment is a valid denom's start."""
_CHAIN_ID = re.compile(CHAIN_ID_PATTERN)


def is_chain_id(v: object) -> TypeGuard[str]:
    return isinstance(v, str) and _CHAIN_ID.fullmatch(v) is not None


_MODULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def is_module_name(v: object) -> TypeGuard[str]:
    """A lowercase letter, then up to 31 of ``[a-z0-9_]``: no ``.``, since an event's
    type is ``<module>.<name>`` and a dotted module name could match another module's
    events (module ``x.y`` would accept ``x``'s event ``y.locked``)."""
    return isinstance(v, str) and _MODULE_NAME.fullmatch(v) is not None


_DENOM = re.compile(r"[A-Za-z][A-Za-z0-9/:._-]{1,127}")


def is_denom(v: object) -> TypeGuard[str]:
    """A letter, then 1..127 of ``[A-Za-z0-9/:._-]``."""
    return isinstance(v, str) and _DENOM.fullmatch(v) is not None


def arg_denom(args: Mapping[str, Any], name: str = "denom") -> str:
    v = args.get(name)
    if not is_denom(v):
        raise InvalidArgument(name, "expected a denom: a letter then 1..127 of [A-Za-z0-9/:._-]")
    return v

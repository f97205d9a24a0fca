"""The ``confidential`` chain module: encrypted balances whose amounts the chain never learns.

Calls (every argument is untrusted; bytes are lowercase hex)::

    set_auditor(pubkey, proof)        governance: the auditor's ElGamal key, with a
                                      Schnorr proof that someone holds its secret
    register(pubkey, proof)           the sender's ElGamal key, Schnorr proof bound to
                                      this chain and the sender's address
    deposit(denom, amount)            public bank balance -> encrypted balance
    transfer(to, denom, sender_ct, receiver_ct, auditor_ct, equality_proof,
             amount_range_proof, new_commitment, balance_proof, balance_range_proof)
    withdraw(denom, amount, new_commitment, balance_proof, balance_range_proof)

What a transfer proves, so that no amount appears on the chain:

* ``sender_ct``, ``receiver_ct``, ``auditor_ct`` encrypt one amount to the sender's, the
  receiver's and the auditor's keys (n-ciphertext equality), and that amount is in
  ``[0, 2^64)`` (range proof on ``sender_ct``'s commitment): no negative amount, so no
  value is created;
* the sender's new balance ``balance - sender_ct`` holds the value committed in
  ``new_commitment`` (ciphertext–commitment equality, which needs the sender's secret key)
  and that value is in ``[0, 2^64)``: no overdraft.

A withdrawal proves the same two facts about ``balance - amount``. Every proof is made under
a transcript that absorbs the chain id, the call, the sender and every statement element,
so a proof is good for one call only. The auditor (set by governance) decrypts every
transfer's ``auditor_ct`` from the ``confidential.transferred`` event; deposits and
withdrawals are public amounts. The total is checkable by anyone: the escrow account holds,
per denom, exactly ``confidential/supply/<denom>``, the sum of all encrypted balances.

State keys::

    confidential/auditor              -> hex public key
    confidential/key/<address>        -> hex public key
    confidential/bal/<address>/<denom> -> hex ciphertext (absent: the ciphertext of 0)
    confidential/supply/<denom>       -> int, public total deposited minus withdrawn
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chains.bank import apply_transfer
from chains.crypto import module_address
from chains.encoding import JSONValue
from chains.errors import InvalidArgument, UnknownMethod
from chains.module import (
    BlockInfo,
    TxContext,
    arg_address,
    arg_amount,
    arg_bytes,
    arg_denom,
)
from chains.state import State
from chains.types import Event
from zk.elgamal import CIPHERTEXT_SIZE, ZERO, Ciphertext, encrypt_public
from zk.equality import (
    CT_COMMIT_EQUALITY_SIZE,
    ciphertext_equality_size,
    verify_ciphertext_commitment_equality,
    verify_ciphertext_equality,
)
from zk.group import POINT_SIZE, decode_point
from zk.range import RANGE_PROOF_SIZE, verify_range
from zk.schnorr import SCHNORR_PROOF_SIZE, verify_knowledge
from zk.transcript import Transcript

__all__ = [
    "ESCROW",
    "ConfidentialModule",
    "arg_chunked",
    "get_auditor",
    "get_balance",
    "get_key",
    "get_supply",
    "register_transcript",
    "to_chunks",
    "transfer_transcript",
    "withdraw_transcript",
]

NAME = "confidential"
ESCROW = module_address(NAME, "escrow")
"""The bank account that holds every deposited, not yet withdrawn, amount."""


def get_auditor(state: State) -> bytes | None:
    v = state.get(f"{NAME}/auditor")
    return bytes.fromhex(v) if v else None


def get_key(state: State, addr: str) -> bytes | None:
    v = state.get(f"{NAME}/key/{addr}")
    return bytes.fromhex(v) if v else None


def get_balance(state: State, addr: str, denom: str) -> Ciphertext:
    v = state.get(f"{NAME}/bal/{addr}/{denom}")
    # stored by this module only, so already decoded once: no second validation
    return Ciphertext(bytes.fromhex(v[:64]), bytes.fromhex(v[64:])) if v else ZERO


def get_supply(state: State, denom: str) -> int:
    v: int = state.get(f"{NAME}/supply/{denom}", 0)
    return v


def _set_balance(state: State, addr: str, denom: str, ct: Ciphertext) -> None:
    state.set(f"{NAME}/bal/{addr}/{denom}", ct.to_bytes().hex())


def _set_supply(state: State, denom: str, supply: int) -> None:
    if supply:
        state.set(f"{NAME}/supply/{denom}", supply)
    else:
        state.delete(f"{NAME}/supply/{denom}")


# --- transcripts: prover (the wallet) and verifier (this module) build the same ---------


def _base(chain_id: str, call: bytes, sender: str, denom: str) -> Transcript:
    t = Transcript(b"confidential/" + call)
    t.append_message(b"chain-id", chain_id.encode())
    t.append_message(b"sender", sender.encode())
    t.append_message(b"denom", denom.encode())
    return t


def register_transcript(chain_id: str, sender: str, call: bytes = b"register") -> Transcript:
    """For ``register``, and with ``call=b"set_auditor"`` for the auditor's key."""
    return _base(chain_id, call, sender, "")


def transfer_transcript(
    chain_id: str, sender: str, to: str, denom: str, balance: Ciphertext
) -> Transcript:
    t = _base(chain_id, b"transfer", sender, denom)
    t.append_message(b"to", to.encode())
    t.append_message(b"balance", balance.to_bytes())
    return t


def withdraw_transcript(
    chain_id: str, sender: str, denom: str, amount: int, balance: Ciphertext
) -> Transcript:
    t = _base(chain_id, b"withdraw", sender, denom)
    t.append_u64(b"amount", amount)
    t.append_message(b"balance", balance.to_bytes())
    return t


CHUNK = 2048
"""Bytes per hex string of a long argument: the tx encoding caps a string at 4,096 chars,
so a range proof (8,192 bytes) travels as a list of four."""


def arg_chunked(args: Mapping[str, Any], name: str, size: int) -> bytes:
    """``size`` bytes sent as a list of lowercase hex strings of ``CHUNK`` bytes each."""
    v = args.get(name)
    n = -(-size // CHUNK)
    if not isinstance(v, list) or len(v) != n:
        raise InvalidArgument(name, f"expected a list of {n} hex strings")
    parts = [
        arg_bytes({name: part}, name, min(CHUNK, size - i * CHUNK)) for i, part in enumerate(v)
    ]
    return b"".join(parts)


def to_chunks(raw: bytes) -> list[str]:
    """The inverse of :func:`arg_chunked`: what a wallet sends."""
    return [raw[i : i + CHUNK].hex() for i in range(0, len(raw), CHUNK)]


def _arg_ct(args: Mapping[str, Any], name: str) -> Ciphertext:
    return Ciphertext.from_bytes(arg_bytes(args, name, CIPHERTEXT_SIZE))


def _require_key(state: State, addr: str, who: str) -> bytes:
    key = get_key(state, addr)
    if key is None:
        raise InvalidArgument(who, f"{addr} has no registered confidential key")
    return key


def _verify_new_balance(
    t: Transcript, public: bytes, new_balance: Ciphertext, args: Mapping[str, Any]
) -> None:
    commitment = decode_point(
        arg_bytes(args, "new_commitment", POINT_SIZE), "new_commitment", allow_identity=True
    )
    verify_ciphertext_commitment_equality(
        t,
        public,
        new_balance,
        commitment,
        arg_bytes(args, "balance_proof", CT_COMMIT_EQUALITY_SIZE),
    )
    verify_range(t, commitment, arg_chunked(args, "balance_range_proof", RANGE_PROOF_SIZE))


class ConfidentialModule:
    """Genesis: ``{"auditor": hex public key}`` (optional; governance may set it later)."""

    name = NAME

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        auditor = genesis.get("auditor")
        if auditor is not None:
            key = decode_point(arg_bytes({"auditor": auditor}, "auditor", POINT_SIZE), "auditor")
            state.set(f"{NAME}/auditor", key.hex())

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        handler = {
            "set_auditor": self._set_auditor,
            "register": self._register,
            "deposit": self._deposit,
            "transfer": self._transfer,
            "withdraw": self._withdraw,
        }.get(method)
        if handler is None:
            raise UnknownMethod(self.name, method)
        handler(ctx, args)

    def _key_with_proof(self, ctx: TxContext, args: Mapping[str, Any], call: bytes) -> bytes:
        key = decode_point(arg_bytes(args, "pubkey", POINT_SIZE), "pubkey")
        t = register_transcript(ctx.block.chain_id, ctx.sender, call)
        verify_knowledge(t, key, ctx.sender.encode(), arg_bytes(args, "proof", SCHNORR_PROOF_SIZE))
        return key

    def _set_auditor(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        ctx.require_authority("set the confidential auditor key")
        key = self._key_with_proof(ctx, args, b"set_auditor")
        ctx.state.set(f"{NAME}/auditor", key.hex())
        ctx.emit("auditor_set", {"pubkey": key.hex()})

    def _register(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        if get_key(ctx.state, ctx.sender) is not None:
            # a new key would strand the balance encrypted to the old one
            raise InvalidArgument("pubkey", "this address already registered a key")
        key = self._key_with_proof(ctx, args, b"register")
        ctx.state.set(f"{NAME}/key/{ctx.sender}", key.hex())
        ctx.emit("registered", {"address": ctx.sender, "pubkey": key.hex()})

    def _deposit(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        denom, amount = arg_denom(args), arg_amount(args)
        _require_key(ctx.state, ctx.sender, "sender")
        apply_transfer(ctx.state, ctx.sender, ESCROW, denom, amount)
        bal = get_balance(ctx.state, ctx.sender, denom) + encrypt_public(amount)
        _set_balance(ctx.state, ctx.sender, denom, bal)
        _set_supply(ctx.state, denom, get_supply(ctx.state, denom) + amount)
        ctx.emit("deposited", {"address": ctx.sender, "denom": denom, "amount": amount})

    def _transfer(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        to, denom = arg_address(args, "to"), arg_denom(args)
        if to == ctx.sender:
            raise InvalidArgument("to", "a transfer to oneself moves nothing")
        state = ctx.state
        sender_key = _require_key(state, ctx.sender, "sender")
        receiver_key = _require_key(state, to, "to")
        auditor = get_auditor(state)
        if auditor is None:
            raise InvalidArgument("auditor", "governance has not set an auditor key")
        cts = [_arg_ct(args, n) for n in ("sender_ct", "receiver_ct", "auditor_ct")]
        balance = get_balance(state, ctx.sender, denom)
        t = transfer_transcript(ctx.block.chain_id, ctx.sender, to, denom, balance)
        keys = [sender_key, receiver_key, auditor]
        verify_ciphertext_equality(
            t, keys, cts, arg_bytes(args, "equality_proof", ciphertext_equality_size(3))
        )
        verify_range(
            t, cts[0].commitment, arg_chunked(args, "amount_range_proof", RANGE_PROOF_SIZE)
        )
        new_balance = balance - cts[0]
        _verify_new_balance(t, sender_key, new_balance, args)
        _set_balance(state, ctx.sender, denom, new_balance)
        _set_balance(state, to, denom, get_balance(state, to, denom) + cts[1])
        ctx.emit(
            "transferred",
            {
                "from": ctx.sender,
                "to": to,
                "denom": denom,
                "receiver_ct": cts[1].to_bytes().hex(),
                "auditor_ct": cts[2].to_bytes().hex(),
            },
        )

    def _withdraw(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        denom, amount = arg_denom(args), arg_amount(args)
        state = ctx.state
        sender_key = _require_key(state, ctx.sender, "sender")
        balance = get_balance(state, ctx.sender, denom)
        t = withdraw_transcript(ctx.block.chain_id, ctx.sender, denom, amount, balance)
        new_balance = balance - encrypt_public(amount)
        _verify_new_balance(t, sender_key, new_balance, args)
        supply = get_supply(state, denom)
        if supply < amount:  # cannot happen while the proofs hold; refuse, never go negative
            raise InvalidArgument("amount", "exceeds the confidential supply")
        _set_balance(state, ctx.sender, denom, new_balance)
        _set_supply(state, denom, supply - amount)
        apply_transfer(state, ESCROW, ctx.sender, denom, amount)
        ctx.emit("withdrawn", {"address": ctx.sender, "denom": denom, "amount": amount})

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        return []

    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        if path == "auditor":
            auditor = get_auditor(state)
            return auditor.hex() if auditor else None
        if path == "key":
            key = get_key(state, arg_address(args, "address"))
            return key.hex() if key else None
        if path == "balance":
            addr = arg_address(args, "address")
            return get_balance(state, addr, arg_denom(args)).to_bytes().hex()
        if path == "supply":
            return get_supply(state, arg_denom(args))
        raise InvalidArgument("path", f"confidential has no query {path!r}")

"""The prover's side of the ``confidential`` module: the call arguments a wallet sends.

Pure: the wallet passes in what it knows (its key pair, its balance ciphertext as the chain
holds it, and the value that ciphertext holds, which it tracks or decrypts) and gets the
``args`` of a transaction. Each builder refuses, with ``InvalidWitness``, a call the chain
would refuse for want of funds, so no doomed proof is made.
"""

from __future__ import annotations

import hashlib

from zk.confidential import (
    register_transcript,
    to_chunks,
    transfer_transcript,
    withdraw_transcript,
)
from zk.elgamal import Ciphertext, ElGamalKeypair, commit, encrypt, encrypt_public
from zk.equality import prove_ciphertext_commitment_equality, prove_ciphertext_equality
from zk.errors import InvalidWitness
from zk.group import L, random_scalar
from zk.range import prove_range
from zk.schnorr import prove_knowledge
from zk.transcript import Transcript

__all__ = ["keypair_from_seed", "register_args", "transfer_args", "withdraw_args"]


def keypair_from_seed(seed: bytes) -> ElGamalKeypair:
    """The account's ElGamal key pair, derived from its ed25519 seed (so the keystore's
    one secret backs both): SHA-512 of a domain label and the seed, reduced mod ``L``.
    The hash is one-way, so the ElGamal secret reveals nothing of the signing key."""
    digest = hashlib.sha512(b"interlock/zk/v1/elgamal-key" + seed).digest()
    return ElGamalKeypair.from_secret(int.from_bytes(digest, "little") % L or 1)


def register_args(
    chain_id: str, address: str, keypair: ElGamalKeypair, call: bytes = b"register"
) -> dict[str, object]:
    """``register`` (or, with ``call=b"set_auditor"``, ``set_auditor``) arguments."""
    t = register_transcript(chain_id, address, call)
    proof = prove_knowledge(t, keypair.secret, address.encode())
    return {"pubkey": keypair.public.hex(), "proof": proof.to_bytes().hex()}


def _new_balance_args(
    t: Transcript, keypair: ElGamalKeypair, new_balance: Ciphertext, new_value: int
) -> dict[str, object]:
    opening = random_scalar()
    commitment = commit(new_value, opening)
    eq = prove_ciphertext_commitment_equality(
        t, keypair, new_balance, new_value, commitment, opening
    )
    rp = prove_range(t, commitment, new_value, opening)
    return {
        "new_commitment": commitment.hex(),
        "balance_proof": eq.to_bytes().hex(),
        "balance_range_proof": to_chunks(rp.to_bytes()),
    }


def _check_funds(balance_value: int, amount: int) -> None:
    if not 0 < amount <= balance_value:
        raise InvalidWitness("a payment", f"amount {amount} not in [1, balance {balance_value}]")


def transfer_args(
    chain_id: str,
    sender: str,
    keypair: ElGamalKeypair,
    balance: Ciphertext,
    balance_value: int,
    to: str,
    receiver_public: bytes,
    auditor_public: bytes,
    denom: str,
    amount: int,
) -> dict[str, object]:
    """Arguments of ``transfer``: ``amount`` from ``sender`` (holding ``balance_value``)."""
    _check_funds(balance_value, amount)
    keys = [keypair.public, receiver_public, auditor_public]
    openings = [random_scalar() for _ in keys]
    cts = [encrypt(k, amount, r) for k, r in zip(keys, openings, strict=True)]
    t = transfer_transcript(chain_id, sender, to, denom, balance)
    eq = prove_ciphertext_equality(t, keys, cts, amount, openings)
    rp = prove_range(t, cts[0].commitment, amount, openings[0])
    args: dict[str, object] = {
        "to": to,
        "denom": denom,
        "sender_ct": cts[0].to_bytes().hex(),
        "receiver_ct": cts[1].to_bytes().hex(),
        "auditor_ct": cts[2].to_bytes().hex(),
        "equality_proof": eq.to_bytes().hex(),
        "amount_range_proof": to_chunks(rp.to_bytes()),
    }
    args.update(_new_balance_args(t, keypair, balance - cts[0], balance_value - amount))
    return args


def withdraw_args(
    chain_id: str,
    sender: str,
    keypair: ElGamalKeypair,
    balance: Ciphertext,
    balance_value: int,
    denom: str,
    amount: int,
) -> dict[str, object]:
    """Arguments of ``withdraw``: ``amount`` back to the public bank balance."""
    _check_funds(balance_value, amount)
    t = withdraw_transcript(chain_id, sender, denom, amount, balance)
    args: dict[str, object] = {"denom": denom, "amount": amount}
    new_balance = balance - encrypt_public(amount)
    args.update(_new_balance_args(t, keypair, new_balance, balance_value - amount))
    return args

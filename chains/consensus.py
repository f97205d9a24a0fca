"""BFT proof-of-authority: signing and checking commits.

A header is final when validators holding more than 2/3 of the voting power of the set
named by its ``validators_hash`` have signed ``vote_sign_bytes(chain_id, height,
header.hash)``. Proposers rotate by weighted round robin (``ValidatorSet.proposer``).
A validator-set change executed in block H is announced by H's ``next_validators_hash``
and signs from H+1 on.

Pure functions: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from chains.crypto import PrivateKey, verify
from chains.errors import (
    DuplicateSigner,
    InsufficientVotingPower,
    InvalidCommit,
    UnknownSigner,
)
from chains.types import Commit, CommitSig, Header, ValidatorSet, vote_sign_bytes

__all__ = ["TWO_THIRDS", "sign_commit", "tally_commit", "verify_commit"]

TWO_THIRDS = (2, 3)


def sign_commit(header: Header, keys: Iterable[PrivateKey]) -> Commit:
    """The commit of ``keys`` on ``header`` (a devnet node holds its validators' keys)."""
    block_hash = header.hash
    msg = vote_sign_bytes(header.chain_id, header.height, block_hash)
    sigs = sorted((CommitSig(k.public_key, k.sign(msg)) for k in keys), key=lambda s: s.validator)
    return Commit(header.height, block_hash, tuple(sigs))


def tally_commit(
    header: Header,
    commit: Commit,
    valset: ValidatorSet,
    *,
    allow_unknown: bool = False,
) -> int:
    """Voting power of ``valset`` behind ``commit``; validates every signature.

    Raises :class:`InvalidCommit` if the commit is not for this header,
    :class:`DuplicateSigner` for a validator listed twice, :class:`UnknownSigner` for a
    signer outside ``valset`` (unless ``allow_unknown``, used when counting the trusted
    set's share of a skipping update), and ``InvalidCommit`` for any bad signature.
    """
    block_hash = header.hash
    if commit.height != header.height or commit.block_hash != block_hash:
        raise InvalidCommit("commit is for another header")
    msg = vote_sign_bytes(header.chain_id, header.height, block_hash)
    seen: set[bytes] = set()
    power = 0
    for sig in commit.signatures:
        if sig.validator in seen:
            raise DuplicateSigner(sig.validator.hex())
        seen.add(sig.validator)
        p = valset.by_key.get(sig.validator)
        if p is None:
            if allow_unknown:
                continue
            raise UnknownSigner(sig.validator.hex())
        if not verify(sig.validator, msg, sig.signature):
            raise InvalidCommit(f"bad signature from {sig.validator.hex()}")
        power += p
    return power


def verify_commit(
    header: Header,
    commit: Commit,
    valset: ValidatorSet,
    threshold: tuple[int, int] = TWO_THIRDS,
    *,
    allow_unknown: bool = False,
) -> None:
    """Check that more than ``threshold`` of ``valset``'s power signed ``header``."""
    power = tally_commit(header, commit, valset, allow_unknown=allow_unknown)
    num, den = threshold
    if power * den <= valset.total_power * num:
        raise InsufficientVotingPower(power, valset.total_power, f"more than {num}/{den}")

"""Zero-knowledge proofs for private payments: pure, no I/O, every point op in libsodium.

    group       the order-L subgroup of edwards25519 (why not ristretto255: see there)
    transcript  a Merlin-style domain-separated Fiat–Shamir transcript
    schnorr     RFC 8235 proof of knowledge of a secret key
    elgamal     twisted ElGamal keys and ciphertexts (homomorphic), Pedersen commitments
    equality    ciphertext–commitment and n-ciphertext equality proofs
    range       a range proof for [0, 2^64) by bit decomposition and OR-proofs

Provers take the witness and a ``Transcript``; verifiers take untrusted bytes and the
same transcript, and raise a :class:`zk.errors.ZkError` (``MalformedEncoding`` before any
arithmetic, ``ProofRejected`` after) or return ``None``.
"""

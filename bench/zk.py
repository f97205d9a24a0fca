"""Proof generation and verification rates of every zk proof type, on one core.

    python bench/zk.py [--seconds 1.0]

Each figure is operations per second of CPU time (``time.process_time``), so a loaded
machine slows the figures less than wall time would; each loop runs at least three times
and at least ``--seconds``. ``transfer_verify_per_s`` is what one chain must check per
confidential transfer: a 3-ciphertext equality proof, a ciphertext–commitment equality
proof and two range proofs (the amount's and the sender's new balance).
``confidential_transfers_per_s`` executes and commits one block of ``--transfers``
confidential transfers on a devnet chain (proofs made beforehand, as wallets would). The
last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chains.devnet import base_modules, build_devnet  # noqa: E402
from chains.types import Tx  # noqa: E402
from zk.confidential import ConfidentialModule, get_balance  # noqa: E402
from zk.elgamal import ElGamalKeypair, commit, encrypt  # noqa: E402
from zk.equality import (  # noqa: E402
    prove_ciphertext_commitment_equality,
    prove_ciphertext_equality,
    verify_ciphertext_commitment_equality,
    verify_ciphertext_equality,
)
from zk.range import prove_range, verify_range  # noqa: E402
from zk.schnorr import prove_knowledge, verify_knowledge  # noqa: E402
from zk.transcript import Transcript  # noqa: E402
from zk.wallet import register_args, transfer_args  # noqa: E402


def rate(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.process_time()
    while n < 3 or time.process_time() - start < seconds:
        fn()
        n += 1
    return n / (time.process_time() - start)


def t() -> Transcript:
    return Transcript(b"bench")


def confidential_transfers_per_s(senders: int) -> float:
    """One block of ``senders`` confidential transfers (proofs made beforehand) on a devnet
    chain: CPU time to execute and commit it."""
    names = [f"s{i}" for i in range(senders)] + ["rcv"]
    dc = build_devnet(("bench",), accounts=names)[0]
    chain = dc.build(lambda: [*base_modules(), ConfidentialModule()])
    auditor = ElGamalKeypair.generate()
    kps = {n: ElGamalKeypair.generate() for n in names}
    clock = iter(range(1_000, 10**9, 1_000))

    def block(txs: list[Tx]) -> None:
        res = chain.produce_block(txs, next(clock), dc.validator_keys)
        bad = [r.error for r in res.block.receipts if not r.ok]
        if bad:
            raise SystemExit(f"bench setup failed: {bad[0]}")

    def tx(name: str, method: str, args: dict[str, object]) -> Tx:
        key = dc.accounts[name]
        nonce = chain.next_nonce(key.address)
        return Tx.create(key, chain.chain_id, nonce, "confidential", method, args)

    gov = dc.accounts["gov"].address
    block([tx("gov", "set_auditor", register_args(chain.chain_id, gov, auditor, b"set_auditor"))])
    block(
        [
            tx(n, "register", register_args(chain.chain_id, dc.accounts[n].address, kps[n]))
            for n in names
        ]
    )
    block([tx(n, "deposit", {"denom": dc.denom, "amount": 1000}) for n in names[:-1]])
    state = chain.read_state()
    rcv = dc.accounts["rcv"].address
    txs = [
        tx(
            n,
            "transfer",
            transfer_args(
                chain.chain_id,
                dc.accounts[n].address,
                kps[n],
                get_balance(state, dc.accounts[n].address, dc.denom),
                1000,
                rcv,
                kps["rcv"].public,
                auditor.public,
                dc.denom,
                7,
            ),
        )
        for n in names[:-1]
    ]
    start = time.process_time()
    block(txs)
    return senders / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--transfers", type=int, default=20)
    opts = parser.parse_args()
    secs = opts.seconds

    alice, bob, auditor = (ElGamalKeypair.generate() for _ in range(3))
    keys = [alice.public, bob.public, auditor.public]
    openings = [11, 22, 33]
    cts = [encrypt(p, 250, r) for p, r in zip(keys, openings, strict=True)]
    balance = encrypt(alice.public, 1000, 7)
    fresh = commit(1000, 99)
    value, opening = 2**63 + 12345, 424242
    c = commit(value, opening)

    schnorr = prove_knowledge(t(), alice.secret, b"alice").to_bytes()
    ct_eq = prove_ciphertext_equality(t(), keys, cts, 250, openings).to_bytes()
    cc_eq = prove_ciphertext_commitment_equality(t(), alice, balance, 1000, fresh, 99).to_bytes()
    rng_p = prove_range(t(), c, value, opening).to_bytes()

    out: dict[str, float | int | str] = {}

    def record(name: str, prove: Callable[[], object], verify: Callable[[], object]) -> None:
        out[f"{name}_prove_per_s"] = round(rate(prove, secs), 1)
        out[f"{name}_verify_per_s"] = round(rate(verify, secs), 1)
        print(
            f"{name:28} prove {out[f'{name}_prove_per_s']:>9}/s   "
            f"verify {out[f'{name}_verify_per_s']:>9}/s"
        )

    record(
        "schnorr",
        lambda: prove_knowledge(t(), alice.secret, b"alice"),
        lambda: verify_knowledge(t(), alice.public, b"alice", schnorr),
    )
    record(
        "ciphertext_equality_3",
        lambda: prove_ciphertext_equality(t(), keys, cts, 250, openings),
        lambda: verify_ciphertext_equality(t(), keys, cts, ct_eq),
    )
    record(
        "ciphertext_commitment_equality",
        lambda: prove_ciphertext_commitment_equality(t(), alice, balance, 1000, fresh, 99),
        lambda: verify_ciphertext_commitment_equality(t(), alice.public, balance, fresh, cc_eq),
    )
    record(
        "range_64",
        lambda: prove_range(t(), c, value, opening),
        lambda: verify_range(t(), c, rng_p),
    )

    def transfer_verify() -> None:
        verify_ciphertext_equality(t(), keys, cts, ct_eq)
        verify_ciphertext_commitment_equality(t(), alice.public, balance, fresh, cc_eq)
        verify_range(t(), c, rng_p)
        verify_range(t(), c, rng_p)

    out["transfer_verify_per_s"] = round(rate(transfer_verify, secs), 1)
    out["confidential_transfers_per_s"] = round(confidential_transfers_per_s(opts.transfers), 1)
    out["load_1min"] = round(os.getloadavg()[0], 2)
    out["cpus"] = os.cpu_count() or 0
    print(json.dumps(out))


if __name__ == "__main__":
    main()

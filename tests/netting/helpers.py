"""A hand-carried round: every envelope goes to every other party at once, in order."""

from __future__ import annotations

import random
from collections.abc import Callable

from chains.crypto import PrivateKey
from netting.protocol import Envelope, Party, RoundSpec, default_threshold


def bank_keys(n: int, seed: str = "netting-tests") -> list[PrivateKey]:
    return [PrivateKey.derive(seed, f"bank-{i}") for i in range(n)]


def random_book(
    rng: random.Random, n: int, high: int = 10**9, density: float = 0.7
) -> list[list[int]]:
    return [
        [0 if i == k or rng.random() > density else rng.randint(1, high) for k in range(n)]
        for i in range(n)
    ]


def make_round(
    book: list[list[int]],
    *,
    t: int | None = None,
    round_id: str = "round-1",
    start: float = 0.0,
    phase_s: float = 10.0,
    seed: str = "netting-tests",
) -> tuple[RoundSpec, list[Party]]:
    n = len(book)
    keys = bank_keys(n, seed)
    spec = RoundSpec(
        round_id,
        tuple(k.public_key for k in keys),
        default_threshold(n) if t is None else t,
        start,
        phase_s,
    )
    return spec, [Party(spec, k, row) for k, row in zip(keys, book, strict=True)]


Tamper = Callable[[Envelope, int], Envelope | None]
"""Rewrites (or drops, with None) an envelope on its way to one recipient."""


def deliver(
    parties: list[Party],
    outgoing: list[Envelope],
    now: float,
    *,
    offline: frozenset[int] = frozenset(),
    tamper: Tamper | None = None,
    wire: list[Envelope] | None = None,
) -> None:
    """Carry envelopes (and all they cause) until nothing is left to send."""
    queue = list(outgoing)
    while queue:
        env = queue.pop(0)
        if wire is not None:
            wire.append(env)
        for j, p in enumerate(parties):
            if j == env.sender or j in offline or p.finished:
                continue
            got = env if tamper is None else tamper(env, j)
            if got is not None:
                queue.extend(p.receive(got, now))


def run_round(
    parties: list[Party],
    *,
    offline_after_share: frozenset[int] = frozenset(),
    absent: frozenset[int] = frozenset(),
    tamper: Tamper | None = None,
    wire: list[Envelope] | None = None,
) -> None:
    """Start every party present at t=1, then let each deadline pass in turn."""
    spec = parties[0].spec
    out: list[Envelope] = []
    for i, p in enumerate(parties):
        if i not in absent:
            out.extend(p.start(1.0))
    down = offline_after_share | absent
    deliver(parties, out, 1.0, offline=down, tamper=tamper, wire=wire)
    for k in range(1, 5):
        now = spec.start + k * spec.phase_s
        for i, p in enumerate(parties):
            if i not in down and not p.finished:
                deliver(parties, p.tick(now), now, offline=down, tamper=tamper, wire=wire)


# --- settlement: round files and banks as processes -----------------------------------


def round_toml(
    round_id: str,
    start: float,
    parties: list[tuple[str, PrivateKey, str]],
    *,
    phase_s: float = 30.0,
    asset: tuple[str, str] = ("chain-a", "usd"),
) -> str:
    """A round file: ``parties`` as (name, key, chain)."""
    out = f'id = "{round_id}"\nstart = {start}\nphase_s = {phase_s}\n'
    out += f'\n[asset]\nchain = "{asset[0]}"\ndenom = "{asset[1]}"\n'
    for name, key, chain in parties:
        pk = key.public_key.hex()
        out += f'\n[[parties]]\nname = "{name}"\nkey = "{pk}"\nchain = "{chain}"\n'
    return out

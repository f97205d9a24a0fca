"""Devnets: N independent chains from one seed, each with its own validators and genesis.

Keys are derived deterministically from the seed, so a devnet is reproducible and its
well-known accounts (``alice``, ``bob``, ...) can sign from tests, the CLI and docs.
Never put real funds on devnet keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chains.bank import BankModule
from chains.chain import Chain, Genesis
from chains.crypto import PrivateKey
from chains.engine import Engine
from chains.lightclient import LightClientModule
from chains.module import Module
from chains.pos import PosParams
from chains.staking import StakingModule
from chains.types import ValidatorSet
from chains.validators import ValidatorsModule

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_DENOMS",
    "DevnetChain",
    "base_modules",
    "build_devnet",
]

DEFAULT_ACCOUNTS = ("alice", "bob", "carol", "dave", "relayer")
DEFAULT_DENOMS = ("usd", "eur", "gbp", "jpy", "chf", "sgd")
DEFAULT_BALANCE = 10**12


def base_modules(consensus: Engine | None = None) -> list[Module]:
    """The modules every chain of that engine has: bank, light clients, and validators
    (governance sets the BFT or PoW set) or, on a PoS chain, staking (stake sets it)."""
    if isinstance(consensus, PosParams):
        return [BankModule(), StakingModule(), LightClientModule()]
    return [BankModule(), ValidatorsModule(), LightClientModule()]


@dataclass(frozen=True, slots=True)
class DevnetChain:
    """One devnet chain's definition and secrets."""

    genesis: Genesis
    """Its genesis."""
    validator_keys: tuple[PrivateKey, ...]
    """Its validators' signing keys."""
    accounts: Mapping[str, PrivateKey]
    """Well-known funded accounts by name, plus ``gov`` (the authority)."""
    denom: str
    """The chain's native denom."""

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    def build(self, modules: Callable[[], Sequence[Module]] | None = None) -> Chain:
        """The chain, with ``modules()`` or else its engine's :func:`base_modules`."""
        if modules is None:
            return Chain(self.genesis, base_modules(self.genesis.consensus))
        return Chain(self.genesis, modules())


def build_devnet(
    chain_ids: Sequence[str] = ("chain-a", "chain-b"),
    *,
    seed: str = "interlock-devnet",
    validators: int = 4,
    accounts: Sequence[str] = DEFAULT_ACCOUNTS,
    denoms: Mapping[str, str] | None = None,
    balance: int = DEFAULT_BALANCE,
    genesis_time: int = 0,
    extra_app_state: Mapping[str, Mapping[str, object]] | None = None,
    consensus: Mapping[str, Engine] | None = None,
) -> list[DevnetChain]:
    """Deterministic definitions of independent chains.

    Every account holds ``balance`` of its chain's native denom (``denoms[chain_id]``, or
    usd, eur, gbp, ... by position). ``extra_app_state`` adds module genesis (htlc, bridge).
    ``consensus`` names the chains that are not BFT, with their engine's parameters; a
    PoS chain's validators bond their power (10 each) in its native denom.
    """
    if len(set(chain_ids)) != len(chain_ids):
        raise ValueError("chain ids must be unique")
    out = []
    for i, cid in enumerate(chain_ids):
        denom = (denoms or {}).get(cid, DEFAULT_DENOMS[i % len(DEFAULT_DENOMS)])
        vkeys = tuple(PrivateKey.derive(seed, cid, "validator", str(v)) for v in range(validators))
        accts = {name: PrivateKey.derive(seed, name) for name in accounts}
        accts["gov"] = PrivateKey.derive(seed, cid, "gov")
        app_state: dict[str, dict[str, object]] = {
            "bank": {"balances": {k.address: {denom: balance} for k in accts.values()}}
        }
        engine = (consensus or {}).get(cid)
        if isinstance(engine, PosParams):
            app_state["staking"] = {"denom": denom}
        for mod, gen in (extra_app_state or {}).items():
            app_state.setdefault(mod, {}).update(gen)
        genesis = Genesis(
            chain_id=cid,
            time=genesis_time,
            validators=ValidatorSet.of([(k.public_key, 10) for k in vkeys]),
            authority=accts["gov"].address,
            app_state=app_state,
            consensus=engine,
        )
        out.append(DevnetChain(genesis, vkeys, accts, denom))
    return out

"""TOML configuration of chains and devnets, validated by pydantic at the edge.

Two kinds of file:

* a **chain file** (``interlock chain start --config configs/chain-a.toml``): one chain
  run as its own process, with its data dir, RPC address and bus URL;
* a **devnet file** (``interlock devnet --config configs/devnet.toml``): several chains in
  one process, sharing one bus.

Every error is one line that names the file, the key path and what was expected, e.g.
``configs/chain-a.toml: rpc.port: expected a number less than or equal to 65535, got 70000``,
and raises :class:`~chains.errors.ConfigError`. A file is converted to core types
(:class:`ChainSettings` with its :class:`~chains.chain.Genesis` and keys) at once; nothing
past this module sees pydantic.

Devnet keys (validators, the well-known accounts ``alice``, ``bob``...) derive from
``seed`` exactly as :func:`chains.devnet.build_devnet` derives them, so a chain started
from a chain file and the same chain inside a devnet file have the same genesis. Never put
real funds on devnet keys. Relative paths are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError

from bridge.module import BridgeModule
from chains.bank import BankModule
from chains.chain import Genesis
from chains.crypto import PrivateKey
from chains.devnet import DEFAULT_ACCOUNTS, DEFAULT_BALANCE, DEFAULT_DENOMS, build_devnet
from chains.encoding import MAX_INT
from chains.errors import ConfigError, InterlockError
from chains.lightclient import LightClientModule
from chains.module import Module
from chains.pos import PosParams
from chains.pow import PowParams
from chains.service.configfile import (
    AccountName,
    Address,
    Amount,
    BusUrl,
    ChainId,
    Denom,
    HeaderTimeout,
    Host,
    Interval,
    KeySeed,
    MaxConnections,
    Seed,
    config_error,
    read_toml,
)
from chains.service.eventindex import DEFAULT_TYPES, validate_type_patterns
from chains.service.rpc import RpcLimits
from chains.staking import MAX_STAKE, StakingModule
from chains.types import ValidatorSet
from chains.validators import ValidatorsModule
from htlc.module import HTLCModule
from interlock.keys import DEFAULT_SEED
from zk.confidential import ConfidentialModule
from zk.registry import ComplianceModule

__all__ = [
    "DEFAULT_MODULES",
    "DEFAULT_SEED",
    "MODULES",
    "ChainConfig",
    "ChainSettings",
    "DevnetConfig",
    "RpcSettings",
    "load_chain_config",
    "load_devnet_config",
    "parse_chain_config",
    "parse_devnet_config",
]

MODULES: Mapping[str, Callable[[], Module]] = {
    "bank": BankModule,
    "validators": ValidatorsModule,
    "staking": StakingModule,
    "lightclient": LightClientModule,
    "htlc": HTLCModule,
    "bridge": BridgeModule,
    "confidential": ConfidentialModule,
    "compliance": ComplianceModule,
}
"""Every module a chain can be built from, by name (the composition: ``chains`` never
imports ``htlc`` or ``bridge``; this layer does)."""
# confidential balances are opt-in: a chain lists "confidential" in its modules to run them.
# compliance is in by default and inert until governance registers a policy or a denial:
# the bridge consults it on every transfer
DEFAULT_MODULES = ("bank", "validators", "lightclient", "htlc", "bridge", "compliance")
# a PoS chain's stake table is its staking module's, never governance's (chains.chain)
POS_DEFAULT_MODULES = tuple("staking" if m == "validators" else m for m in DEFAULT_MODULES)
_RPC_DEFAULTS = RpcLimits()


# --- field types ------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class RpcModel(_Model):
    """``[rpc]``: where the node serves its JSON RPC."""

    host: Host = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, strict=True)]
    max_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024, strict=True)] = (
        _RPC_DEFAULTS.max_body_bytes
    )
    max_batch: Annotated[int, Field(ge=1, le=100_000, strict=True)] = _RPC_DEFAULTS.max_batch
    commit_timeout: Interval = _RPC_DEFAULTS.commit_timeout
    verify_processes: Annotated[int, Field(ge=0, le=64, strict=True)] = (
        _RPC_DEFAULTS.verify_processes
    )
    header_timeout: HeaderTimeout = _RPC_DEFAULTS.header_timeout
    max_connections: MaxConnections = _RPC_DEFAULTS.max_connections


def _index_types(v: list[str]) -> list[str]:
    validate_type_patterns(v)
    return v


class IndexModel(_Model):
    """``[index]``: the event index ``GET /events`` searches (chains.service.eventindex)."""

    enabled: StrictBool = True
    types: Annotated[list[str], AfterValidator(_index_types)] = Field(
        default_factory=lambda: list(DEFAULT_TYPES)
    )


class BusModel(_Model):
    """``[bus]``: ``memory://`` or ``mqtt[s]://host[:port][?options]``."""

    url: BusUrl = "memory://"


class ValidatorsModel(_Model):
    """``[validators]``: ``count`` keys derived from the seed, or explicit ``keys``."""

    count: Annotated[int, Field(ge=1, le=128, strict=True)] = 4
    keys: list[KeySeed] | None = Field(default=None, min_length=1, max_length=128)
    power: Annotated[int, Field(ge=1, le=2**40, strict=True)] = 10


class GenesisModel(_Model):
    """``[genesis]``: time, native denom, funded devnet accounts and extra balances."""

    time: Annotated[int, Field(ge=0, le=MAX_INT, strict=True)] = 0
    denom: Denom | None = None
    accounts: list[AccountName] = Field(default=list(DEFAULT_ACCOUNTS), max_length=1000)
    balance: Amount = DEFAULT_BALANCE
    balances: dict[Address, dict[Denom, Amount]] = Field(default_factory=dict)


def _modules(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        raise ValueError(f"expected module names from {list(MODULES)}, unknown {unknown}")
    if len(set(names)) != len(names):
        raise ValueError("a module is listed twice")
    if "bank" not in names:
        raise ValueError("expected the bank module in the list (genesis balances live there)")
    if "bridge" in names and "lightclient" not in names:
        raise ValueError("the bridge module needs the lightclient module")
    return names


class PowModel(_Model):
    """``[pow]``: a proof-of-work chain's engine (``consensus = "pow"``); the retarget
    rule aims at the chain's ``block_interval``."""

    hashes_per_block: Annotated[int, Field(ge=1, le=2**48, strict=True)] = 4_096
    """The easiest (and first) difficulty: expected hashes per block."""
    finality_depth: Annotated[int, Field(ge=1, le=10_000, strict=True)] = 6
    retarget_window: Annotated[int, Field(ge=1, le=100_000, strict=True)] = 16
    max_adjust: Annotated[int, Field(ge=1, le=16, strict=True)] = 4
    max_future_ms: Annotated[int, Field(ge=0, le=86_400_000, strict=True)] = 15_000


def _target(v: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", v) or int(v, 16) == 0:
        raise ValueError("expected a nonzero 256-bit target as 64 lowercase hex digits")
    return v


Target = Annotated[str, AfterValidator(_target)]


class PosModel(_Model):
    """``[pos]``: a proof-of-stake chain's engine (``consensus = "pos"``), the keys of
    ``chains.pos.PosParams`` (``block_interval_ms`` is the chain's ``block_interval``)
    and the genesis validators' bonded stakes."""

    stakes: list[Annotated[int, Field(ge=1, le=MAX_STAKE, strict=True)]] | None = Field(
        default=None, min_length=1, max_length=128
    )
    """Each genesis validator's bond, in ``validators`` order (default: its ``power``)."""
    target: Target | None = None
    """Eligibility per unit of stake (default ``2^256 // total stake``: about one
    eligible validator a slot)."""
    epoch_length: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] = 8
    unbonding_blocks: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] = 16
    finality_depth: Annotated[int, Field(ge=1, le=10_000, strict=True)] = 6
    min_block_ms: Annotated[int, Field(ge=1, le=86_400_000, strict=True)] | None = None
    """Least time between blocks (default: half the block interval)."""
    max_future_ms: Annotated[int, Field(ge=0, le=86_400_000, strict=True)] = 15_000


class _ChainCommon(_Model):
    chain_id: ChainId
    consensus: Literal["bft", "pow", "pos"] = "bft"
    pow: PowModel | None = None
    pos: PosModel | None = None
    modules: Annotated[list[str], AfterValidator(_modules)] = Field(
        default_factory=lambda: list(DEFAULT_MODULES)
    )
    max_block_txs: Annotated[int, Field(ge=1, le=100_000, strict=True)] = 10_000
    mempool_capacity: Annotated[int, Field(ge=1, le=1_000_000, strict=True)] = 20_000
    validators: ValidatorsModel = ValidatorsModel()
    genesis: GenesisModel = GenesisModel()
    index: IndexModel = IndexModel()


class ChainFileModel(_ChainCommon):
    """A chain file: one chain as its own process."""

    data_dir: Annotated[str, Field(min_length=1, max_length=4096)]
    seed: Seed = DEFAULT_SEED
    block_interval: Interval = 1.0
    rpc: RpcModel
    bus: BusModel = BusModel()


class DevnetChainModel(_ChainCommon):
    """One ``[[chains]]`` entry of a devnet file (seed and interval are the devnet's)."""

    rpc: RpcModel | None = None


class DevnetFileModel(_Model):
    """A devnet file: several chains in one process on one bus."""

    seed: Seed = DEFAULT_SEED
    block_interval: Interval = 1.0
    data_dir: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    bus: BusModel = BusModel()
    chains: list[DevnetChainModel] = Field(min_length=1, max_length=32)


# --- core values ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RpcSettings:
    """Where and how a node serves RPC."""

    host: str
    """Address to bind (127.0.0.1 by default)."""
    port: int
    """TCP port; 0 picks a free one (printed at start)."""
    limits: RpcLimits
    """Request limits."""


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """Everything needed to run one chain, as core values."""

    genesis: Genesis
    """The chain's genesis (deterministic from the config)."""
    validator_keys: tuple[PrivateKey, ...]
    """Signing keys of the validators this process runs (devnet: all of them)."""
    accounts: Mapping[str, PrivateKey]
    """Well-known funded accounts by name, plus ``gov``."""
    denom: str
    """The native denom."""
    block_interval: float
    """Seconds between blocks."""
    max_block_txs: int
    """Most transactions per block."""
    mempool_capacity: int
    """Most transactions waiting."""
    rpc: RpcSettings | None
    """RPC server, if any."""
    modules: tuple[str, ...] = DEFAULT_MODULES
    """Names of the chain's modules (see :data:`MODULES`), in dispatch order."""
    index_types: tuple[str, ...] | None = DEFAULT_TYPES
    """Event types the node indexes (patterns, ``chains.service.eventindex``); None: the
    node keeps no event index (``[index] enabled = false``)."""

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    def with_interval(self, block_interval: float) -> ChainSettings:
        """These settings at another block interval (``--interval``); a PoW chain's
        retarget rule and a PoS chain's proposer aim at it too, so its genesis changes
        with it (a PoS chain's ``min_block_ms`` is at most half the new interval)."""
        genesis, engine = self.genesis, self.genesis.consensus
        ms = max(1, round(block_interval * 1000))
        if isinstance(engine, PowParams):
            genesis = dataclasses.replace(
                genesis, consensus=dataclasses.replace(engine, block_interval_ms=ms)
            )
        elif isinstance(engine, PosParams):
            least = min(engine.min_block_ms, max(1, ms // 2))
            pos = dataclasses.replace(engine, block_interval_ms=ms, min_block_ms=least)
            genesis = dataclasses.replace(genesis, consensus=pos)
        return dataclasses.replace(self, genesis=genesis, block_interval=block_interval)

    def build_modules(self) -> list[Module]:
        """Fresh module instances for this chain (the node calls this on open)."""
        return [MODULES[name]() for name in self.modules]

    def store_path(self, data_dir: Path) -> Path:
        return data_dir / f"{self.chain_id}.sqlite3"


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """A chain file, converted."""

    source: Path
    """The file it came from."""
    chain: ChainSettings
    """The chain."""
    data_dir: Path
    """Where its SQLite block store lives."""
    bus_url: str
    """Where it publishes headers and events."""


@dataclass(frozen=True, slots=True)
class DevnetConfig:
    """A devnet file, converted."""

    source: Path
    """The file it came from."""
    chains: tuple[ChainSettings, ...]
    """The chains, in file order."""
    data_dir: Path | None
    """Where the block stores live (``None``: a fresh temporary directory)."""
    bus_url: str
    """The bus all chains publish to."""


# --- conversion -------------------------------------------------------------------------


def _stakes(m: _ChainCommon, fail: Callable[[str, str], ConfigError]) -> list[int]:
    """Each genesis validator's power (a PoS chain: its bonded stake), in key order."""
    v = m.validators
    n = v.count if v.keys is None else len(v.keys)
    if m.pos is None or m.pos.stakes is None:
        return [v.power] * n
    if len(m.pos.stakes) != n:
        raise fail("pos.stakes", f"expected one stake per genesis validator ({n})")
    return list(m.pos.stakes)


def _engine(
    m: _ChainCommon,
    block_interval: float,
    total_stake: int,
    fail: Callable[[str, str], ConfigError],
) -> PowParams | PosParams | None:
    """The chain's engine parameters from ``consensus`` and its table (None: BFT)."""
    for name in ("pow", "pos"):
        if getattr(m, name) is not None and m.consensus != name:
            raise fail(name, f'a [{name}] table needs consensus = "{name}"')
    interval_ms = max(1, round(block_interval * 1000))
    if m.consensus == "bft":
        return None
    if m.consensus == "pos":
        s = m.pos or PosModel()
        target = 2**256 // total_stake if s.target is None else int(s.target, 16)
        try:
            return PosParams(
                target=min(target, 2**256 - 1),
                block_interval_ms=interval_ms,
                epoch_length=s.epoch_length,
                unbonding_blocks=s.unbonding_blocks,
                finality_depth=s.finality_depth,
                min_block_ms=max(1, interval_ms // 2) if s.min_block_ms is None else s.min_block_ms,
                max_future_ms=s.max_future_ms,
            )
        except InterlockError as exc:
            raise fail("pos", str(exc)) from None
    p = m.pow or PowModel()
    easiest = 2**256 // p.hashes_per_block - 1
    return PowParams(
        initial_target=easiest,
        max_target=easiest,
        block_interval_ms=interval_ms,
        retarget_window=p.retarget_window,
        max_adjust=p.max_adjust,
        finality_depth=p.finality_depth,
        max_future_ms=p.max_future_ms,
    )


def _module_names(m: _ChainCommon, fail: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    """The chain's modules: a PoS chain runs staking where others run validators."""
    pos = m.consensus == "pos"
    if "modules" not in m.model_fields_set:
        return POS_DEFAULT_MODULES if pos else DEFAULT_MODULES
    names = set(m.modules)
    if pos and ("staking" not in names or "validators" in names):
        raise fail("modules", "a proof-of-stake chain runs staking, not validators")
    if not pos and "staking" in names:
        raise fail("modules", 'the staking module needs consensus = "pos"')
    return tuple(m.modules)


def _chain_settings(
    source: Path | str,
    where: str,
    m: _ChainCommon,
    *,
    seed: str,
    block_interval: float,
    rpc: RpcModel | None,
    default_denom: str,
) -> ChainSettings:
    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{source}: {where}{key}: {reason}")

    stakes = _stakes(m, fail)
    engine = _engine(m, block_interval, sum(stakes), fail)
    modules = _module_names(m, fail)
    g = m.genesis
    if len(set(g.accounts)) != len(g.accounts):
        dup = next(a for a in g.accounts if g.accounts.count(a) > 1)
        raise fail("genesis.accounts", f"account {dup!r} is listed twice")
    if "gov" in g.accounts:
        raise fail("genesis.accounts", "'gov' is the chain's governance account, always funded")
    denom = g.denom or default_denom
    try:
        d = build_devnet(
            [m.chain_id],
            seed=seed,
            validators=m.validators.count,
            accounts=g.accounts,
            denoms={m.chain_id: denom},
            balance=g.balance,
            genesis_time=g.time,
            consensus=None if engine is None else {m.chain_id: engine},
        )[0]
    except (ValueError, InterlockError) as exc:
        raise fail("genesis", str(exc)) from None

    keys = d.validator_keys
    if m.validators.keys is not None:
        if "count" in m.validators.model_fields_set:
            raise fail("validators.count", "give either count or keys, not both")
        if len(set(m.validators.keys)) != len(m.validators.keys):
            raise fail("validators.keys", "a key is listed twice")
        keys = tuple(PrivateKey.from_seed(bytes.fromhex(k)) for k in m.validators.keys)
    vals = ValidatorSet.of([(k.public_key, p) for k, p in zip(keys, stakes, strict=True)])

    balances: dict[str, dict[str, int]] = {
        addr: dict(coins) for addr, coins in d.genesis.app_state["bank"]["balances"].items()
    }
    for addr, coins in g.balances.items():
        balances.setdefault(addr, {}).update(coins)
    supply: dict[str, int] = {}
    for coins in balances.values():
        for dn, amount in coins.items():
            supply[dn] = supply.get(dn, 0) + amount
            if supply[dn] > MAX_INT:
                raise fail("genesis.balances", f"total supply of {dn} exceeds {MAX_INT}")
    app_state: dict[str, Any] = {name: {} for name in modules}
    app_state["bank"] = {"balances": balances}
    if isinstance(engine, PosParams):
        app_state["staking"] = {"denom": denom}  # the genesis stakes are bonded in it
    # every module is named in the genesis, so its hash pins the module set: a data dir
    # made with other modules is refused at start instead of running on mismatched state
    genesis = dataclasses.replace(d.genesis, validators=vals, app_state=app_state)
    return ChainSettings(
        genesis=genesis,
        validator_keys=keys,
        accounts=d.accounts,
        denom=denom,
        block_interval=block_interval,
        max_block_txs=m.max_block_txs,
        mempool_capacity=m.mempool_capacity,
        modules=modules,
        index_types=tuple(m.index.types) if m.index.enabled else None,
        rpc=None
        if rpc is None
        else RpcSettings(
            rpc.host,
            rpc.port,
            RpcLimits(
                max_body_bytes=rpc.max_body_bytes,
                max_batch=rpc.max_batch,
                commit_timeout=rpc.commit_timeout,
                verify_processes=rpc.verify_processes,
                header_timeout=rpc.header_timeout,
                max_connections=rpc.max_connections,
            ),
        ),
    )


def parse_chain_config(data: Mapping[str, Any], source: Path | str = "<config>") -> ChainConfig:
    """Validate a chain file's contents and convert them (raises ConfigError)."""
    try:
        m = ChainFileModel.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc) from None
    chain = _chain_settings(
        source,
        "",
        m,
        seed=m.seed,
        block_interval=m.block_interval,
        rpc=m.rpc,
        default_denom=DEFAULT_DENOMS[0],
    )
    return ChainConfig(Path(source), chain, Path(m.data_dir), m.bus.url)


def parse_devnet_config(data: Mapping[str, Any], source: Path | str = "<config>") -> DevnetConfig:
    """Validate a devnet file's contents and convert them (raises ConfigError)."""
    try:
        m = DevnetFileModel.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc) from None
    seen: dict[str, int] = {}
    ports: dict[tuple[str, int], int] = {}
    chains = []
    for i, c in enumerate(m.chains):
        if c.chain_id in seen:
            raise ConfigError(
                f"{source}: chains[{i}].chain_id: {c.chain_id!r} is already "
                f"chains[{seen[c.chain_id]}]"
            )
        seen[c.chain_id] = i
        if c.rpc is not None and c.rpc.port:
            other = ports.setdefault((c.rpc.host, c.rpc.port), i)
            if other != i:
                raise ConfigError(
                    f"{source}: chains[{i}].rpc.port: {c.rpc.port} is already chains[{other}]'s"
                )
        chains.append(
            _chain_settings(
                source,
                f"chains[{i}].",
                c,
                seed=m.seed,
                block_interval=m.block_interval,
                rpc=c.rpc,
                default_denom=DEFAULT_DENOMS[i % len(DEFAULT_DENOMS)],
            )
        )
    data_dir = None if m.data_dir is None else Path(m.data_dir)
    return DevnetConfig(Path(source), tuple(chains), data_dir, m.bus.url)


def load_chain_config(path: str | Path) -> ChainConfig:
    """Read, validate and convert a chain file (raises ConfigError, one line)."""
    p = Path(path)
    return parse_chain_config(read_toml(p), p)


def load_devnet_config(path: str | Path) -> DevnetConfig:
    """Read, validate and convert a devnet file (raises ConfigError, one line)."""
    p = Path(path)
    return parse_devnet_config(read_toml(p), p)

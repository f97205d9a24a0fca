"""The relayer daemon's TOML file, validated by pydantic at the edge.

```toml
[relayer]
data_dir = "interlock-data/relayer"   # SQLite state and the lock; one daemon per data dir
bus_url = "mqtt://127.0.0.1:1883"
share_group = ""                     # MQTT 5 shared-subscription group ("": none)

[api]
host = "127.0.0.1"
port = 26690
header_timeout = 10.0                 # seconds for a request's line and headers
max_connections = 256                 # open connections at most (and the fd limit)

[[chains]]
id = "chain-a"
rpc = ["http://127.0.0.1:26657"]     # tried in order; a dead one fails over to the next
key = "devnet:relayer"               # a keystore name, or devnet:NAME (devnet seed keys)
finality_depth = 0                    # at least this (the chain's engine says; may only raise it)
block_interval = 1.0                  # seconds (for timelock arithmetic)

[[paths]]
src = "chain-a"
dst = "chain-b"
relay = ["transfers", "swaps"]
denoms = []                           # allow list of source denoms ([]: all)

[[makers]]                            # a standing swap offer the daemon answers (optional)
name = "desk"                         # the worker is maker:desk
key = "devnet:alice"                  # the maker's key (keystore name or devnet:NAME)
give = "100usd@chain-a"               # what each swap locks
take = "92eur@chain-b"                # what each swap wants in return
offer_lifetime = 600                  # seconds one published offer is valid
max_swaps = 10                        # budget: at most this many swaps answered
max_give = 1000                       # budget: at most this much given in all (either or both)
```

Light-client ids and bridge paths are not configured: the daemon reads them from the
chains (``bridge/path`` on the destination names its client of the source), so a file
cannot point a worker at the wrong client. :func:`validate_relayer_config` returns every
error of a file with its key path; :func:`load_relayer_config` raises the first as one
:class:`~chains.errors.ConfigError` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from chains.encoding import MAX_INT
from chains.errors import ConfigError
from chains.service.configfile import (
    BusUrl,
    ChainId,
    Denom,
    HeaderTimeout,
    Host,
    MaxConnections,
    config_error,
    describe_errors,
    read_toml,
)
from chains.service.httpserver import ServerLimits

__all__ = [
    "ChainEntry",
    "MakerEntry",
    "PathEntry",
    "RelayerSettings",
    "load_errors",
    "load_relayer_config",
    "parse_relayer_config",
    "validate_relayer_config",
]

KeyRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=80,
        pattern=r"^(devnet:)?[a-z][a-z0-9_-]{0,31}$",
        description="a keystore name, or devnet:NAME",
    ),
]
RpcUrl = Annotated[
    str, Field(min_length=8, max_length=200, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class RelayerSection(_Model):
    data_dir: str = Field(default="interlock-data/relayer", min_length=1, max_length=4096)
    bus_url: BusUrl = "memory://"
    share_group: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    batch_blocks: int = Field(default=64, ge=1, le=4096)
    takeover_delay: float = Field(default=2.0, gt=0, le=3600)


class ApiSection(_Model):
    host: Host = "127.0.0.1"
    port: int = Field(default=26690, ge=0, le=65535)
    header_timeout: HeaderTimeout = 10.0
    max_connections: MaxConnections = 256


class ChainModel(_Model):
    id: ChainId
    rpc: list[RpcUrl] = Field(min_length=1, max_length=16)
    key: KeyRef = "devnet:relayer"
    finality_depth: int = Field(default=0, ge=0, le=10_000)
    block_interval: float = Field(default=1.0, gt=0, le=3600)
    seed: str = Field(default="interlock-devnet", min_length=1, max_length=128)


class PathModel(_Model):
    src: ChainId
    dst: ChainId
    relay: tuple[Literal["transfers", "swaps"], ...] = Field(
        default=("transfers", "swaps"), min_length=1, max_length=2
    )
    denoms: list[Denom] = Field(default_factory=list, max_length=1000)

    @field_validator("relay")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("expected each kind once")
        return v


_LEG = re.compile(r"([1-9][0-9]{0,18})([A-Za-z][A-Za-z0-9/:._-]{1,127})@([A-Za-z0-9_.-]{1,64})")


def _check_leg(v: str) -> str:
    m = _LEG.fullmatch(v)
    if m is None or int(m.group(1)) > MAX_INT:
        raise ValueError("expected AMOUNTDENOM@CHAIN, e.g. 100usd@chain-a (whole units)")
    return v


Leg = Annotated[str, Field(max_length=256), AfterValidator(_check_leg)]


class MakerModel(_Model):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    key: KeyRef
    give: Leg
    take: Leg
    offer_lifetime: float = Field(default=600.0, ge=5, le=7 * 86_400)
    max_swaps: int | None = Field(default=None, ge=1, le=1_000_000)
    max_give: int | None = Field(default=None, ge=1, le=MAX_INT)


class RelayerFile(_Model):
    relayer: RelayerSection = RelayerSection()
    api: ApiSection = ApiSection()
    chains: list[ChainModel] = Field(min_length=2, max_length=64)
    paths: list[PathModel] = Field(min_length=1, max_length=256)
    makers: list[MakerModel] = Field(default_factory=list, max_length=64)


# --- core values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One chain the daemon reaches."""

    chain_id: str
    """Its id; every endpoint must answer for it."""
    rpc: tuple[str, ...]
    """RPC endpoints, tried in order."""
    key: str
    """The relayer's key on it: a keystore name or ``devnet:NAME``."""
    seed: str
    """The devnet seed ``devnet:NAME`` keys derive from."""
    finality_depth: int
    """The least depth at which the swap watcher takes a block as final; the chain's
    engine (its ``/status``) may say more, and then that holds."""
    block_interval: float
    """Seconds per block."""


@dataclass(frozen=True, slots=True)
class PathEntry:
    """One direction of relaying between two chains."""

    src: str
    """Source chain id."""
    dst: str
    """Destination chain id."""
    kinds: tuple[str, ...]
    """``transfers`` and/or ``swaps``."""
    denoms: frozenset[str]
    """Source denoms to relay (empty: all)."""


@dataclass(frozen=True, slots=True)
class MakerEntry:
    """A standing swap offer the daemon publishes, answers and runs (``maker:NAME``)."""

    name: str
    """Its name: the worker is ``maker:NAME``, its state under ``data_dir/makers/NAME``."""
    key: str
    """The maker's key: a keystore name or ``devnet:NAME`` (the give chain's seed)."""
    give: tuple[int, str, str]
    """``(amount, denom, chain)`` each swap locks from the maker's key."""
    take: tuple[int, str, str]
    """``(amount, denom, chain)`` each swap wants paid to the maker's key."""
    offer_lifetime_s: float
    """Seconds one published offer is valid; then a fresh one replaces it."""
    max_swaps: int | None
    """Budget: at most this many swaps answered, ever (None: no count limit)."""
    max_give: int | None
    """Budget: at most this much of ``give``'s denom in all swaps answered (None: none)."""

    @property
    def work(self) -> str:
        return f"maker:{self.name}"


@dataclass(frozen=True, slots=True)
class RelayerSettings:
    """A validated relayer file."""

    source: Path
    """The file it came from."""
    data_dir: Path
    """Where the daemon keeps its state."""
    bus_url: str
    """The message bus."""
    share_group: str
    """MQTT 5 shared-subscription group, or ``""``."""
    batch_blocks: int
    """Most source blocks one delivery batch covers."""
    takeover_delay: float
    """Seconds a member of a share group waits before acting on a height another owns."""
    api_host: str
    """HTTP API address."""
    api_port: int
    """HTTP API port (0: a free one)."""
    api_limits: ServerLimits
    """What one client may hold of the API server (header deadline, connection cap)."""
    chains: Mapping[str, ChainEntry]
    """Chains by id."""
    paths: tuple[PathEntry, ...]
    """Paths in file order."""
    makers: tuple[MakerEntry, ...] = ()
    """Standing swap offers, in file order."""


def _check_references(m: RelayerFile) -> list[str]:
    errors: list[str] = []
    ids: dict[str, int] = {}
    for i, c in enumerate(m.chains):
        if c.id in ids:
            errors.append(f"chains[{i}].id: chain {c.id!r} is already chains[{ids[c.id]}]")
        ids.setdefault(c.id, i)
    seen: dict[tuple[str, str], int] = {}
    for i, p in enumerate(m.paths):
        for end in ("src", "dst"):
            value = getattr(p, end)
            if value not in ids:
                errors.append(f"paths[{i}].{end}: no chain {value!r} in [[chains]]")
        if p.src == p.dst:
            errors.append(f"paths[{i}].dst: a path needs two different chains")
        if (p.src, p.dst) in seen:
            errors.append(
                f"paths[{i}]: the path {p.src}->{p.dst} is already paths[{seen[p.src, p.dst]}]"
            )
        seen.setdefault((p.src, p.dst), i)
    names: dict[str, int] = {}
    for i, mk in enumerate(m.makers):
        if mk.name in names:
            errors.append(
                f"makers[{i}].name: maker {mk.name!r} is already makers[{names[mk.name]}]"
            )
        names.setdefault(mk.name, i)
        give, take = _leg(mk.give), _leg(mk.take)
        for end, leg in (("give", give), ("take", take)):
            if leg[2] not in ids:
                errors.append(f"makers[{i}].{end}: no chain {leg[2]!r} in [[chains]]")
        if give[2] == take[2]:
            errors.append(f"makers[{i}].take: give and take must be on different chains")
        if mk.max_swaps is None and mk.max_give is None:
            errors.append(
                f"makers[{i}]: a budget is required: max_swaps, max_give or both "
                "(else the daemon could be drained)"
            )
        if mk.max_give is not None and mk.max_give < give[0]:
            errors.append(f"makers[{i}].max_give: less than one swap's give ({give[0]})")
    return errors


def _leg(text: str) -> tuple[int, str, str]:
    """``100usd@chain-a`` (already matched by the Leg pattern) -> (100, usd, chain-a)."""
    digits, denom, chain = _LEG.fullmatch(text).groups()  # type: ignore[union-attr]
    return int(digits), denom, chain


def validate_relayer_config(data: Mapping[str, Any]) -> list[str]:
    """Every error of a relayer file's contents, each naming its key path ([] if valid)."""
    try:
        m = RelayerFile.model_validate(data)
    except ValidationError as exc:
        return describe_errors(exc)
    return _check_references(m)


def parse_relayer_config(
    data: Mapping[str, Any], source: Path | str = "<config>"
) -> RelayerSettings:
    """Validate and convert (raises ConfigError naming the first error)."""
    try:
        m = RelayerFile.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc) from None
    problems = _check_references(m)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {problems[0]}{more}")
    return RelayerSettings(
        source=Path(source),
        data_dir=Path(m.relayer.data_dir),
        bus_url=m.relayer.bus_url,
        share_group=m.relayer.share_group,
        batch_blocks=m.relayer.batch_blocks,
        takeover_delay=m.relayer.takeover_delay,
        api_host=m.api.host,
        api_port=m.api.port,
        api_limits=ServerLimits(m.api.header_timeout, m.api.max_connections),
        chains={
            c.id: ChainEntry(c.id, tuple(c.rpc), c.key, c.seed, c.finality_depth, c.block_interval)
            for c in m.chains
        },
        paths=tuple(PathEntry(p.src, p.dst, tuple(p.relay), frozenset(p.denoms)) for p in m.paths),
        makers=tuple(
            MakerEntry(
                mk.name,
                mk.key,
                _leg(mk.give),
                _leg(mk.take),
                mk.offer_lifetime,
                mk.max_swaps,
                mk.max_give,
            )
            for mk in m.makers
        ),
    )


def load_relayer_config(path: str | Path) -> RelayerSettings:
    """Read, validate and convert a relayer file (raises ConfigError)."""
    return parse_relayer_config(read_toml(Path(path)), path)


def load_errors(path: str | Path) -> list[str]:
    """``interlock config validate``: every error of the file at ``path``."""
    try:
        data = read_toml(Path(path))
    except ConfigError as exc:
        return [str(exc).removeprefix(f"{path}: ")]
    return validate_relayer_config(data)

"""The round file of ``interlock netting run --round FILE`` (the edge: pydantic here only).

One TOML file per round, the same at every bank: the round's timing, the settlement asset
and, for every bank, its name, its ed25519 public key and the chain it holds the asset on
(its account there is the key's address)::

    id = "eod-2026-11-30"          # 1..48 of [a-z0-9._-]
    start = 2026-11-30T17:00:00Z   # or Unix seconds; the share phase opens
    phase_s = 10                   # seconds per phase
    # threshold = 1                # t; default (n - 1) // 2

    [asset]
    chain = "chain-a"              # the asset's home chain
    denom = "usd"                  # held elsewhere as its bridged twin, chain-a/usd

    [[parties]]
    name = "bank-a"
    key = "9f0c...64 hex"          # interlock keys show NAME
    chain = "chain-a"

Every error names its key path (``parties[1].key: ...``), as ``interlock config validate``
does. The file's **digest** (SHA-256 of its canonical content) is part of the round id on
the bus (``{id}-{digest[:12]}``): banks whose files differ in anything (a party, a chain,
the asset, the timing) are in different rounds, so none of them completes and nothing is
paid.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bridge.transfer import compute_wrapped_denom
from chains.crypto import address
from chains.errors import ConfigError
from chains.service.configfile import ChainId, Denom, config_error, read_toml
from netting.protocol import RoundSpec, default_threshold
from netting.sharing import MAX_PARTIES

__all__ = ["RoundFile", "SettlementParty", "load_round_file", "parse_round_file"]

DIGEST_CHARS = 12
"""Hex digits of the file's digest appended to its round id on the bus."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class AssetModel(_Model):
    chain: ChainId
    denom: Denom


class PartyModel(_Model):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    chain: ChainId


class RoundFileModel(_Model):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$")]
    start: Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)] | datetime
    phase_s: Annotated[float, Field(gt=0, le=3600)]
    threshold: Annotated[int, Field(ge=1, strict=True)] | None = None
    asset: AssetModel
    parties: list[PartyModel] = Field(min_length=3, max_length=MAX_PARTIES)

    @model_validator(mode="after")
    def _distinct(self) -> RoundFileModel:
        for field in ("name", "key"):
            seen: set[str] = set()
            for p in self.parties:
                value = getattr(p, field)
                if value in seen:
                    raise ValueError(f"parties: {field} {value[:16]!r} appears twice")
                seen.add(value)
        if isinstance(self.start, datetime) and self.start.tzinfo is None:
            raise ValueError("start: give a time zone (e.g. 2026-11-30T17:00:00Z) or Unix seconds")
        away = {p.chain for p in self.parties} - {self.asset.chain}
        if len(away) > 1:  # a payment between two of them would wrap the asset twice
            raise ValueError(
                f"parties: the asset is held on {len(away)} chains besides its home "
                f"{self.asset.chain} ({', '.join(sorted(away))}); at most one is routable"
            )
        t, most = self.threshold, default_threshold(len(self.parties))
        if t is not None and t > most:
            raise ValueError(f"threshold: at most {most} for {len(self.parties)} parties")
        return self


@dataclass(frozen=True, slots=True)
class SettlementParty:
    """One bank of a round, as the round file names it."""

    name: str
    """What the output calls it."""
    public_key: bytes
    """Its ed25519 key: its identity in the round and its account on its chain."""
    chain: str
    """The chain it holds the settlement asset on."""

    @property
    def address(self) -> str:
        return address(self.public_key)


@dataclass(frozen=True, slots=True)
class RoundFile:
    """A round file, validated."""

    round_id: str
    """As written; the bus round id adds the digest (:attr:`bus_round_id`)."""
    start: float
    """Unix time the share phase opens."""
    phase_s: float
    threshold: int
    asset_chain: str
    """The asset's home chain."""
    denom: str
    """The asset's denom on its home chain."""
    parties: tuple[SettlementParty, ...]
    digest: str
    """SHA-256 (hex) of the canonical content: equal at banks whose files agree."""

    @property
    def bus_round_id(self) -> str:
        return f"{self.round_id}-{self.digest[:DIGEST_CHARS]}"

    @property
    def spec(self) -> RoundSpec:
        keys = tuple(p.public_key for p in self.parties)
        return RoundSpec(self.bus_round_id, keys, self.threshold, self.start, self.phase_s)

    @property
    def chains(self) -> tuple[str, ...]:
        """Every chain the settlement may touch, the home chain first."""
        rest = sorted({p.chain for p in self.parties} - {self.asset_chain})
        return (self.asset_chain, *rest)

    def denom_on(self, chain: str) -> str:
        """The asset's denom on ``chain``: native at home, the bridge's wrapped twin
        elsewhere."""
        if chain == self.asset_chain:
            return self.denom
        return compute_wrapped_denom(self.asset_chain, self.denom)

    def index_of(self, public_key: bytes) -> int | None:
        for i, p in enumerate(self.parties):
            if p.public_key == public_key:
                return i
        return None


def parse_round_file(data: object, source: Path | str = "<round file>") -> RoundFile:
    """Validate a round file's contents and convert them (raises ConfigError)."""
    try:
        m = RoundFileModel.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc) from None
    start = m.start.timestamp() if isinstance(m.start, datetime) else float(m.start)
    if not math.isfinite(start) or start < 0:
        raise ConfigError(f"{source}: start: expected a time after 1970")
    threshold = default_threshold(len(m.parties)) if m.threshold is None else m.threshold
    canonical = {
        "id": m.id,
        "start": start,
        "phase_s": m.phase_s,
        "threshold": threshold,
        "asset": [m.asset.chain, m.asset.denom],
        "parties": [[p.name, p.key, p.chain] for p in m.parties],
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
    parties = tuple(SettlementParty(p.name, bytes.fromhex(p.key), p.chain) for p in m.parties)
    return RoundFile(
        m.id, start, m.phase_s, threshold, m.asset.chain, m.asset.denom, parties, digest
    )


def load_round_file(path: Path) -> RoundFile:
    return parse_round_file(read_toml(path), path)

"""Config files: every shipped one loads; every bad key is one line naming file and key."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chains.chain import Chain
from chains.crypto import PrivateKey
from chains.devnet import build_devnet
from chains.errors import ConfigError
from chains.pos import PosParams
from chains.pow import PowParams, get_work
from interlock.config import (
    DEFAULT_MODULES,
    DEFAULT_SEED,
    load_chain_config,
    load_devnet_config,
    parse_chain_config,
    parse_devnet_config,
)
from interlock.netting_round import load_round_file
from relayer.config import load_relayer_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = sorted(CONFIGS.glob("*.toml"))


def test_there_are_shipped_configs() -> None:
    names = {p.name for p in SHIPPED}
    assert {"chain-a.toml", "chain-b.toml", "devnet.toml", "devnet-3.toml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_loads(path: Path) -> None:
    with path.open("rb") as f:
        raw = tomllib.load(f)
    if "paths" in raw:
        settings = load_relayer_config(path)
        assert settings.api_host == "127.0.0.1"
    elif "chains" in raw:
        devnet = load_devnet_config(path)
        assert len(devnet.chains) >= 2
        assert all(c.rpc is None or c.rpc.host == "127.0.0.1" for c in devnet.chains)
    elif "chain_id" in raw:
        cfg = load_chain_config(path)
        assert cfg.chain.rpc is not None
        assert cfg.chain.rpc.host == "127.0.0.1"
        assert cfg.chain.chain_id in path.name
    elif "parties" in raw:  # a netting round file: its keys are the devnet banks'
        rf = load_round_file(path)
        devnet = [PrivateKey.derive(DEFAULT_SEED, n).public_key for n in ("alice", "bob", "carol")]
        assert [p.public_key for p in rf.parties] == devnet
    else:
        raise AssertionError(f"{path.name}: not a chain, devnet, relayer or round file")


def test_chain_files_and_devnet_files_define_the_same_chains() -> None:
    devnet = {c.chain_id: c for c in load_devnet_config(CONFIGS / "devnet-3.toml").chains}
    flags = {"chains": [{"chain_id": c} for c in ("chain-a", "chain-b", "chain-c")]}
    plain = {c.chain_id: c for c in parse_devnet_config(flags).chains}  # `interlock devnet`
    keys = {d.chain_id: d for d in build_devnet(["chain-a", "chain-b", "chain-c"])}
    for name in ("chain-a", "chain-b"):
        single = load_chain_config(CONFIGS / f"{name}.toml").chain
        assert single.genesis.hash == devnet[name].genesis.hash
        assert single.genesis.hash == plain[name].genesis.hash
    for name, chain in devnet.items():
        assert chain.genesis.hash == plain[name].genesis.hash
        assert chain.validator_keys == keys[name].validator_keys  # the devnet's own keys
        assert chain.accounts == keys[name].accounts
        assert chain.modules == DEFAULT_MODULES
        assert [m.name for m in chain.build_modules()] == list(DEFAULT_MODULES)


def test_the_module_set_is_part_of_the_genesis() -> None:
    full = parse_chain_config(CHAIN, "x.toml").chain
    base = parse_chain_config(_set(CHAIN, "modules", ["bank", "lightclient"]), "x.toml").chain
    assert base.genesis.hash != full.genesis.hash
    assert set(base.genesis.app_state) == {"bank", "lightclient"}


CHAIN: dict[str, Any] = {
    "chain_id": "chain-a",
    "data_dir": "/tmp/x",
    "rpc": {"port": 26657},
    "bus": {"url": "mqtt://127.0.0.1:1883"},
    "validators": {"count": 4},
    "genesis": {"denom": "usd", "accounts": ["alice"], "balances": {}},
}


def _set(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(d)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()

BAD_CHAIN = [
    ("chain_id", _DELETE, "chain_id", "missing required key"),
    ("chain_id", "chain a!", "chain_id", "expected a chain id"),
    ("chain_id", 7, "chain_id", "expected a valid string"),
    ("data_dir", "", "data_dir", "at least 1 character"),
    ("rpc", _DELETE, "rpc", "missing required key"),
    ("rpc.port", 70000, "rpc.port", "less than or equal to 65535"),
    ("rpc.port", -1, "rpc.port", "greater than or equal to 0"),
    ("rpc.port", "26657", "rpc.port", "expected a valid integer"),
    ("rpc.host", "not a host!", "rpc.host", "IP address or a host name"),
    ("rpc.max_batch", 0, "rpc.max_batch", "greater than or equal to 1"),
    ("rpc.extra", 1, "rpc.extra", "unknown key"),
    ("bus.url", "http://x", "bus.url", "mqtt"),
    ("bus.url", "mqtt://", "bus.url", "host"),
    ("bus.url", "mqtt://h:99999", "bus.url", "port"),
    ("block_interval", 0, "block_interval", "greater than 0"),
    ("block_interval", "fast", "block_interval", "valid number"),
    ("seed", "", "seed", "at least 1 character"),
    ("validators.count", 0, "validators.count", "greater than or equal to 1"),
    ("validators.keys", ["zz"], "validators.keys[0]", "64 lowercase hex"),
    ("validators.keys", ["ab" * 32], "validators.count", "either count or keys"),
    ("genesis.denom", "1x", "genesis.denom", "expected a denom"),
    ("genesis.accounts", ["alice", "alice"], "genesis.accounts", "listed twice"),
    ("genesis.accounts", ["Alice"], "genesis.accounts[0]", "account name"),
    ("genesis.accounts", ["gov"], "genesis.accounts", "governance"),
    ("genesis.balance", 0, "genesis.balance", "greater than or equal to 1"),
    ("genesis.balance", 2**63, "genesis.balance", "less than or equal to"),
    ("genesis.balances", {"xyz": {"usd": 1}}, "genesis.balances.xyz.[key]", "address"),
    ("genesis.balances", {"ab" * 20: {"usd": -5}}, "genesis.balances." + "ab" * 20, "greater"),
    ("genesis.balances", {"ab" * 20: {"usd": 2**63 - 1}}, "genesis.balances", "supply of usd"),
    ("genesis.time", -1, "genesis.time", "greater than or equal to 0"),
    ("genesis.nonsense", 1, "genesis.nonsense", "unknown key"),
    ("mempool_capacity", 0, "mempool_capacity", "greater than or equal to 1"),
    ("color", "blue", "color", "unknown key"),
    ("modules", ["bank", "nft"], "modules", "unknown ['nft']"),
    ("modules", ["htlc"], "modules", "bank module"),
    ("modules", ["bank", "bank"], "modules", "listed twice"),
    ("modules", ["bank", "bridge"], "modules", "needs the lightclient"),
    ("modules", "bank", "modules", "valid list"),
    ("consensus", "stake", "consensus", "expected 'bft', 'pow' or 'pos'"),
    ("consensus", 1, "consensus", "expected 'bft', 'pow' or 'pos'"),
    ("pow", {"finality_depth": 3}, "pow", 'needs consensus = "pow"'),
    ("pow.finality_depth", 0, "pow.finality_depth", "greater than or equal to 1"),
    ("pow.hashes_per_block", 0, "pow.hashes_per_block", "greater than or equal to 1"),
    ("pow.max_adjust", 17, "pow.max_adjust", "less than or equal to 16"),
    ("pow.retarget", 5, "pow.retarget", "unknown key"),
    ("pos", {"finality_depth": 3}, "pos", 'needs consensus = "pos"'),
    ("modules", ["bank", "staking"], "modules", 'staking module needs consensus = "pos"'),
]

POS = {**CHAIN, "consensus": "pos"}

BAD_POS = [
    ("pow", {}, "pow", 'needs consensus = "pow"'),
    ("pos.stakes", [10, 10], "pos.stakes", "one stake per genesis validator (4)"),
    ("pos.stakes", [10, 10, 0, 10], "pos.stakes[2]", "greater than or equal to 1"),
    ("pos.stakes", [10, 10, 2**61, 10], "pos.stakes[2]", "less than or equal to"),
    ("pos.stakes", [], "pos.stakes", "at least 1 item"),
    ("pos.target", "00" * 32, "pos.target", "nonzero 256-bit target"),
    ("pos.target", "AB" * 32, "pos.target", "64 lowercase hex"),
    ("pos.target", 5, "pos.target", "valid string"),
    ("pos.epoch_length", 0, "pos.epoch_length", "greater than or equal to 1"),
    ("pos.unbonding_blocks", 2, "pos", "unbonding_blocks must be at least epoch_length"),
    ("pos.min_block_ms", 5000, "pos", "min_block_ms must be at most block_interval_ms"),
    ("pos.finality_depth", 0, "pos.finality_depth", "greater than or equal to 1"),
    ("pos.slots", 1, "pos.slots", "unknown key"),
    ("modules", ["bank", "validators"], "modules", "runs staking, not validators"),
    ("modules", ["bank", "staking", "validators"], "modules", "runs staking, not validators"),
]


@pytest.mark.parametrize(
    ("base", "path", "value", "loc", "expect"),
    [(CHAIN, *case) for case in BAD_CHAIN] + [(POS, *case) for case in BAD_POS],
)
def test_bad_chain_key_is_one_line_naming_file_and_key(
    base: dict[str, Any], path: str, value: Any, loc: str, expect: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_chain_config(_set(base, path, value), "configs/x.toml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"configs/x.toml: {loc}"), msg
    assert expect in msg, msg


DEVNET: dict[str, Any] = {
    "bus": {"url": "memory://"},
    "chains": [
        {"chain_id": "chain-a", "rpc": {"port": 26670}},
        {"chain_id": "chain-b", "rpc": {"port": 26671}},
    ],
}


@pytest.mark.parametrize(
    ("mutate", "loc", "expect"),
    [
        (lambda d: d.update(chains=[]), "chains", "at least 1 item"),
        (lambda d: d.pop("chains"), "chains", "missing required key"),
        (lambda d: d["chains"][1].update(chain_id="chain-a"), "chains[1].chain_id", "already"),
        (lambda d: d["chains"][1]["rpc"].update(port=26670), "chains[1].rpc.port", "already"),
        (lambda d: d["chains"][0].update(seed="x"), "chains[0].seed", "unknown key"),
        (lambda d: d["chains"][1]["rpc"].update(port=1e3), "chains[1].rpc.port", "integer"),
        (lambda d: d.update(bus={"url": "memory://x"}), "bus.url", "no host"),
        (lambda d: d.update(block_interval=-1), "block_interval", "greater than 0"),
        (lambda d: d["chains"][1].update(consensus="work"), "chains[1].consensus", "'pos'"),
        (
            lambda d: d["chains"][1].update(consensus="pos", pos={"stakes": [1]}),
            "chains[1].pos.stakes",
            "one stake per genesis validator",
        ),
        (lambda d: d["chains"][1].update(pow={"x": 1}), "chains[1].pow.x", "unknown key"),
    ],
)
def test_bad_devnet_key_is_one_line_naming_file_and_key(mutate: Any, loc: str, expect: str) -> None:
    data = copy.deepcopy(DEVNET)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_devnet_config(data, "configs/d.toml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"configs/d.toml: {loc}"), msg
    assert expect in msg, msg


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such config file"):
        load_chain_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('chain_id = "a"\nrpc = {port = }\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML: .*line 2"):
        load_chain_config(bad)
    bad.write_bytes(b'chain_id = "\xff"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML"):
        load_chain_config(bad)


def test_explicit_validator_keys_and_extra_balances() -> None:
    data = _set(CHAIN, "validators", {"keys": ["01" * 32, "02" * 32], "power": 5})
    data = _set(data, "genesis.balances", {"ab" * 20: {"usd": 5, "gold": 7}})
    cfg = parse_chain_config(data, "x.toml")
    assert len(cfg.chain.validator_keys) == 2
    assert cfg.chain.genesis.validators.total_power == 10
    bank = cfg.chain.genesis.app_state["bank"]["balances"]
    assert bank["ab" * 20] == {"usd": 5, "gold": 7}
    assert bank[cfg.chain.accounts["alice"].address] == {"usd": 10**12}


@pytest.mark.parametrize(
    "url",
    ["mqtt://user:hunter2@host:99999", "mqtt://user:hunter2@host?ca=x", "mqtt://u:hunter2@[::1"],
)
def test_a_bad_bus_url_in_a_config_never_shows_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_chain_config(_set(CHAIN, "bus", {"url": url}), "configs/x.toml")
    msg = str(info.value)
    assert msg.startswith("configs/x.toml: bus.url: "), msg
    assert "hunter2" not in msg, msg
    assert "\n" not in msg


def test_a_pow_chain_config_names_its_engine_and_its_interval() -> None:
    """``consensus = "pow"`` with its table: the genesis carries the engine's parameters
    (the retarget rule aims at the chain's block interval, ``--interval`` included), the
    same chain in a devnet file has the same genesis, and a BFT chain carries none."""
    w = load_chain_config(CONFIGS / "chain-w.toml").chain
    engine = w.genesis.consensus
    assert isinstance(engine, PowParams)
    assert (engine.finality_depth, engine.block_interval_ms) == (6, 1000)
    assert get_work(engine.initial_target) == 4096  # hashes_per_block
    fast = w.with_interval(0.25)
    assert isinstance(fast.genesis.consensus, PowParams)
    assert fast.genesis.consensus.block_interval_ms == 250
    assert fast.genesis.hash != w.genesis.hash
    devnet = {c.chain_id: c for c in load_devnet_config(CONFIGS / "devnet-pow.toml").chains}
    assert devnet["chain-w"].genesis.hash == w.genesis.hash
    assert devnet["chain-b"].genesis.consensus is None
    assert load_chain_config(CONFIGS / "chain-a.toml").chain.with_interval(0.5).genesis.hash == (
        load_chain_config(CONFIGS / "chain-a.toml").chain.genesis.hash
    )


def test_a_pos_chain_config_bonds_its_stakes_and_names_its_engine() -> None:
    """``consensus = "pos"`` with its table: the genesis carries ``PosParams`` (the
    interval from ``block_interval``, the target from the total stake unless given), the
    staking module instead of validators with the stakes bonded, ``--interval`` keeps
    ``min_block_ms`` within half of it, and the same chain in a devnet file has the same
    genesis."""
    s = load_chain_config(CONFIGS / "chain-s.toml").chain
    engine = s.genesis.consensus
    assert isinstance(engine, PosParams)
    assert (engine.block_interval_ms, engine.finality_depth, engine.epoch_length) == (1000, 6, 8)
    assert engine.target == 2**256 // 40
    assert "staking" in s.modules
    assert "validators" not in s.modules
    assert s.genesis.app_state["staking"] == {"denom": "chf"}
    assert [v.power for v in s.genesis.validators.validators] == [10, 10, 10, 10]
    chain = Chain(s.genesis, s.build_modules())  # the staking module bonds the genesis stakes
    assert chain.query("staking", "bonds", {}) == {
        v.public_key.hex(): 10 for v in s.genesis.validators.validators
    }
    fast = s.with_interval(0.2)
    assert isinstance(fast.genesis.consensus, PosParams)
    assert (fast.genesis.consensus.block_interval_ms, fast.genesis.consensus.min_block_ms) == (
        200,
        100,
    )
    data = _set(POS, "pos", {"stakes": [1, 2, 3, 4], "target": "0f" + "ff" * 31})
    custom = parse_chain_config(data, "x.toml").chain
    assert isinstance(custom.genesis.consensus, PosParams)
    assert custom.genesis.consensus.target == int("0f" + "ff" * 31, 16)
    assert sorted(v.power for v in custom.genesis.validators.validators) == [1, 2, 3, 4]
    engines = {c.chain_id: c for c in load_devnet_config(CONFIGS / "devnet-engines.toml").chains}
    assert engines["chain-s"].genesis.hash == s.genesis.hash

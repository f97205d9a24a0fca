"""The relayer file: every bad key is named with its path; a good file converts."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chains.errors import ConfigError
from relayer.config import load_relayer_config, parse_relayer_config, validate_relayer_config

ROOT = Path(__file__).resolve().parents[2]

GOOD: dict[str, Any] = {
    "relayer": {"data_dir": "d", "bus_url": "mqtt://127.0.0.1:1883"},
    "api": {"port": 0},
    "chains": [
        {"id": "chain-a", "rpc": ["http://127.0.0.1:26657"], "key": "devnet:relayer"},
        {"id": "chain-b", "rpc": ["http://127.0.0.1:26658"], "key": "relayer-b"},
    ],
    "paths": [{"src": "chain-a", "dst": "chain-b", "relay": ["transfers"], "denoms": ["usd"]}],
}


def with_(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node: Any = data
    *parents, last = path.split(".")
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is KeyError:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


def test_the_shipped_file_and_a_good_one_convert() -> None:
    s = load_relayer_config(ROOT / "configs" / "relayer.toml")
    assert set(s.chains) == {"chain-a", "chain-b"}
    assert len(s.paths) == 2
    g = parse_relayer_config(GOOD)
    assert g.paths[0].kinds == ("transfers",)
    assert g.paths[0].denoms == frozenset({"usd"})
    assert g.chains["chain-b"].key == "relayer-b"
    assert validate_relayer_config(GOOD) == []


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("relayer.bus_url", "http://x", "relayer.bus_url"),
        ("relayer.nonsense", 1, "relayer.nonsense: unknown key"),
        ("api.port", 70000, "api.port"),
        ("api.host", "not a host!", "api.host"),
        ("chains.0.id", "bad id!", "chains[0].id"),
        ("chains.0.rpc", [], "chains[0].rpc"),
        ("chains.0.rpc", ["ftp://x"], "chains[0].rpc[0]"),
        ("chains.0.key", "../../etc/passwd", "chains[0].key"),
        ("chains.1.finality_depth", -1, "chains[1].finality_depth"),
        ("chains.1.id", "chain-a", "chains[1].id: chain 'chain-a' is already chains[0]"),
        ("paths.0.dst", "chain-z", "paths[0].dst: no chain 'chain-z'"),
        ("paths.0.dst", "chain-a", "paths[0].dst: a path needs two different chains"),
        ("paths.0.relay", ["teleport"], "paths[0].relay[0]"),
        ("paths.0.relay", ["transfers", "transfers"], "paths[0].relay"),
        ("paths.0.denoms", ["1bad"], "paths[0].denoms[0]"),
        ("paths", [], "paths"),
        ("chains", KeyError, "chains: missing required key"),
    ],
)
def test_each_bad_key_is_named(path: str, value: Any, named: str) -> None:
    data = with_(path, value)
    errors = validate_relayer_config(data)
    assert any(named in e for e in errors), errors
    with pytest.raises(ConfigError) as info:
        parse_relayer_config(data, "r.toml")
    assert str(info.value).startswith("r.toml: ")
    assert "\n" not in str(info.value)


def test_validate_names_every_error_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_text(
        '[api]\nport = 99999\n[[chains]]\nid = "a"\nrpc = []\n[[chains]]\nid = "a"\nrpc = ["http://h:1"]\n'
        '[[paths]]\nsrc = "a"\ndst = "a"\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "interlock.cli", "config", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert any("api.port" in ln for ln in lines)
    assert any("chains[0].rpc" in ln for ln in lines)
    assert "Traceback" not in r.stderr
    good = subprocess.run(
        [sys.executable, "-m", "interlock.cli", "config", "validate", "configs/relayer.toml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert good.returncode == 0
    assert good.stdout.strip().endswith(": ok")


def test_not_toml_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "r.toml"
    bad.write_bytes(b"\xff\xfe[[[")
    with pytest.raises(ConfigError) as info:
        load_relayer_config(bad)
    assert "invalid TOML" in str(info.value)


MAKER: dict[str, Any] = {
    "name": "desk", "key": "devnet:alice", "give": "100usd@chain-a", "take": "92eur@chain-b",
    "offer_lifetime": 300, "max_swaps": 3,
}  # fmt: skip


def test_a_maker_converts() -> None:
    s = parse_relayer_config({**GOOD, "makers": [MAKER, {**MAKER, "name": "b", "max_give": 200}]})
    desk, b = s.makers
    assert (desk.work, desk.key, desk.give, desk.take) == (
        "maker:desk", "devnet:alice", (100, "usd", "chain-a"), (92, "eur", "chain-b")
    )  # fmt: skip
    assert (desk.offer_lifetime_s, desk.max_swaps, desk.max_give) == (300, 3, None)
    assert (b.max_swaps, b.max_give) == (3, 200)
    assert parse_relayer_config(GOOD).makers == ()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"give": "100usd@chain-z"}, "makers[0].give: no chain 'chain-z' in [[chains]]"),
        ({"take": "92eur@chain-a"}, "makers[0].take: give and take must be on different chains"),
        ({"give": "1.5usd@chain-a"}, "makers[0].give: expected AMOUNTDENOM@CHAIN"),
        ({"give": "99999999999999999999usd@chain-a"}, "makers[0].give: expected AMOUNTDENOM"),
        ({"take": "eur@chain-b"}, "makers[0].take: expected AMOUNTDENOM@CHAIN"),
        ({"key": "../x"}, "makers[0].key"),
        ({"name": "Bad Name"}, "makers[0].name"),
        ({"offer_lifetime": 0}, "makers[0].offer_lifetime"),
        ({"max_swaps": None}, "makers[0]: a budget is required"),
        ({"max_swaps": 0}, "makers[0].max_swaps"),
        ({"max_give": 99}, "makers[0].max_give: less than one swap's give (100)"),
        ({"extra": 1}, "makers[0].extra: unknown key"),
    ],
)
def test_each_bad_maker_key_is_named(change: dict[str, Any], named: str) -> None:
    maker = {k: v for k, v in {**MAKER, **change}.items() if v is not None}
    data = {**GOOD, "makers": [maker]}
    errors = validate_relayer_config(data)
    assert any(named in e for e in errors), errors
    with pytest.raises(ConfigError) as info:
        parse_relayer_config(data, "r.toml")
    assert "\n" not in str(info.value)


def test_two_makers_of_one_name_are_refused() -> None:
    errors = validate_relayer_config({**GOOD, "makers": [MAKER, MAKER]})
    assert errors == ["makers[1].name: maker 'desk' is already makers[0]"]

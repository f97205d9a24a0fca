"""One chain-id grammar everywhere: genesis, config files, the wire and bridge paths all
accept and refuse the same ids (``1chain`` passed config and wire but could never get a
bridge path; ``a.b`` passed the wire and bridges but not config files)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.transfer import is_chain_id as bridge_accepts
from chains.chain import Chain
from chains.devnet import base_modules, build_devnet
from chains.errors import ConfigError, InterlockError
from chains.module import is_chain_id
from chains.service.wire import UnknownTopic, parse_topic
from interlock.config import parse_chain_config

GOOD = ["chain-a", "a", "A.b_c-9", "x" * 64]
BAD = ["1chain", "-a", "_a", ".a", "a/b", "a b", "", "x" * 65, "é"]


def _config(chain_id: str) -> dict[str, Any]:
    return {"chain_id": chain_id, "data_dir": "d", "seed": "s", "rpc": {"port": 0}}


def _surfaces(chain_id: str) -> dict[str, bool]:
    """Whether each public entry point accepts ``chain_id``."""
    out = {"kernel": is_chain_id(chain_id), "bridge": bridge_accepts(chain_id)}
    try:
        parse_topic(f"interlock/v1/chains/{chain_id}/headers")
        out["wire"] = True
    except UnknownTopic:
        out["wire"] = False
    try:
        parse_chain_config(_config(chain_id))
        out["config"] = True
    except ConfigError:
        out["config"] = False
    return out


@pytest.mark.parametrize("chain_id", GOOD + BAD)
def test_every_surface_agrees_on_a_chain_id(chain_id: str) -> None:
    want = chain_id in GOOD
    assert _surfaces(chain_id) == dict.fromkeys(("kernel", "bridge", "wire", "config"), want)


@pytest.mark.parametrize("chain_id", ["1chain", "a/b"])
def test_a_genesis_with_a_bad_chain_id_is_refused_in_one_line(chain_id: str) -> None:
    (dc,) = build_devnet(("chain-a",))
    genesis = type(dc.genesis)(
        chain_id, dc.genesis.time, dc.genesis.validators, dc.genesis.authority, {}
    )
    with pytest.raises(InterlockError, match="chain id") as err:
        Chain(genesis, base_modules())
    assert "\n" not in str(err.value)

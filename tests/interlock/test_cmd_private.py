"""``interlock private`` as subprocesses against a chain process that runs the
``confidential`` module, and the cheap hostile cases in process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chains.crypto import PrivateKey
from chains.service.rpc_client import HttpChain
from interlock.cli import main
from tests.conftest import free_port
from tests.interlock.test_cmd_swap import balance, interlock, ok, refused, wait_ready
from tests.interlock.test_processes import ChainProcess

ROOT = Path(__file__).resolve().parents[2]
SEED = "interlock-devnet"
BOB = PrivateKey.derive(SEED, "bob")
DEAD = f"http://127.0.0.1:{free_port()}"
MODULES = '["bank", "validators", "lightclient", "htlc", "bridge", "compliance", "confidential"]'


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deposit", "1.5usd", "--key", "devnet:alice"], "whole units"),
        (["deposit", "5usd", "--key", "devnet:alice", "--rpc", DEAD], "unreachable"),
        (["deposit", "5usd", "--key", "ghost", "--rpc", DEAD], "ghost"),
        (["transfer", "ghost", "5usd", "--key", "devnet:alice", "--rpc", DEAD], "ghost"),
        (["transfer", "devnet:bob", "0usd", "--key", "devnet:alice"], "at least 1"),
        (["withdraw", "5", "--key", "devnet:alice"], "no denom"),
        (["balance", "!!", "--key", "devnet:alice"], "bad denom"),
        (["audit", "xyz", "--auditor", "devnet:auditor"], "bad tx hash"),
        (["auditor", "set", "--auditor", "devnet:auditor"], "no chain to ask"),
    ],
)  # fmt: skip
def test_hostile_one_line(
    quiet: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["private", *argv])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.count("\n") == 1, err
    assert message in err


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ChainProcess]:
    text = (ROOT / "configs" / "chain-a.toml").read_text()
    config = tmp_path / "chain-a.toml"
    config.write_text(
        text.replace("block_interval = 1.0", f"block_interval = 1.0\nmodules = {MODULES}")
    )
    p = ChainProcess(config, tmp_path / "chain-a", "memory://", 0.2)
    try:
        p.start()
        yield p
    finally:
        p.cleanup()


@pytest.mark.slow
async def test_a_private_payment_through_the_cli(chain: ChainProcess) -> None:
    url = chain.url
    await wait_ready(url, "chain-a")
    rpc = ["--rpc", url, "--json"]

    def private(*args: str) -> dict[str, object]:
        return ok(interlock("private", *args, *rpc))

    def refuses(message: str, *args: str) -> None:
        refused(interlock("private", *args, *rpc), message)

    refuses("has no private account", "transfer", "devnet:bob", "5usd", "--key", "devnet:alice")
    bob_public = await balance(url, "chain-a", BOB, "usd")
    private("deposit", "100usd", "--key", "devnet:alice")  # registers alice's key first
    private("deposit", "1usd", "--key", "devnet:bob")
    refuses("not set an auditor", "transfer", "devnet:bob", "40usd", "--key", "devnet:alice")
    private("auditor", "set", "--auditor", "devnet:auditor")
    # more than the private balance: refused here, before any proof is sent
    refuses("less than 500", "transfer", "devnet:bob", "500usd", "--key", "devnet:alice")

    paid = private("transfer", "devnet:bob", "40usd", "--key", "devnet:alice")
    tx = str(paid["tx"])
    async with HttpChain("chain-a", [url]) as h:
        receipt = await h.get_receipt(bytes.fromhex(tx))
    assert receipt is not None
    event = next(e for e in receipt.events if e.type == "confidential.transferred")
    assert "amount" not in event.attributes
    assert "40" not in map(str, event.attributes.values())

    assert private("balance", "usd", "--key", "devnet:alice")["balance"] == 60
    assert private("balance", "usd", "--key", "devnet:bob")["balance"] == 41
    assert private("audit", tx, "--auditor", "devnet:auditor")["amount"] == 40
    refuses("not encrypted to this auditor", "audit", tx, "--auditor", "devnet:mallory")
    refuses("less than 42", "withdraw", "42usd", "--key", "devnet:bob")

    private("withdraw", "41usd", "--key", "devnet:bob")
    assert private("balance", "usd", "--key", "devnet:bob")["balance"] == 0
    assert await balance(url, "chain-a", BOB, "usd") == bob_public + 40

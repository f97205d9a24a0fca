"""``interlock compliance`` as subprocesses against a real chain process, and the cheap
hostile cases in process: every bad input is one line, and nothing is submitted."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chains.crypto import PrivateKey
from chains.service.rpc_client import HttpChain
from interlock.cli import main
from tests.conftest import free_port
from tests.interlock.test_cmd_swap import interlock, ok, refused, wait_ready
from tests.interlock.test_processes import ChainProcess

ROOT = Path(__file__).resolve().parents[2]
SEED = "interlock-devnet"
ALICE, KYC = PrivateKey.derive(SEED, "alice"), PrivateKey.derive(SEED, "kyc")
MALLORY = PrivateKey.derive(SEED, "mallory")
DEAD = f"http://127.0.0.1:{free_port()}"
HEX = "ab" * 32
POLICY = ["--min-level", "2", "--limit", "500", "--window", "24h",
          "--travel-rule-threshold", "100"]  # fmt: skip
ISSUE = ["issue", "devnet:alice", "--provider", "devnet:kyc", "--jurisdiction", "US",
         "--data", "Alice Example, 1 Main St"]  # fmt: skip


@pytest.fixture
def files(quiet: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The in-process CLI runs where two bad attestation files are."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "empty.json").write_text("{}")


def attestation_file(tmp_path: Path) -> Path:
    r = compliance([], *ISSUE, "--level", "2")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "att.json"
    path.write_text(r.stdout)
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["provider", "add", "ghost", "--name", "x", "--rpc", DEAD], "ghost"),
        (["provider", "add", HEX, "--name", "", "--rpc", DEAD], "bad --name"),
        (["provider", "revoke", "12ab", "--rpc", DEAD], "12ab"),
        (["deny", "add", "ghost", "--rpc", DEAD], "ghost"),
        (["deny", "add", "devnet:mallory", "--rpc", DEAD], "unreachable"),
        (["deny", "remove", "devnet:mallory"], "no chain to ask"),
        (["policy", "set", "--remote", "bad id!", *POLICY], "bad --remote"),
        (["policy", "set", "--remote", "chain-b", "--jurisdiction", "usa", *POLICY],
         "bad --jurisdiction"),
        (["policy", "set", "--remote", "chain-b", *POLICY[:-1], "x"], "whole number"),
        (["policy", "set", "--remote", "chain-b", *POLICY[:5], "forever", *POLICY[6:]],
         "bad duration"),
        (["policy", "set", "--remote", "chain-b", "--min-level", "300", *POLICY[2:]],
         "min_kyc_level"),
        (["policy", "set", "--remote", "chain-b", *POLICY[:2], "--limit", "0", *POLICY[4:]],
         "limit"),
        (["policy", "clear", "--remote", "chain-b", "--jurisdiction", "U1"], "bad --jurisdiction"),
        ([*ISSUE[:5], "usa", *ISSUE[6:], "--level", "2"], "attestation.jurisdiction"),
        ([*ISSUE, "--level", "0"], "attestation.level"),
        ([*ISSUE, "--level", "2", "--valid-days", "0"], "bad --valid-days"),
        ([*ISSUE[:3], "ghost", *ISSUE[4:], "--level", "2"], "ghost"),
        (["attest", "missing.json", "--key", "devnet:alice"], "cannot read"),
        (["attest", "garbage.json", "--key", "devnet:alice"], "not JSON"),
        (["attest", "empty.json", "--key", "devnet:alice"], "expected the keys"),
        (["attest", "-", "--key", "devnet:alice"], "not JSON"),  # stdin is empty
        (["show", "devnet:alice", "--rpc", "ftp://x"], "bad --rpc"),
    ],
)  # fmt: skip
def test_hostile_one_line(
    files: None, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    try:
        code = main(["compliance", *argv])
    except SystemExit as exc:  # argparse's own refusals (our parser's one line)
        code = int(str(exc.code))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err


def test_an_attestation_for_another_account_is_refused_before_it_is_sent(
    files: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = attestation_file(tmp_path)
    code = main(["compliance", "attest", str(path), "--key", "devnet:bob", "--rpc", DEAD])
    out, err = capsys.readouterr()
    assert (code, out, err.count("\n")) == (2, "", 1)
    assert f"the attestation is for {ALICE.address}" in err


def test_issue_signs_what_the_module_checks(quiet: None, tmp_path: Path) -> None:
    doc = json.loads(attestation_file(tmp_path).read_text())
    assert doc["address"] == ALICE.address
    assert doc["provider"] == KYC.public_key.hex()
    assert (doc["jurisdiction"], doc["level"]) == ("US", 2)
    # the personal data is only hashed
    assert "Alice" not in json.dumps(doc)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ChainProcess]:
    p = ChainProcess(ROOT / "configs" / "chain-a.toml", tmp_path / "chain-a", "memory://", 0.2)
    try:
        p.start()
        yield p
    finally:
        p.cleanup()


def compliance(rpc: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return interlock("compliance", *args, *rpc)


async def query(url: str, path: str, args: dict[str, object]) -> object:
    async with HttpChain("chain-a", [url]) as h:
        return await h.query("compliance", path, args)


@pytest.mark.slow
async def test_governance_and_kyc_through_the_cli(chain: ChainProcess, tmp_path: Path) -> None:
    url = chain.url
    await wait_ready(url, "chain-a")
    rpc = ["--rpc", url, "--json"]

    ok(compliance(rpc, "provider", "add", "devnet:kyc", "--name", "Acme KYC"))
    assert await query(url, "providers", {}) == [
        {"pubkey": KYC.public_key.hex(), "name": "Acme KYC"}
    ]
    # only governance governs: alice's signature is refused by the chain, in one line
    refused(compliance(rpc, "deny", "add", "devnet:mallory", "--authority", "devnet:alice"),
            "chain-a refused it")  # fmt: skip
    assert await query(url, "denied", {"address": MALLORY.address}) is False

    # the holder records the provider's attestation with a proof it controls the address
    att = attestation_file(tmp_path)
    ok(compliance(rpc, "attest", str(att), "--key", "devnet:alice"))
    shown = ok(compliance(rpc, "show", "devnet:alice"))
    assert shown["attestation"] == json.loads(att.read_text())
    assert shown["denied"] is False

    ok(compliance(rpc, "deny", "add", "devnet:mallory"))
    assert await query(url, "denied", {"address": MALLORY.address}) is True
    ok(compliance(rpc, "deny", "remove", MALLORY.address))
    assert await query(url, "denied", {"address": MALLORY.address}) is False
    refused(compliance(rpc, "deny", "remove", "devnet:mallory"), "not on the deny list")

    ok(compliance(rpc, "policy", "set", "--remote", "chain-b", "--jurisdiction", "US", *POLICY))
    assert await query(url, "policy", {"remote_chain": "chain-b", "jurisdiction": "US"}) == {
        "min_kyc_level": 2,
        "limit": 500,
        "window_ms": 86_400_000,
        "travel_rule_threshold": 100,
    }
    ok(compliance(rpc, "policy", "clear", "--remote", "chain-b", "--jurisdiction", "US"))
    assert await query(url, "policy", {"remote_chain": "chain-b", "jurisdiction": "US"}) is None
    refused(compliance(rpc, "policy", "clear", "--remote", "chain-b", "--jurisdiction", "US"),
            "no policy for chain-b/US")  # fmt: skip

    # a revoked provider's attestation is no longer accepted
    ok(compliance(rpc, "provider", "revoke", KYC.public_key.hex()))
    assert await query(url, "providers", {}) == []
    refused(compliance(rpc, "attest", str(att), "--key", "devnet:alice"), "kyc.provider")

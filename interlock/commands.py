"""Every command's arguments and help, and which function runs it: the grammar of the
``interlock`` command line, which ``interlock.cli`` builds its parser from.

A command's ``run`` is a ``"module:function"`` string, imported by :func:`resolve_run`
only when that command runs. So this module imports argparse and nothing heavy:
``interlock --help`` or ``interlock keys list`` never loads aiohttp, aiomqtt, pydantic,
the relayer or zk, which the commands that need them import themselves
(tests/interlock/test_cli.py checks it).

A service (a chain, the daemon and its setup, the demo) logs its work at INFO; the user's
commands print what happened on stdout and log only what went wrong (WARNING), unless
``-v``: each command's ``log_level`` says which.

A ``run`` function takes the parsed arguments and returns the exit status; an ``async``
one runs in its own event loop (:func:`interlock.cmd_common.run_async`). It raises an
:class:`~chains.errors.InterlockError` for anything the user can fix, which
``interlock.cli.main`` prints as one line (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BUS_ENV",
    "KEY_ENV",
    "add_chain_args",
    "add_output_args",
    "emit",
    "register_commands",
    "resolve_run",
]

KEY_ENV = "INTERLOCK_KEY"
"""The sender's key when ``transfer`` or ``burn`` is given no ``--key``."""
BUS_ENV = "INTERLOCK_BUS_URL"
"""The bus of ``swap offer|offers|accept`` when given no ``--bus-url``."""


def register_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Every command, in the order ``interlock --help`` lists them."""
    _chains(sub)
    _relayer(sub)
    _demo(sub)
    _keys(sub)
    _netting(sub)
    _query(sub)
    _transfer(sub)
    _swap(sub)
    _compliance(sub)
    _private(sub)


def resolve_run(target: str) -> Callable[[argparse.Namespace], int | None]:
    """The function a command's ``run`` (``"module:function"``) names, imported now."""
    module, _, name = target.partition(":")
    run = getattr(importlib.import_module(module), name)
    if inspect.iscoroutinefunction(run):
        from interlock.cmd_common import run_async  # imports the RPC client

        return run_async(run)
    return run  # type: ignore[no-any-return]


# --- shared arguments and output ----------------------------------------------------------


def add_chain_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reaching the chains")
    g.add_argument(
        "--rpc",
        action="append",
        default=[],
        metavar="URL",
        help="a chain's RPC endpoint (repeatable; also $INTERLOCK_RPC)",
    )
    g.add_argument(
        "--config",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="chain, devnet or relayer TOML naming RPC endpoints (repeatable)",
    )
    g.add_argument("--seed", default=None, help="devnet seed for devnet:NAME keys")
    g.add_argument(
        "--home",
        type=Path,
        default=None,
        help="keystore home (default $INTERLOCK_HOME or ~/.interlock)",
    )


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object on stdout, for scripts")


def emit(args: argparse.Namespace, obj: Mapping[str, Any], lines: Sequence[str]) -> None:
    """``--json``: one JSON object; else the human lines."""
    if getattr(args, "json", False):
        print(json.dumps(obj, sort_keys=True), flush=True)
    else:
        for line in lines:
            print(line, flush=True)


def _service(p: argparse.ArgumentParser, run: str) -> None:
    p.set_defaults(run=run, log_level=logging.INFO)


# --- the commands -------------------------------------------------------------------------


def _chains(sub: argparse._SubParsersAction[Any]) -> None:
    d = sub.add_parser("devnet", help="run independent chains in this process and print heads")
    d.add_argument("--config", type=Path, default=None, help="devnet TOML (configs/devnet.toml)")
    d.add_argument("--chains", type=_chain_ids, default=None, help="default chain-a,chain-b")
    d.add_argument("--interval", type=_positive_float, default=None, help="block interval, s")
    d.add_argument("--blocks", type=_non_negative_int, default=0, help="stop after N (0: run)")
    d.add_argument("--seed", default=None, help="devnet key seed (default interlock-devnet)")
    d.add_argument("--data-dir", type=Path, default=None, help="SQLite dir (default: temp)")
    _service(d, "interlock.cmd_devnet:devnet")

    c = sub.add_parser("chain", help="run one chain as this process")
    csub = c.add_subparsers(dest="chain_command", required=True)
    s = csub.add_parser("start", help="run one chain: node, RPC server, bus publisher")
    s.add_argument("--config", type=Path, required=True, help="chain TOML (configs/chain-a.toml)")
    s.add_argument("--data-dir", type=Path, default=None, help="override data_dir")
    s.add_argument("--rpc-port", type=_port, default=None, help="override rpc.port (0: free)")
    s.add_argument("--bus-url", default=None, help="override bus.url")
    s.add_argument("--interval", type=_positive_float, default=None, help="override interval")
    s.add_argument("--blocks", type=_non_negative_int, default=0, help="stop after N (0: run)")
    _service(s, "interlock.cmd_devnet:chain_start")


def _chain_ids(value: str) -> list[str]:
    ids = [c.strip() for c in value.split(",") if c.strip()]
    if not ids or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError("expected distinct comma-separated chain ids")
    for c in ids:
        if not (c.isascii() and c.replace("-", "").replace("_", "").isalnum() and len(c) <= 64):
            raise argparse.ArgumentTypeError(f"bad chain id {c!r}: use [A-Za-z0-9_-], max 64")
    return ids


def _positive_float(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < f <= 3600:
        raise argparse.ArgumentTypeError("expected a number of seconds in (0, 3600]")
    return f


def _non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("expected an integer >= 0")
    return n


def _port(value: str) -> int:
    n = _non_negative_int(value)
    if n > 65535:
        raise argparse.ArgumentTypeError("expected a port in 0..65535")
    return n


def _relayer(sub: argparse._SubParsersAction[Any]) -> None:
    s = sub.add_parser("start", help="run the relayer daemon")
    s.add_argument("--config", type=Path, required=True, help="relayer TOML")
    s.add_argument("--data-dir", type=Path, default=None, help="override relayer.data_dir")
    s.add_argument("--bus-url", default=None, help="override relayer.bus_url")
    s.add_argument("--api-port", type=int, default=None, help="override api.port (0: free)")
    _service(s, "interlock.cmd_relayer:start")

    c = sub.add_parser("config", help="check config files")
    csub = c.add_subparsers(dest="config_command", required=True)
    v = csub.add_parser("validate", help="print every error of a relayer file")
    v.add_argument("file", type=Path)
    _service(v, "interlock.cmd_relayer:validate")

    p = sub.add_parser("path", help="connect chains: light clients and bridge paths")
    psub = p.add_subparsers(dest="path_command", required=True)
    pc = psub.add_parser("create", help="clients of each chain on the other, and bridge paths")
    pc.add_argument("--config", type=Path, required=True, help="relayer TOML")
    pc.add_argument("--src", required=True, help="chain id")
    pc.add_argument("--dst", required=True, help="chain id")
    pc.add_argument(
        "--authority",
        default="devnet",
        help="governance key: 'devnet' (derived from each chain's seed) or a keystore name",
    )
    _service(pc, "interlock.cmd_relayer:path_create")


def _demo(sub: argparse._SubParsersAction[Any]) -> None:
    d = sub.add_parser("demo", help="the cross-border payment scenario, end to end")
    d.add_argument("--data-dir", type=Path, default=None, help="keep the chains here")
    d.add_argument("--bus-url", default="memory://", help="memory:// (default) or mqtt://...")
    d.add_argument("--interval", type=float, default=0.2, help="block interval, s")
    d.add_argument(
        "--plain", action="store_true", help="plain lines even on a terminal (no live display)"
    )
    _service(d, "interlock.demo:demo")


def _keys(sub: argparse._SubParsersAction[Any]) -> None:
    k = sub.add_parser("keys", help="the keystore: add, import, list, show, delete keys")
    k.add_argument(
        "--home",
        type=Path,
        default=None,
        help="keystore home (default $INTERLOCK_HOME or ~/.interlock)",
    )
    ks = k.add_subparsers(dest="keys_command", required=True)

    a = ks.add_parser("add", help="make a new key and store it encrypted")
    a.add_argument("name")
    add_output_args(a)
    a.set_defaults(run="interlock.cmd_keys:run_add")

    i = ks.add_parser(
        "import", help="store an existing key: a hex secret on stdin, or a devnet account"
    )
    i.add_argument("name")
    i.add_argument(
        "--devnet-seed",
        default=None,
        metavar="SEED",
        help="import the devnet account derived from SEED (never real funds)",
    )
    i.add_argument(
        "--account",
        default=None,
        help="with --devnet-seed: the devnet account name (default: NAME)",
    )
    add_output_args(i)
    i.set_defaults(run="interlock.cmd_keys:run_import")

    ls = ks.add_parser("list", help="every key: name and address")
    add_output_args(ls)
    ls.set_defaults(run="interlock.cmd_keys:run_list")

    s = ks.add_parser("show", help="a key's address and public key (never the secret)")
    s.add_argument("name", help="a keystore name, or devnet:NAME for a devnet account")
    s.add_argument("--seed", default=None, help="devnet seed (interlock-devnet)")
    add_output_args(s)
    s.set_defaults(run="interlock.cmd_keys:run_show")

    d = ks.add_parser("delete", help="remove a key for good")
    d.add_argument("name")
    d.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    d.set_defaults(run="interlock.cmd_keys:run_delete")


def _netting(sub: argparse._SubParsersAction[Any]) -> None:
    n = sub.add_parser("netting", help="multilateral netting by secure multi-party computation")
    ns = n.add_subparsers(dest="netting_command", required=True)

    r = ns.add_parser("run", help="take part in a netting round as one bank (and settle it)")
    r.add_argument("--bus-url", required=True, help="memory:// or mqtt[s]://host[:port]")
    r.add_argument(
        "--round",
        type=Path,
        default=None,
        metavar="FILE",
        help="the round file (TOML, the same at every bank): timing, asset, parties",
    )
    r.add_argument("--round-id", default=None, help="without --round: shared by every bank")
    r.add_argument("--start", type=float, default=None, help="without --round: Unix time")
    r.add_argument("--phase-s", type=float, default=None, help="without --round: seconds (10)")
    r.add_argument(
        "--parties", default=None, help="without --round: the banks' public keys, hex, a,b,c"
    )
    r.add_argument("--threshold", type=int, default=None, help="t (default (n-1)//2)")
    r.add_argument("--key", required=True, help="this bank's key: a keystore name or devnet:NAME")
    r.add_argument(
        "--owes",
        required=True,
        help="what this bank owes: one amount per party in order (0,70,20), "
        "or by name with --round (bank-b=70,bank-c=20)",
    )
    r.add_argument(
        "--settle", action="store_true", help="then pay this bank's legs of the plan (--round)"
    )
    r.add_argument(
        "--wait",
        action="store_true",
        help="follow the legs to delivery and this bank's holding to its net position",
    )
    r.add_argument("--wait-timeout", default="10m", help="give up waiting after (default 10m)")
    r.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the settlement journal's directory (default HOME/netting)",
    )
    add_chain_args(r)
    r.add_argument("--json", action="store_true", help="one JSON object")
    r.set_defaults(run="interlock.cmd_netting:run_run")

    d = ns.add_parser("demo", help="a round among banks with a random book, in this process")
    d.add_argument("--banks", type=int, default=3, help="how many banks (3)")
    d.add_argument("--bus-url", default="memory://", help="memory:// (default) or mqtt://...")
    d.add_argument("--seed", type=int, default=1, help="seed of the random book")
    d.add_argument("--phase-s", type=float, default=10.0, help="seconds per phase (10)")
    d.add_argument(
        "--settle", action="store_true", help="then pay the plan on two in-process chains"
    )
    d.add_argument("--json", action="store_true", help="one JSON object")
    d.set_defaults(run="interlock.cmd_netting:run_demo")


def _query(sub: argparse._SubParsersAction[Any]) -> None:
    q = sub.add_parser("query", help="read balances, txs, blocks, clients, paths over RPC")
    qs = q.add_subparsers(dest="query_command", required=True)

    def command(name: str, help: str, run: str, chain_required: bool = False) -> Any:
        p = qs.add_parser(name, help=help)
        p.add_argument(
            "--chain",
            default=None,
            required=chain_required,
            help="chain id (may be left out when only one chain is given)",
        )
        add_chain_args(p)
        add_output_args(p)
        p.set_defaults(run=f"interlock.cmd_query:{run}")
        return p

    b = command("balance", "balances of an address or key", "query_balance")
    b.add_argument("account", metavar="ADDRESS|KEY", help="40 hex digits, a key, or devnet:NAME")
    b.add_argument("--denom", default=None, help="only this denom")
    t = command("tx", "a committed transaction's receipt (every given chain is asked)", "query_tx")
    t.add_argument("hash", help="64 hex digits")
    k = command("block", "a block: header, transactions, events", "query_block")
    k.add_argument("height", help="a height, or 'latest'")
    c = command("client", "a light client: its chain, latest height, frozen or not", "query_client")
    c.add_argument("client_id")
    p = command("path", "bridge paths: every one of a chain, or --remote R's", "query_path")
    p.add_argument("--remote", default=None, help="the counterparty chain id")


def _transfer(sub: argparse._SubParsersAction[Any]) -> None:
    t = sub.add_parser(
        "transfer",
        help="move a token to another chain (lock; a wrapped token "
        "going home is burned); status and list",
    )
    t.add_argument("amount", metavar="AMOUNT|status|list", help="e.g. 100usd, or a subcommand")
    t.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    t.add_argument("--from", dest="src", default=None, metavar="CHAIN", help="source chain")
    t.add_argument("--to", dest="dst", default=None, metavar="CHAIN", help="destination chain")
    _send_args(t)
    t.add_argument("--account", default=None, help="transfer list: only this sender/recipient")
    t.add_argument(
        "--limit", type=int, default=20, help="transfer list: the newest N per source chain"
    )
    add_chain_args(t)
    add_output_args(t)
    t.set_defaults(run="interlock.cmd_transfer:transfer")

    b = sub.add_parser("burn", help="send a wrapped token home to its origin chain")
    b.add_argument("amount", metavar="AMOUNT", help="e.g. 40chain-a/usd")
    b.add_argument("--from", dest="src", required=True, metavar="CHAIN", help="where it is now")
    _send_args(b)
    add_chain_args(b)
    add_output_args(b)
    b.set_defaults(run="interlock.cmd_transfer:burn", dst=None)


def _send_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipient", default=None, help="address, key, or devnet:NAME")
    p.add_argument("--key", default=None, help=f"the sender's key (default ${KEY_ENV})")
    p.add_argument(
        "--timeout",
        default=None,
        help="deliverable for this long, e.g. 60s, 10m (converted to destination heights)",
    )
    p.add_argument(
        "--travel-rule",
        default=None,
        metavar="TEXT",
        help="originator and beneficiary information, sealed to the destination's "
        "compliance key (its hash travels in the packet)",
    )
    p.add_argument("--wait", action="store_true", help="follow it to the mint or the refund")
    p.add_argument("--wait-timeout", default="10m", help="give up waiting after (default 10m)")
    p.add_argument(
        "--plain", action="store_true", help="--wait: plain lines even on a terminal (no spinner)"
    )


def add_trust_args(p: argparse.ArgumentParser) -> None:
    """Where verified reads get their trust (``interlock.trust``): a chain file given
    with --config is its genesis; else these; else the trust file, else first use."""
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="CHAIN:HEIGHT:HASH",
        help="trust this header of CHAIN and verify from it (repeatable; a chain file "
        "given with --config anchors at its genesis instead)",
    )


def _swap(sub: argparse._SubParsersAction[Any]) -> None:
    s = sub.add_parser("swap", help="drive an HTLC atomic swap by hand (decred atomicswap verbs)")
    ss = s.add_subparsers(dest="swap_command", required=True)

    def verb(name: str, help: str, run: str, key: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = ss.add_parser(name, help=help)
        p.add_argument("--chain", default=None, help="chain id (optional with one chain)")
        if key:
            p.add_argument("--key", required=True, help="your key: a keystore name or devnet:NAME")
        add_chain_args(p)
        add_output_args(p)
        p.set_defaults(run=f"interlock.cmd_swap:{run}")
        return p

    i = verb("initiate", "make a secret and lock the first leg to the participant", "initiate")
    i.add_argument("participant", help="address, key, or devnet:NAME")
    i.add_argument("amount", help="e.g. 100usd")
    i.add_argument("--locktime", default="2h", help="refundable after this (default 2h)")

    p = verb("participate", "lock the second leg on the initiator's hashlock", "participate")
    p.add_argument("initiator", help="address, key, or devnet:NAME")
    p.add_argument("amount", help="e.g. 92eur")
    p.add_argument("hashlock", help="the initiator's SHA-256(secret), 64 hex digits")
    p.add_argument("--locktime", default="1h", help="refundable after this (default 1h)")

    r = verb("redeem", "claim a lock with the secret (reveals it on this chain)", "redeem")
    r.add_argument("lock_id")
    r.add_argument("secret", help="64 hex digits")

    f = verb("refund", "take a lock back once its timelock height is reached", "refund")
    f.add_argument("lock_id")

    x = verb("extract-secret", "read the secret a claim revealed", "extract", key=False)
    x.add_argument("lock_id")
    x.add_argument("--hashlock", default=None, help="only accept a secret of this hashlock")

    a = verb("audit", "show a lock and check it against the agreed terms", "audit", key=False)
    a.add_argument("lock_id")
    a.add_argument("--amount", default=None, help="expected amount and denom, e.g. 100usd")
    a.add_argument("--sender", default=None, help="expected sender")
    a.add_argument("--receiver", default=None, help="expected receiver")
    a.add_argument("--hashlock", default=None, help="expected hashlock")
    a.add_argument("--min-time", default=None, help="at least this long left, e.g. 30m")
    add_trust_args(a)

    _offers(ss)


def _offers(ss: argparse._SubParsersAction[Any]) -> None:
    """Add the offer verbs to the ``swap`` group's subparsers."""

    def verb(name: str, help: str, run: str, chains: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = ss.add_parser(name, help=help)
        if chains:
            add_chain_args(p)
            add_trust_args(p)
        else:
            p.add_argument("--home", type=Path, default=None, help="default $INTERLOCK_HOME")
        add_output_args(p)
        p.set_defaults(run=f"interlock.cmd_offers:{run}")
        return p

    def bus(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bus-url", default=None, help=f"mqtt://HOST:PORT (or ${BUS_ENV})")

    o = verb("offer", "publish a signed swap offer; --wait: answer a taker and swap", "offer")
    o.add_argument("--give", required=True, help="what you lock, e.g. 100usd@chain-a")
    o.add_argument("--take", required=True, help="what you want, e.g. 92eur@chain-b")
    o.add_argument("--key", required=True, help="your key: a keystore name or devnet:NAME")
    o.add_argument("--expires", default="10m", help="offer valid this long (default 10m)")
    o.add_argument("--wait", action="store_true", help="answer the first taker, swap to the end")
    bus(o)

    ls = verb("offers", "list open offers whose signatures verify", "offers", chains=False)
    ls.add_argument("--listen", default="1s", help="how long to collect offers (default 1s)")
    bus(ls)

    a = verb("accept", "accept an offer; --wait: run your side of the swap to the end", "accept")
    a.add_argument("offer_id", help="the offer id (64 hex digits) from 'swap offers'")
    a.add_argument("--key", required=True, help="your key: a keystore name or devnet:NAME")
    a.add_argument("--answer-timeout", default="60s", help="wait this long for the maker")
    a.add_argument("--max-lock", default="1h", help="refuse to lock your funds longer")
    a.add_argument("--wait", action="store_true", help="run your side of the swap to the end")
    bus(a)

    st = verb("status", "show one swap of yours (--wait: resume it to the end)", "status")
    st.add_argument("swap_id", help="a swap id or offer id, or a unique prefix")
    st.add_argument("--wait", action="store_true", help="resume its driver to the end")
    st.add_argument("--key", default=None, help="with --wait: the key the swap signs with")

    verb("list", "list your swaps", "list_swaps", chains=False)


def _compliance(sub: argparse._SubParsersAction[Any]) -> None:
    c = sub.add_parser("compliance", help="KYC providers, deny list, policies; attestations")
    cs = c.add_subparsers(dest="compliance_command", required=True)

    def command(
        parent: argparse._SubParsersAction[Any], name: str, help: str, run: str, gov: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help)
        p.add_argument("--chain", default=None, help="chain id (when several are given)")
        if gov:
            p.add_argument(
                "--authority",
                default="devnet",
                help="governance key: 'devnet' (derived from the seed) or a keystore name",
            )
        add_chain_args(p)
        add_output_args(p)
        p.set_defaults(run=f"interlock.cmd_compliance:{run}")
        return p

    def group(name: str, help: str) -> argparse._SubParsersAction[Any]:
        g = cs.add_parser(name, help=help)
        subs: argparse._SubParsersAction[Any] = g.add_subparsers(
            dest=f"compliance_{name}_command", required=True
        )
        return subs

    prov = group("provider", "register or revoke a KYC provider's key")
    p = command(prov, "add", "register a KYC provider (governance)", "provider_add")
    p.add_argument("pubkey", metavar="PUBKEY|KEY", help="64 hex digits, or a key's name")
    p.add_argument("--name", required=True, help="the provider's name (up to 64 characters)")
    p = command(prov, "revoke", "revoke a KYC provider: its attestations stop counting", "revoke")
    p.add_argument("pubkey", metavar="PUBKEY|KEY")

    deny = group("deny", "the sanctions deny list")
    p = command(deny, "add", "deny an address the bridge (governance)", "deny_add")
    p.add_argument("account", metavar="ADDRESS|KEY")
    p = command(deny, "remove", "take an address off the deny list (governance)", "deny_remove")
    p.add_argument("account", metavar="ADDRESS|KEY")

    pol = group("policy", "a bridge path's policy per jurisdiction")
    p = command(pol, "set", "set a path's policy for a jurisdiction (governance)", "policy_set")
    _path_args(p)
    p.add_argument("--min-level", type=_int, required=True, help="least KYC level (0: none)")
    p.add_argument("--limit", type=_int, required=True, help="most moved per account per window")
    p.add_argument("--window", required=True, help="the sliding window, e.g. 24h")
    p.add_argument(
        "--travel-rule-threshold",
        type=_int,
        required=True,
        help="transfers of at least this carry travel-rule data",
    )
    p = command(pol, "clear", "remove a path's policy for a jurisdiction", "policy_clear")
    _path_args(p)

    p = command(cs, "issue", "as a KYC provider: sign an attestation (offline)", "issue", gov=False)
    p.add_argument("account", metavar="ADDRESS|KEY", help="the attested account")
    p.add_argument("--provider", required=True, help="the provider's key")
    p.add_argument("--jurisdiction", required=True, help="ISO 3166 alpha-2, e.g. US")
    p.add_argument("--level", type=_int, required=True, help="the KYC level checked, 1..255")
    p.add_argument("--valid-days", type=_int, default=365, help="days until it expires")
    p.add_argument("--data", required=True, help="the personal data: only its SHA-256 is kept")
    p = command(cs, "attest", "as its holder: record an attestation on chain", "attest", gov=False)
    p.add_argument("file", help="the attestation JSON ('-': standard input)")
    p.add_argument("--key", required=True, help="the attested account's key")
    p = command(cs, "show", "providers; an account's attestation and denial", "show", gov=False)
    p.add_argument("account", nargs="?", default=None, metavar="ADDRESS|KEY")


def _int(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,20}", text):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}")
    return int(text)


def _path_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remote", required=True, help="the path's other chain")
    p.add_argument("--jurisdiction", default="*", help="ISO 3166 alpha-2, or * (the default)")


def _private(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("private", help="confidential balances: deposit, transfer, withdraw")
    ps = p.add_subparsers(dest="private_command", required=True)

    def command(parent: argparse._SubParsersAction[Any], name: str, help: str, run: str) -> Any:
        c = parent.add_parser(name, help=help)
        c.add_argument("--chain", default=None, help="chain id (when several are given)")
        add_chain_args(c)
        add_output_args(c)
        c.set_defaults(run=f"interlock.cmd_private:{run}")
        return c

    c = command(ps, "deposit", "public balance -> private balance", "deposit")
    c.add_argument("amount", metavar="AMOUNTDENOM", help="e.g. 100usd")
    c.add_argument("--key", required=True, help="the account's key")
    c = command(ps, "transfer", "pay a registered account, the amount hidden", "transfer")
    c.add_argument("to", metavar="ADDRESS|KEY")
    c.add_argument("amount", metavar="AMOUNTDENOM")
    c.add_argument("--key", required=True)
    c = command(ps, "withdraw", "private balance -> public balance", "withdraw")
    c.add_argument("amount", metavar="AMOUNTDENOM")
    c.add_argument("--key", required=True)
    c = command(ps, "balance", "decrypt the account's private balance", "balance")
    c.add_argument("denom")
    c.add_argument("--key", required=True)
    a = ps.add_parser("auditor", help="the auditor governance designates")
    asub = a.add_subparsers(dest="private_auditor_command", required=True)
    c = command(asub, "set", "designate the auditor's key (governance)", "auditor_set")
    c.add_argument("--auditor", required=True, help="the auditor's key")
    c.add_argument(
        "--authority",
        default="devnet",
        help="governance key: 'devnet' (derived from the seed) or a keystore name",
    )
    c = command(ps, "audit", "as the auditor: the amount a transfer moved", "audit")
    c.add_argument("hash", help="the transfer's tx hash, 64 hex digits")
    c.add_argument("--auditor", required=True, help="the auditor's key")

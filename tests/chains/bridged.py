"""A proof-of-work or proof-of-stake chain bridged to a BFT chain in one LocalNet, for the
bridge tests of both engines (test_pow_bridge.py, test_pos_bridge.py).

The BFT chain ``B`` holds a client of the engine's chain, made by the engine's own
``create_*_client`` call and fed as a relayer would (:func:`update_client`); the engine's
chain holds the usual BFT client of ``B``; governance registers a bridge path each way."""

from __future__ import annotations

from collections.abc import Callable

from bridge.localnet import LocalNet, Side
from bridge.module import BridgeModule
from chains.bank import get_balance
from chains.devnet import base_modules, build_devnet
from chains.pos import PosParams
from chains.pow import PowParams
from chains.powplan import plan_pow_headers, plan_stake_tables
from chains.types import Header

B = "chain-b"
ACCOUNTS = ("alice", "bob", "carol", "dave", "relayer")


def bridged_net(
    src: str,
    params: PowParams | PosParams,
    create: str,
    create_args: Callable[[LocalNet, Header], dict[str, object]],
) -> LocalNet:
    """``src`` (engine ``params``) and ``B``, connected both ways. ``B``'s client of
    ``src`` is made by the ``lightclient`` method ``create`` with ``create_args(net,
    checkpoint)``, the checkpoint being ``src``'s first block."""
    net = LocalNet((src, B), accounts=ACCOUNTS)
    spec = build_devnet((src,), seed="interlock-bridge", accounts=ACCOUNTS, consensus={src: params})
    side = spec[0]
    net.sides[src] = Side(side, side.build(lambda: [*base_modules(params), BridgeModule()]))
    checkpoint = net.produce(src).header
    r = net.call(B, "relayer", "lightclient", create, create_args(net, checkpoint))
    assert r.ok, r.error
    net[B].clients[src] = str(r.events[0].attributes["client_id"])
    # src's client of B: the usual BFT client
    net.produce(B)
    r = net.call(
        src,
        "relayer",
        "lightclient",
        "create_client",
        {
            "update": net.header_update(B, 1, 1).to_json(),
            "trusting_period": 14 * 24 * 3600 * 1000,
            "max_clock_drift": 10_000,
        },
    )
    assert r.ok, r.error
    net[src].clients[B] = str(r.events[0].attributes["client_id"])
    for dst, other in ((B, src), (src, B)):
        args = {"remote_chain": other, "client_id": net[dst].clients[other]}
        assert net.call(dst, "gov", "bridge", "register_path", args).ok
    return net


def client_view(net: LocalNet, src: str) -> dict[str, object]:
    """``B``'s client of ``src``, as its query shows it."""
    got = net[B].chain.query("lightclient", "client", {"client_id": net[B].clients[src]})
    assert isinstance(got, dict)
    return got


def update_client(net: LocalNet, src: str, params: PowParams | PosParams) -> None:
    """What a relayer does: read the client's best chain, plan runs of headers from the
    fork point (the same planner for work and stake), submit them, a PoS run with the
    stake tables its headers name."""
    cid = net[B].clients[src]
    view = client_view(net, src)
    best, final = int(str(view["best_height"])), int(str(view["final_height"]))
    raw = net[B].chain.query(
        "lightclient", "pow_best", {"client_id": cid, "from": final, "to": best}
    )
    assert isinstance(raw, dict)
    hashes = {int(h): bytes.fromhex(v) for h, v in raw.items()}
    source = {h: b.header for h, b in net[src].blocks.items()}
    for run in plan_pow_headers(best, final, hashes, source, net[src].chain.height):
        args: dict[str, object] = {"client_id": cid, "headers": [h.to_json() for h in run]}
        method = "update_pow_client"
        if isinstance(params, PosParams):
            args["tables"] = [t.to_json() for t in plan_stake_tables(run, net[src].signed_by)]
            method = "update_pos_client"
        r = net.call(B, "relayer", "lightclient", method, args)
        assert r.ok, r.error


def balance(net: LocalNet, chain: str, who: str, denom: str) -> int:
    return get_balance(net[chain].chain.read_state(), net.key(chain, who).address, denom)

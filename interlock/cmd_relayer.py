"""The operator's commands: ``interlock start``, ``config validate``, ``path create``.

* ``interlock start --config configs/relayer.toml`` runs the relayer daemon until SIGTERM
  or Ctrl-C (flags override ``--data-dir``, ``--bus-url``, ``--api-port``); it prints one
  ready line with the API address and its workers.
* ``interlock config validate FILE`` prints every error of a relayer file with its key
  path, or ``ok``; exit 2 on errors.
* ``interlock path create --config FILE --src A --dst B`` connects two chains (Hermes's
  ``create client`` + a governance step): on each side a light client of the other,
  created by the relayer's key from the other's latest signed header, and a bridge path
  registered by the chain's governance key. Idempotent: a side that has a path already is
  left as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import signal
import sys
from collections.abc import Mapping

from chains.crypto import PrivateKey
from chains.errors import ConfigError
from chains.service.bus import parse_bus_url
from chains.service.rpc_client import HttpChain
from interlock.cmd_devnet import GC_THRESHOLDS
from interlock.keys import load_key
from relayer.config import RelayerSettings, load_errors, load_relayer_config
from relayer.connect import connect
from relayer.daemon import Daemon

__all__ = ["path_create", "start", "validate"]

log = logging.getLogger("interlock.cli")

TRUSTING_PERIOD_MS = 14 * 24 * 3600 * 1000
MAX_CLOCK_DRIFT_MS = 10_000


def relayer_keys(settings: RelayerSettings) -> dict[str, PrivateKey]:
    return {cid: load_key(c.key, seed=c.seed) for cid, c in settings.chains.items()}


def maker_keys(settings: RelayerSettings) -> dict[str, PrivateKey]:
    """Each ``[[makers]]`` entry's key by maker name (``devnet:NAME``: the give chain's
    seed; a keystore name: opened with ``$INTERLOCK_PASSPHRASE``)."""
    return {m.name: load_key(m.key, seed=settings.chains[m.give[2]].seed) for m in settings.makers}


def _settings(args: argparse.Namespace) -> RelayerSettings:
    s = load_relayer_config(args.config)
    changes: dict[str, object] = {}
    if getattr(args, "data_dir", None) is not None:
        changes["data_dir"] = args.data_dir
    if getattr(args, "bus_url", None) is not None:
        parse_bus_url(args.bus_url)  # a bad URL is one line here, not a traceback later
        changes["bus_url"] = args.bus_url
    if getattr(args, "api_port", None) is not None:
        if not 0 <= args.api_port <= 65535:
            raise ConfigError("--api-port: expected a port in 0..65535")
        changes["api_port"] = args.api_port
    return dataclasses.replace(s, **changes)  # type: ignore[arg-type]


async def run_start(args: argparse.Namespace) -> None:
    settings = _settings(args)
    from interlock.maker import maker_kind  # the swap machinery only when it is started

    kinds = [maker_kind(maker_keys(settings))] if settings.makers else []
    daemon = Daemon(settings, relayer_keys(settings), kinds=kinds)
    # As in a chain process: the daemon decodes every event of the source chains into
    # short-lived acyclic objects, and CPython's default thresholds collect so often that
    # decoding and verifying a bus event cost 45-62 us with them, 35-44 us with these.
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()  # what exists now (modules, config, keys) is never garbage
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)

    def ready(d: Daemon) -> None:
        names = ", ".join(d.work) or "none"
        print(
            f"relayer: api http://{settings.api_host}:{d.api_port}; data {settings.data_dir}; "
            f"workers: {names}; console http://{settings.api_host}:{d.api_port}/",
            flush=True,
        )

    await daemon.run(ready=ready)
    print("relayer: stopped", flush=True)


def validate(args: argparse.Namespace) -> int:
    errors = load_errors(args.file)
    if not errors:
        print(f"{args.file}: ok")
        return 0
    for e in errors:
        print(f"{args.file}: {e}", file=sys.stderr)
    return 2


async def run_path_create(args: argparse.Namespace) -> None:
    settings = load_relayer_config(args.config)
    for end in (args.src, args.dst):
        if end not in settings.chains:
            raise ConfigError(f"--src/--dst: no chain {end!r} in {args.config}")
    if args.src == args.dst:
        raise ConfigError("--src/--dst: a path needs two different chains")
    keys = relayer_keys(settings)
    handles: Mapping[str, HttpChain] = {
        cid: HttpChain(cid, settings.chains[cid].rpc) for cid in (args.src, args.dst)
    }
    try:
        for cid, h in handles.items():
            status = await h.status()
            if status.get("chain_id") != cid:
                raise ConfigError(
                    f"{h.endpoints[0]} answers for {status.get('chain_id')!r}, not {cid!r}"
                )
        for a, b in ((args.src, args.dst), (args.dst, args.src)):
            seed = settings.chains[b].seed
            if args.authority == "devnet":
                authority = PrivateKey.derive(seed, b, "gov")
            else:
                authority = load_key(args.authority, seed=seed)
            print(await connect(handles[a], handles[b], keys[b], authority), flush=True)
    finally:
        for h in handles.values():
            await h.close()


def start(args: argparse.Namespace) -> int:
    asyncio.run(run_start(args))
    return 0


def path_create(args: argparse.Namespace) -> int:
    asyncio.run(run_path_create(args))
    return 0

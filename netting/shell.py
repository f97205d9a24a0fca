"""The thin async shell: one bank runs a netting round over the bus.

All decisions are the pure :class:`~netting.protocol.Party`'s; this only subscribes to
the round's topics (``interlock/v1/netting/{round_id}/#``, see :mod:`netting.wire`),
feeds it decoded messages and the wall clock (deadlines are absolute Unix times every
bank shares), and publishes what it returns.

Messages are published **retained**, so a bank whose process subscribes late (after
``start``, before the deadlines) still receives what the others sent; each bank clears its
own retained messages when its round ends. A round id is therefore used for one round
only: a retained message of an earlier round under the same id would verify again.

:func:`run_netting` adds the documented exclusion rule: when a round fails naming parties
that missed the share deadline or were caught dealing inconsistent shares, the others
start a new round at once without them (round id ``{id}.{k}``, starting when the failed
round's last phase would have ended, the excluded parties' obligations left out: they are
settled bilaterally, outside the netting), while at least three parties remain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from chains.crypto import PrivateKey
from chains.service.bus import Bus, BusError
from netting.errors import MessageRefused, RoundFailed
from netting.protocol import Envelope, NettingResult, Party, Phase, RoundSpec, default_threshold
from netting.wire import decode_envelope, encode_envelope, round_filter, topic_for

__all__ = ["RoundReport", "run_netting", "run_party"]

log = logging.getLogger("interlock.netting")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What one bank's shell saw of a round."""

    result: NettingResult | None
    """The outcome (None if the round failed)."""
    failure: RoundFailed | None
    refused: dict[str, int]
    """Messages refused, by reason (see :mod:`netting.protocol`)."""
    spec: RoundSpec
    """The round that ran (after any reruns without excluded parties)."""
    parties: tuple[int, ...]
    """Indices, in the first round's party list, of the parties of ``spec``."""


async def _publish(bus: Bus, envs: Sequence[Envelope], sent: list[str]) -> None:
    for env in envs:
        topic = topic_for(env.round_id, env.phase, env.sender)
        await bus.publish(topic, encode_envelope(env), retain=True)
        sent.append(topic)


async def _clear(bus: Bus, topics: Sequence[str]) -> None:
    for topic in topics:  # an empty retained payload deletes the retained message
        await bus.publish(topic, b"", retain=True)


async def run_party(
    bus: Bus,
    spec: RoundSpec,
    key: PrivateKey,
    obligations: Sequence[int],
    *,
    clock: Clock = time.time,
) -> RoundReport:
    """Run one round as the bank holding ``key``; returns when it is done or failed.

    ``obligations[k]`` is what this bank owes party ``k`` of ``spec.parties``.
    """
    party = Party(spec, key, obligations)
    refused: Counter[str] = Counter()
    sent: list[str] = []
    async with bus.subscribe(round_filter(spec.round_id)) as sub:
        it = aiter(sub)
        wait = spec.start - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        await _publish(bus, party.start(clock()), sent)
        while not party.finished:
            deadline = party.next_deadline()
            timeout = 0.0 if deadline is None else max(0.0, deadline - clock())
            try:
                msg = await asyncio.wait_for(anext(it), timeout + 0.001)
            except TimeoutError:
                await _publish(bus, party.tick(clock()), sent)
                continue
            except StopAsyncIteration:
                break
            if not msg.payload:
                continue  # a retained message being cleared
            try:
                env = decode_envelope(msg.topic, msg.payload, spec)
                if env.sender == party.me and env.round_id == spec.round_id:
                    continue  # our own message, back from the broker
                out = party.receive(env, clock())
            except MessageRefused as exc:
                refused[exc.reason] += 1
                log.debug("refused: %s", exc)
                continue
            await _publish(bus, out, sent)
    with contextlib.suppress(BusError):  # the bus closed under us: nothing to clear
        await _clear(bus, sent)
    return RoundReport(party.result, party.failure, dict(refused), spec, tuple(range(spec.n)))


async def run_netting(
    bus: Bus,
    spec: RoundSpec,
    key: PrivateKey,
    obligations: Sequence[int],
    *,
    clock: Clock = time.time,
    max_rounds: int = 3,
) -> RoundReport:
    """:func:`run_party`, rerun without excluded parties (see the module docstring)."""
    members = tuple(range(spec.n))
    current, row = spec, list(obligations)
    for k in range(max_rounds):
        report = await run_party(bus, current, key, row, clock=clock)
        report = replace(report, parties=members)
        failure = report.failure
        out = set(failure.excluded) | set(failure.cheaters) if failure else set()
        me = current.parties.index(key.public_key)
        if failure is None or not out or me in out or current.n - len(out) < 3:
            return report
        keep = [i for i in range(current.n) if i not in out]
        members = tuple(members[i] for i in keep)
        parties = tuple(current.parties[i] for i in keep)
        row = [row[i] for i in keep]
        current = RoundSpec(
            f"{spec.round_id}.{k + 1}"[:64],
            parties,
            min(current.threshold, default_threshold(len(parties))),
            current.deadline(Phase.SUM),
            current.phase_s,
        )
        log.info("round %s failed (%s): rerunning as %s", spec.round_id, failure, current.round_id)
    return report

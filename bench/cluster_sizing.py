"""On paper, from the cluster benchmark's CPU per call: the cores a city and a province need.

Pure arithmetic, no I/O (bench/cluster_calls.py measures and prints). The model:
Asterisk's CPU follows the channels up at each moment (RTP in and out every 20 ms, the
prompts played), so the measured CPU per call is spread over the measured call's length
and charged per channel-second; the edge, the FastAGI servers and PostgreSQL work per call
(SIP transactions, AGI commands, the trail's writes), whatever its pace, so they scale with
new calls per second.

>>> a = Assumptions()
>>> round(a.call_s), round(a.channels_per_call, 2)
(132, 1.55)
>>> e = estimate(PerCall(edge_s=0.01, asterisk_s=0.1, fastagi_s=0.05, postgres_s=0.02), 20.0, Site("x", 2, 132), a)
>>> e.calls_per_s, round(e.asterisk, 2), round(e.fastagi, 2)
(1.0, 1.02, 0.05)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class PerCall:
    """CPU seconds one measured call cost each part (a balance query keyed at machine pace)."""

    edge_s: float
    asterisk_s: float
    fastagi_s: float
    postgres_s: float


@dataclass(frozen=True)
class Site:
    name: str
    nodes: int
    concurrent: int  # calls up at once at the peak


@dataclass(frozen=True)
class Assumptions:
    # A real caller keys at a human pace and listens to whole prompts: about a minute in
    # the IVR for a balance query (the benchmark's calls key at once and last ~20 s).
    ivr_s: float = 60.0
    # The share of calls that go on to an agent, and how long they talk. Such a call has a
    # second channel (the agent's phone) while they talk, and a second leg through the edge.
    agent_share: float = 0.4
    talk_s: float = 180.0
    # Cores sized to be this busy at the peak (room for bursts, a node lost, the console).
    busy: float = 0.5

    @property
    def call_s(self) -> float:
        """A call's mean length."""
        return self.ivr_s + self.agent_share * self.talk_s

    @property
    def channels_per_call(self) -> float:
        """Asterisk channels up per call up, on average over its length."""
        return (self.ivr_s + 2 * self.agent_share * self.talk_s) / self.call_s


@dataclass(frozen=True)
class Estimate:
    site: Site
    calls_per_s: float
    # Cores busy at the peak, per part.
    edge: float
    asterisk: float
    fastagi: float
    postgres: float
    busy: float

    @property
    def asterisk_per_node(self) -> float:
        return self.asterisk / self.site.nodes

    def cores(self, load: float) -> int:
        """Cores to provide for a part: its load at the peak over the target busy share, at least one."""
        return max(1, math.ceil(load / self.busy))


def estimate(per_call: PerCall, measured_call_s: float, site: Site, a: Assumptions) -> Estimate:
    """The load of `site` at its peak, from what one measured call of `measured_call_s` cost."""
    calls_per_s = site.concurrent / a.call_s
    channels = site.concurrent * a.channels_per_call
    return Estimate(
        site=site,
        calls_per_s=calls_per_s,
        edge=calls_per_s * (1 + a.agent_share) * per_call.edge_s,
        asterisk=channels * per_call.asterisk_s / measured_call_s,
        fastagi=calls_per_s * per_call.fastagi_s,
        postgres=calls_per_s * per_call.postgres_s,
        busy=a.busy,
    )


SITES: Final = (Site("city", 2, 60), Site("province", 8, 600))

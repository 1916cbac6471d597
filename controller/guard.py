"""The controller's side of port security and bounded punts: which packet-ins it takes (a
token bucket per VM port and one for all), what it logs under a storm (one line per cause
per interval), the per-port drop counters read back from PORT_SECURITY, and the meters
each hypervisor should have. Pure: time comes in as `now`; the app sends what this decides.
"""
from __future__ import annotations

import logging

from controller import security
from controller.ratelimit import Buckets, LogLimiter, TokenBucket

LOG = logging.getLogger("packetwalk.controller")
PORT_PACKET_INS_PER_S, ALL_PACKET_INS_PER_S = 50, 500
LOG_INTERVAL = 10.0


class Guard:
    def __init__(self):
        self.per_port = Buckets(PORT_PACKET_INS_PER_S, PORT_PACKET_INS_PER_S)
        self.total = TokenBucket(ALL_PACKET_INS_PER_S, ALL_PACKET_INS_PER_S)
        self.limiter = LogLimiter(LOG_INTERVAL)
        self.drops: dict[tuple[str, str], dict[str, int]] = {}     # (hypervisor, lport) -> cause -> packets
        self.sent: dict[tuple[str, str], dict[int, object]] = {}   # (kind, switch) -> id -> what was sent

    # --- packet-ins ---------------------------------------------------------------------
    def admit(self, hv: str, in_port, now: float) -> bool:
        """Take this packet-in? Over its port's rate, or over the controller's, it is dropped
        (and counted); the data plane's meters bound what reaches this point already."""
        if not self.per_port.allow((hv, in_port), now) or not self.total.allow(now):
            self.warn("packet-in-limit", f"{hv} port {in_port}: packet-ins over the controller's limit "
                                         f"({PORT_PACKET_INS_PER_S}/s per port, {ALL_PACKET_INS_PER_S}/s in all): "
                                         "dropped", now)
            return False
        return True

    def refused_packet_ins(self) -> int:
        return sum(self.per_port.refused().values()) + self.total.refused

    # --- logging ------------------------------------------------------------------------
    def warn(self, cause: str, text: str, now: float, level=logging.WARNING) -> None:
        line = self.limiter.note(cause, text, now)
        if line:
            LOG.log(level, "%s", line)

    # --- port security counters -----------------------------------------------------------
    def record_drops(self, hv: str, stats, now: float) -> None:
        """PORT_SECURITY's flow stats of one hypervisor, as (owner, priority, packets).
        A port's first drop of a cause is reported once; more of it only in the counters
        (and a summary line per interval)."""
        for lport, causes in security.drop_counts(stats).items():
            before = self.drops.get((hv, lport), {})
            for cause, n in causes.items():
                if n > before.get(cause, 0):
                    self.warn(f"drop:{lport}:{cause}", f"port security: {lport} on {hv}: {cause} frames dropped "
                                                       f"(counted per port: GET /v1/port-security)", now)
            self.drops[(hv, lport)] = causes

    def counters(self) -> list[dict]:
        return [{"port": lport, "hypervisor": hv, "dropped": dict(sorted(c.items())), "total": sum(c.values())}
                for (hv, lport), c in sorted(self.drops.items())]

    # --- meters and groups: what each switch should have besides flows --------------------
    def changes(self, kind: str, address: str, wanted: dict) -> tuple[dict, set]:
        """`kind`s (meters, groups) to set (before the flows that use them: new ones, and
        those whose content changed) and to delete (after)."""
        have = self.sent.setdefault((kind, address), {})
        return {i: v for i, v in wanted.items() if have.get(i, ...) != v}, have.keys() - wanted.keys()

    def mark_sent(self, kind: str, address: str, add: dict, delete) -> None:
        have = self.sent.setdefault((kind, address), {})
        have.update(add)
        for i in delete:
            have.pop(i, None)

    def forget(self, address: str) -> None:
        """A (re)connected switch: set every meter and group again (what it holds by the same
        id may be older: openflow.meter_set and failover_group_set replace it)."""
        for key in [k for k in self.sent if k[1] == address]:
            del self.sent[key]

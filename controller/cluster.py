"""Several controllers on one database: who owns which hypervisor. Pure: no I/O, time comes in.

Every controller registers itself in the database (a Controller row it renews every RENEW
seconds) and computes the same rule for every hypervisor: rendezvous (highest random
weight) hashing over the live controllers, so a controller's death moves only its own
hypervisors, and a new controller takes about 1/N of them. Ownership is a lease written
in the Hypervisor row (owner, lease end, role generation) by a transaction that verifies
the row it read: two controllers can never both commit a claim. A controller acts as
owner only while its own lease runs (minus a safety margin), so one that stops renewing
(dead, or cut off from the database) stops before anyone else may start; the others claim
its hypervisors when the lease has ended. The role generation goes up with every claim and
is the OpenFlow role request's generation id: a switch refuses a master with an older one.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Iterable

RENEW = 0.25     # s: how often a controller renews its registration and its leases
LEASE = 1.2      # s: how long a lease (and a registration) holds without renewal
MARGIN = 0.25    # s: an owner stops acting this long before its lease ends
LEASE_MAX = 10.0  # s: the longest lease a slow round makes (lease_length)
ALONE_LEASE = 4.0  # s: the shortest lease of a controller no other controller could take over from
ALONE_LEASE_MAX = 60.0   # s: and its longest (rounds of 20 s were seen at 200 hypervisors on 2 busy cores)
SLOW_WINDOW = 30.0   # s: how long a slow round counts for lease_length


@dataclasses.dataclass(frozen=True)
class Lease:
    owner: str           # "" when released
    until: float         # s since the epoch
    generation: int      # the OpenFlow role generation id of the current owner


@dataclasses.dataclass(frozen=True)
class Decision:
    claim: tuple[str, ...] = ()      # take (free, expired, or ours by rule), generation + 1
    renew: tuple[str, ...] = ()      # ours and still ours by rule: extend
    release: tuple[str, ...] = ()    # ours but another live controller's by rule: give back


def weight(controller: str, hypervisor: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{controller}|{hypervisor}".encode(), digest_size=8).digest(), "big")


def rendezvous(hypervisor: str, controllers: Iterable[str]) -> str | None:
    """The controller that should own `hypervisor`: the same answer everywhere."""
    return max(controllers, key=lambda c: (weight(c, hypervisor), c), default=None)


def lease_length(recent_rounds, alone: bool = False) -> float:
    """How long a lease is written for: LEASE, or 3 times the slowest recent round (a round
    runs from its read of the leases to its write's commit) when the database or this
    controller is busy, up to LEASE_MAX. A round slower than LEASE - MARGIN would otherwise
    write leases that end before they are seen, and the owner would let go of everything it
    owns and read it all again, which makes it busier still. Under load a failover then
    waits longer (others claim only when a lease has ended); nobody owns twice. `alone`: no
    other controller is live, none could take over: at least ALONE_LEASE, up to
    ALONE_LEASE_MAX (one that joins claims its share when those leases end)."""
    longest = ALONE_LEASE_MAX if alone else LEASE_MAX
    return min(longest, max([ALONE_LEASE if alone else LEASE, *(3 * s for s in recent_rounds)]))


def live(registered: dict[str, float], now: float) -> set[str]:
    """Controllers whose registration was renewed within a lease: name -> last renewal."""
    return {name for name, renewed in registered.items() if now - renewed <= LEASE}


def decide(me: str, hypervisors: Iterable[str], registered: dict[str, float], leases: dict[str, Lease],
           now: float) -> Decision:
    """What `me` should write this round. Another live controller's unexpired lease is never
    taken, even if the rule now says `me`: it releases first (or its lease runs out)."""
    alive = live(registered, now) | {me}
    claim, renew, release = [], [], []
    for hv in sorted(hypervisors):
        lease = leases.get(hv, Lease("", 0.0, 0))
        mine = lease.owner == me and lease.until > now
        if rendezvous(hv, alive) == me:
            if mine:
                renew.append(hv)
            elif not lease.owner or lease.until <= now:
                claim.append(hv)
        elif mine:
            release.append(hv)
    return Decision(tuple(claim), tuple(renew), tuple(release))


def owned(me: str, leases: dict[str, Lease], now: float) -> set[str]:
    """The hypervisors `me` may program now: its leases with more than MARGIN left."""
    return {hv for hv, lease in leases.items() if lease.owner == me and lease.until - MARGIN > now}


def spread(leases: dict[str, Lease], now: float) -> dict[str, list[str]]:
    """owner -> its hypervisors (current leases only), for `show hypervisors` and the bench."""
    out: dict[str, list[str]] = {}
    for hv, lease in sorted(leases.items()):
        if lease.owner and lease.until > now:
            out.setdefault(lease.owner, []).append(hv)
    return out

"""This controller's place among several on one database (the rule is controller/cluster.py).

Every RENEW seconds a thread of its own (started with `start()`, not the app's: an app busy
programming hundreds of hypervisors must not let its leases lapse, which would make it let
go of them all and read them all again) calls `round()`: it reads the registrations and leases (a
consistent read of the IDL), decides what to claim, renew and release, and hands that to a
thread of its own, which writes it as one transaction: its Controller row renewed, and
each Hypervisor row it changes verified first, so a claim another controller made meanwhile
makes the transaction run again on the new rows (and the claim drop). The outcome comes
back to the app through `on_leases` (from that thread). `owned()` is what the app may
program now. With a single controller this is the same code: it owns every hypervisor
after its first round (a restarted one renews its own leases at once).
"""
from __future__ import annotations

import logging
import threading
import time

from controller import cluster
from controller.nbdb import NbClient

LOG = logging.getLogger(__name__)


def _ms(t: float) -> int:
    return int(t * 1000)


class Membership:
    def __init__(self, name: str, address: str, api: str, nb: NbClient, on_leases):
        self.name, self.address, self.api = name, address, api
        self.nb, self.on_leases = nb, on_leases
        self.leases: dict[str, cluster.Lease] = {}
        self.registered: dict[str, float] = {}
        self._job = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._nudged = threading.Event()
        self._last_round = time.monotonic()
        self._rounds_took: list[tuple[float, float]] = []     # (when, s from read to commit), recent
        threading.Thread(target=self._run, name="membership", daemon=True).start()

    def start(self, hypervisors, ready) -> None:
        """Rounds every cluster.RENEW s from now on, on a thread of their own: `hypervisors()`
        the names to decide for, `ready()` whether a round may run (intent read, database up)."""
        threading.Thread(target=self._rounds, args=(hypervisors, ready), name="membership-rounds",
                         daemon=True).start()

    def _rounds(self, hypervisors, ready):
        while True:
            started = time.monotonic()
            if started - self._last_round > 2 * cluster.RENEW:         # this thread starved: slow too
                self._rounds_took.append((time.time(), started - self._last_round))
                LOG.warning("membership: rounds %.2f s apart (every %.2f s wanted): leases now for %.1f s",
                            started - self._last_round, cluster.RENEW, self.lease_length())
            self._last_round = started
            if ready():
                try:
                    self.round(hypervisors())
                except Exception as e:        # the database away: leases run out, others take over
                    LOG.info("membership: no round (%s)", str(e).split("\n")[0][:160])
            self._nudged.wait(max(0.0, cluster.RENEW - (time.monotonic() - started)))
            self._nudged.clear()

    def nudge(self) -> None:
        """A hypervisor appeared: the next round now, not at the next tick (nobody owns it,
        so nothing is sent to it, until a round has given it an owner)."""
        self._nudged.set()

    # --- the rounds' thread (or a test's) -----------------------------------------------------
    def round(self, hypervisors, now: float | None = None) -> cluster.Decision:
        now = time.time() if now is None else now
        self.registered, leases = self.read()
        self.take(leases)
        d = cluster.decide(self.name, hypervisors, self.registered, self.leases, now)
        with self._lock:
            self._job = (d, now)
        self._wake.set()
        return d

    def take(self, leases: dict[str, cluster.Lease]) -> None:
        """Leases as a read or a write's outcome has them: the newest of each wins (the
        outcome of an earlier round's write may come after a later round's read)."""
        self.leases = cluster.newest(self.leases, leases)

    def read(self) -> tuple[dict[str, float], dict[str, cluster.Lease]]:
        def fn(t):
            regs = {r.name: r.renewed / 1000 for r in t["Controller"].rows.values()}
            leases = {r.name: cluster.Lease(r.controller, r.lease_until / 1000, r.role_generation)
                      for r in t["Hypervisor"].rows.values()}
            return regs, leases
        return self.nb.look(fn)

    def owned(self, now: float | None = None) -> set[str]:
        now = time.time() if now is None else now
        return cluster.owned(self.name, self.leases, now, alone=not self.live(now) - {self.name})

    def owner(self, hv: str, now: float | None = None) -> str | None:
        lease = self.leases.get(hv)
        now = time.time() if now is None else now
        return lease.owner if lease and lease.owner and lease.until > now else None

    def generation(self, hv: str) -> int:
        lease = self.leases.get(hv)
        return lease.generation if lease else 0

    def lease_length(self) -> float:
        alone = not self.live() - {self.name}
        return cluster.lease_length((s for _, s in self._rounds_took), alone)

    def live(self, now: float | None = None) -> set[str]:
        return cluster.live(self.registered, time.time() if now is None else now)

    # --- its own thread -------------------------------------------------------------------------
    def _run(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                job, self._job = self._job, None
            if job is None or not self.nb.connected.is_set():
                continue
            try:
                leases = self.nb.transact(lambda txn, t: self._write(txn, t, *job))
            except Exception as e:        # a conflict, the database away: the next round tries again
                LOG.info("membership: round not written (%s)", str(e).split("\n")[0][:160])
                continue
            now = time.time()
            took = now - job[1]
            self._rounds_took = [(t, s) for t, s in self._rounds_took if now - t < cluster.SLOW_WINDOW]
            self._rounds_took.append((now, took))
            if took > cluster.LEASE - cluster.MARGIN - cluster.RENEW:
                LOG.warning("membership: a round took %.2f s from its read to its write: leases now for %.1f s",
                            took, self.lease_length())
            self.take(leases)             # here, not through the app's queue: an app that is behind
            self.on_leases(leases)        # would otherwise put back leases older than the last read

    def _write(self, txn, tables, d: cluster.Decision, now: float) -> dict[str, cluster.Lease]:
        me = next((r for r in tables["Controller"].rows.values() if r.name == self.name), None)
        if me is None:
            me = txn.insert(tables["Controller"])
            me.name = self.name
        me.address, me.api, me.renewed = self.address, self.api, _ms(now)
        rows = {r.name: r for r in tables["Hypervisor"].rows.values()}
        until = _ms(now + self.lease_length())
        for hv in d.claim:
            row = rows.get(hv)
            if row is None:
                row = rows[hv] = txn.insert(tables["Hypervisor"])
                row.name, generation = hv, 0
            else:
                row.verify("controller")
                row.verify("lease_until")
                if row.controller not in ("", self.name) and row.lease_until > _ms(now):
                    continue                  # someone claimed it since we read: theirs
                generation = row.role_generation
            row.controller, row.lease_until, row.role_generation = self.name, until, generation + 1
            row.claimed_at = _ms(now)
        for hv in d.renew + d.release:
            row = rows.get(hv)
            if row is None:
                continue
            row.verify("controller")
            if row.controller != self.name:
                continue
            if hv in d.renew:
                row.lease_until = until
            else:
                row.controller = ""
        return {name: cluster.Lease(r.controller, r.lease_until / 1000, r.role_generation)
                for name, r in rows.items()}

"""Convergence, pure: the engine, the reconciler and the dispatch, put together the way
the app uses them (and the unit tests, with fake switches: tests/unit/test_reconcile.py).

The app says what happened (the model changed; a hypervisor's flows were read; a bundle
was confirmed or refused; a hypervisor is gone) and gets back what to do: bundles to send
(dispatch.Send) and tunnel ports to change (reconcile.TunnelUpdate). Nothing here sends.
"""
from __future__ import annotations

import dataclasses

from controller.dispatch import Dispatch, Send
from controller.engine import Engine
from controller.model import Network
from controller.reconcile import Plan, Reconciler, TunnelUpdate


@dataclasses.dataclass
class Actions:
    sends: list[Send]
    tunnels: list[TunnelUpdate]
    plans: list[Plan]            # the plans started (to log)


class Convergence:
    def __init__(self, net: Network):
        self.net = net
        self.engine = Engine(net)            # wanted flows, by difference
        self.rec = Reconciler()              # what each br-int holds and still needs
        self.dispatch = Dispatch()           # plans in flight, confirmations, realized
        self.reads: dict[str, set[int]] = {}     # hypervisor -> our cookies read, until taken in
        self.owns = lambda hv: True          # several controllers: tunnel ports only where we own

    # --- what happened ---------------------------------------------------------------------
    def read(self, hv: str, cookies: set[int]) -> None:
        """`hv`'s br-int holds `cookies` (a flow-stats read): converged by difference next."""
        self.reads[hv] = set(cookies)

    def forget(self, hv: str) -> list[Send]:
        """`hv` is gone (disconnected, down): nothing is known of it or waited for."""
        self.rec.forget(hv)
        self.reads.pop(hv, None)
        return self.dispatch.fail(hv)

    def reread(self, hv: str) -> list[Send]:
        """`hv` is to be read again (reconnected, back up, or it refused a bundle): its flows
        are recomputed in full (the fallback) and diffed against what the read says."""
        self.engine.reset(hv)
        return self.forget(hv)

    def converge(self, tunnel_check=()) -> Actions:
        """The model changed (or a read came in): recompute what the changes touch, fold it
        into what is pending, start a plan if none is in flight; tunnel ports for the
        hypervisors whose wanted set may have changed (and those in `tunnel_check`)."""
        changes = self.engine.update()
        self.rec.feed(changes)
        for hv in changes.gone:
            self.rec.forget(hv)
        for hv, cookies in list(self.reads.items()):
            if hv in self.engine.wanted:
                self.rec.read(hv, cookies, self.engine.flows(hv))
                del self.reads[hv]
        d = self.dispatch
        if changes.flows or changes.full or changes.gone or changes.tunnels:
            d.change()
        if self.rec.pending():
            d.wait_for(("pending",))
        asked = set(self.rec.requested)
        tunnels = self.rec.tunnels(self.net, {n for n in changes.tunnels | set(tunnel_check) if self.owns(n)})
        for update in tunnels:
            d.wait_for(("tunnels", update.hypervisor))
        for name in asked - set(self.rec.requested):     # the database shows them now
            d.done(("tunnels", name), carry=True)
        sends, plans = self.pump()
        return Actions(sends, tunnels, plans)

    def confirmed(self, hv: str, bundle_id: int) -> Actions:
        sends = self.dispatch.confirm(hv, bundle_id)
        more, plans = self.pump()
        return Actions(sends + more, [], plans)

    def tunnels_failed(self, hv: str) -> None:
        """A tunnel-port transaction failed: asked again on the next change, waited for no more."""
        self.rec.tunnels_failed(hv)
        self.dispatch.done(("tunnels", hv))

    def pump(self) -> tuple[list[Send], list[Plan]]:
        """Start the next plan if none is in flight: its first stage's bundles."""
        sends, plans = [], []
        while self.dispatch.idle:
            plan = self.rec.plan()
            if plan is None:
                self.dispatch.done(("pending",))
                self.dispatch.settle()
                break
            plans.append(plan)
            sends += self.dispatch.start(plan)
            if sends:
                break
        return sends, plans

    def installed_count(self, hv: str) -> int:
        """How many of the flows hv should hold it holds (as far as the reconciler knows)."""
        sw = self.rec.switches.get(hv)
        if sw is None:
            return 0
        return sum(len(sw.installed.keys() & scope.keys()) for scope in self.engine.wanted.get(hv, {}).values())

    @property
    def realized(self) -> dict:
        return {"generation": self.dispatch.generation, "realized": self.dispatch.realized}

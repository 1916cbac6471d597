"""Several controllers on one database: which hypervisors this one owns (controller/cluster.py,
controller/membership.py) and the OpenFlow role it holds on each.

A mixin of controller.app.PacketwalkController (os-ken finds the handlers on the app's class).
"""
from __future__ import annotations

import logging

from os_ken.controller.handler import set_ev_cls
from os_ken.lib import hub

from controller import cluster, openflow
from controller.events import EventLeases, EventRound
from controller.model import Hypervisor

LOG = logging.getLogger("packetwalk.controller")


class Ownership:
    """Leases renewed every cluster.RENEW s (membership.py, on its own thread); what is owned
    looked at as often; gained hypervisors read and converged by difference."""

    def _start_rounds(self):
        self.members.start(lambda: list(self.net.hypervisors),      # list(dict): one step under the GIL
                           lambda: self.intent_read and self.nb.connected.is_set())

    def _round_ticker(self):
        while True:
            hub.sleep(cluster.RENEW)
            self.send_event(self.name, EventRound())

    @set_ev_cls(EventRound)
    def _round(self, ev):
        self._ownership()                    # leases run out with time, written or not

    @set_ev_cls(EventLeases)
    def _leases(self, ev):
        self._ownership()                    # members.leases is already the newest (membership.py)

    def _ownership(self):
        """Take up what this controller now owns (master role, then its flows read and
        converged by difference: nothing is sent if nothing changed) and let go of what it
        no longer owns (sending stops before its lease ends; the next owner's master role
        makes this one a slave)."""
        now = self.members.owned()
        gained, lost = now - self.owned, self.owned - now
        if not gained and not lost:
            return
        self.owned = now
        for name in sorted(lost):
            LOG.warning("hypervisor %s: no longer ours (owner now: %s)", name, self.members.owner(name) or "none")
            self._send(self.conv.forget(name))
        for name in sorted(gained):
            hv = self.net.hypervisors.get(name)
            LOG.info("hypervisor %s: ours now (role generation %d)", name, self.members.generation(name))
            self._tunnel_check.add(name)
            if hv is not None:
                self._role(hv)
                if self._dp(hv) is not None:
                    self._reread(hv, "owned now")
        self._converge()

    def _role(self, hv: Hypervisor) -> None:
        """Ask hv's switch for the role this controller has: master if it owns hv (with the
        lease's generation id: a switch refuses an older master), else slave (no packet-ins,
        no writes)."""
        dp = self._dp(hv)
        if dp is None:
            return
        want = ("master" if hv.name in self.owned else "slave", self.members.generation(hv.name))
        if self._roles.get(dp.id) != want:
            self._roles[dp.id] = want
            self.links[dp.id].send([openflow.role_request(dp, want[0] == "master", want[1])])

"""What reaches the controller from the data plane: packet-ins and what they start.

ARP (controller/arp.py decides), ICMP errors from the distributed router (TTL, no route,
fragmentation needed: controller/icmp.py builds them), next-hop resolution (a routed packet
whose next hop has no binding is held while the router ARPs), frames held for a VM port in
transit (controller/mobility.py), and port security's drop counters (read every other tick,
controller/guard.py keeps them). Every packet-in passes the guard's rate limits first.

The app (controller/app.py) owns the events and the model; it hands each packet-in, port
status and flow-stats reply for the counters here. Everything here sends through the app's
per-hypervisor send queues (`app._out`), never blocking its thread.

Make before break, for frames held for a moved port: they go on once the plan that
programmed the port's new hypervisor has its stage 0 confirmed (dispatch.made; stage 1, the
old hypervisor's flows forwarding to the new one, has been sent by then on the same
connection as the frames) and the new port's link is up.
"""
from __future__ import annotations

import ipaddress
import logging
import time

from os_ken.ofproto import ofproto_v1_3

from controller import arp as arp_logic
from controller import icmp, openflow
from controller.guard import Guard
from controller.l3 import LOGICAL_MTU
from controller.mobility import HELD_PER_PORT, HOLD
from controller.tables import REG_FROM_TUNNEL, REG_NEXT_HOP, Table

LOG = logging.getLogger("packetwalk.controller")
LINK_GRACE = 0.05      # s: a moved port's new link is taken as up this long after it landed, if OVS has not said
LANDING_TIMEOUT = 1.0  # s: frames held for a landed port go on anyway if its new place has not confirmed


class Punts:
    def __init__(self, app):
        self.app = app
        self.guard = Guard()         # packet-in limits, rate-limited logging, port-security counters, meters
        self.pending = {}            # (VNI, next hop) -> packets held while the router ARPs
        self.held = {}               # MAC of a port in transit -> [(since, datapath, frame)] until it lands
        self.landing = {}            # (logical port, when it landed) -> the plan carrying its new place's flows
        self.link_up = {}            # (dpid, ofport) -> its link is up (OpenFlow port status)
        self._counter_xids = set()   # flow-stats requests that read PORT_SECURITY's drop counters

    @property
    def net(self):
        return self.app.net

    # --- packet-ins ------------------------------------------------------------------------
    def packet_in(self, hv, msg) -> None:
        dp = msg.datapath
        if msg.table_id in (Table.L2_LOOKUP, Table.IN_TRANSIT):
            self._hold(dp, msg)
            return
        in_port = msg.match.get("in_port")
        port = next((a for a in hv.attachments.values() if a.ofport == in_port), None) if hv else None
        if port is None:
            self.guard.warn("packet-in-unknown-port", f"packet-in from {dp.address[0]} port {in_port}: "
                                                      "not a known VM port, ignored", time.time(), logging.INFO)
            return
        if not self.guard.admit(hv.name, in_port, time.time()):
            return
        try:
            if msg.reason == ofproto_v1_3.OFPR_INVALID_TTL:
                self.icmp_error(dp, port, msg.data, icmp.TIME_EXCEEDED)
            elif msg.table_id == Table.L3_ROUTING:
                self.icmp_error(dp, port, msg.data, icmp.NET_UNREACHABLE)
            elif msg.table_id == Table.L3_MTU:
                self._too_big(dp, port, msg)
            elif msg.table_id == Table.L3_ARP_RESOLVE:
                self._resolve(dp, port, msg)
            else:
                self._arp(dp, hv, port, msg)
        except arp_logic.MalformedPacket as e:
            self.guard.warn("malformed", f"packet-in from {hv.name} port {port.port}: {e}: ignored", time.time())

    def _arp(self, dp, hv, port, msg):
        eth, req = arp_logic.parse_arp(msg.data)
        decision = arp_logic.decide(self.net, port, eth, req, time.time())
        LOG.debug("%s: ARP %s -> %s: %s", hv.name, req.src_ip, req.dst_ip, decision.why)
        if decision.refused:
            self.guard.warn(f"arp-refused:{port.lport}", decision.why, time.time())
        if decision.reply:
            self.app._out(dp, openflow.packet_out(dp, port.ofport, decision.reply, [openflow.Output("in_port")]))
        elif decision.forward:
            table = Table.FLOOD if decision.forward == "flood" else Table.L2_LOOKUP
            self.app._out(dp, openflow.packet_out(dp, port.ofport, msg.data, [
                openflow.SetField("tunnel_id", port.vni), openflow.Resubmit(table)]))
        if decision.learned:
            self.app._converge()

    def icmp_error(self, dp, port, data, kind, mtu=0):
        gateway = self.net.lif_ip(port.vni)
        if gateway is None:
            return
        frame = icmp.icmp_error(data, kind, gateway, self.net.intent.vmac, port.mac, mtu)
        self.guard.warn(f"icmp:{kind}", f"{port.lport}: ICMP {kind[0]}/{kind[1]} to {port.lport} from router "
                                        f"{gateway}", time.time(), logging.INFO)
        self.app._out(dp, openflow.packet_out(dp, port.ofport, frame, [openflow.Output("in_port")]))

    def _too_big(self, dp, port, msg):
        """A routed packet larger than the logical MTU: ICMP fragmentation needed if it says
        don't fragment; else its fragments go on where it was going (ARP resolve)."""
        if icmp.dont_fragment(msg.data):
            self.icmp_error(dp, port, msg.data, icmp.FRAG_NEEDED, mtu=LOGICAL_MTU)
            return
        vni, hop = msg.match.get("tunnel_id"), msg.match.get(REG_NEXT_HOP)
        for frame in icmp.fragment(msg.data, LOGICAL_MTU):
            self.app._out(dp, openflow.packet_out(dp, port.ofport, frame, [
                openflow.SetField("tunnel_id", vni), openflow.SetField(REG_NEXT_HOP, hop),
                openflow.Resubmit(Table.L3_ARP_RESOLVE)]))

    # --- next-hop resolution -----------------------------------------------------------------
    def _resolve(self, dp, port, msg):
        """A routed packet whose next hop has no binding: hold it, ARP from the router's LIF
        on that switch (on a hypervisor this controller owns that hosts it), and route it
        once the answer is learned; host unreachable if nothing answers in time."""
        vni, hop = msg.match.get("tunnel_id"), msg.match.get(REG_NEXT_HOP)
        if vni is None or hop is None:
            return
        key = (vni, str(ipaddress.IPv4Address(hop)))
        held = self.pending.setdefault(key, [])
        held.append((dp, port, msg.data))
        if len(held) > 1:
            return
        host = next((h for h in self.net.vtep_table(vni) if h.name in self.app.owned), None)
        sender = self.app._dp(host) if host else None
        lif = self.net.lif_ip(vni)
        if sender and lif:
            self.guard.warn("router-who-has", f"router: who has {key[1]} on VNI {vni}? (asked from {host.name})",
                            time.time(), logging.INFO)
            request = arp_logic.arp_request(self.net.intent.vmac, lif, key[1])
            self.app._out(sender, openflow.packet_out(sender, sender.ofproto.OFPP_CONTROLLER, request, [
                openflow.SetField("tunnel_id", vni), openflow.SetField(REG_FROM_TUNNEL, 0),
                openflow.Resubmit(Table.FLOOD)]))
        self.app.resolve_later(key)

    def resolve_timeout(self, key):
        held = self.pending.pop(key, [])
        if held:
            self.guard.warn("router-no-answer", f"router: {key[1]} on VNI {key[0]} did not answer",
                            time.time(), logging.INFO)
        for dp, port, data in held:
            self.icmp_error(dp, port, data, icmp.HOST_UNREACHABLE)

    def release_resolved(self):
        for key in [k for k in self.pending if k[1] in self.net.bindings.get(k[0], {})]:
            for dp, port, data in self.pending.pop(key):
                self.app._out(dp, openflow.packet_out(dp, port.ofport, data, [
                    openflow.SetField("tunnel_id", key[0]),
                    openflow.SetField(REG_NEXT_HOP, int(ipaddress.IPv4Address(key[1]))),
                    openflow.Resubmit(Table.L3_ARP_RESOLVE)]))

    # --- frames for a port on the move ---------------------------------------------------------
    def _hold(self, dp, msg):
        """A frame for a port in transit, at its old hypervisor: held until the port lands.
        One its failover group sent here while the port is attached right there (OVS takes a
        moment to call a new port's link live) goes straight out of that port."""
        mac = ":".join(f"{b:02x}" for b in msg.data[:6])
        hv = self.app._hv_of(dp.id)
        here = next((a for a in hv.attachments.values() if a.mac == mac), None) if hv else None
        if msg.table_id == Table.IN_TRANSIT and here is not None:
            self.app._out(dp, openflow.packet_out(dp, dp.ofproto.OFPP_CONTROLLER, msg.data,
                                                  [openflow.Output(here.ofport)]))
            return
        held = self.held.setdefault(mac, [])
        if len(held) < HELD_PER_PORT:      # (its port may have gone a moment before the controller heard)
            held.append((time.time(), dp, msg.data))
        self.release_moved()               # it has landed already: on at once

    def port_status(self, msg):
        """A port's link came up or went down (a moved VM's new port is ready when it is up)."""
        dp, desc = msg.datapath, msg.desc
        up = msg.reason != dp.ofproto.OFPPR_DELETE and not desc.state & dp.ofproto.OFPPS_LINK_DOWN
        self.link_up[(dp.id, desc.port_no)] = up
        if up and self.held:
            self.release_moved()

    def plans_started(self, plans):
        """A plan whose stage 0 programs a moved port's new hypervisor: its landing."""
        for plan in plans:
            for m in self.net.moves:
                if m.new in plan.first and (m.lport, m.since) not in self.landing:
                    self.landing[(m.lport, m.since)] = plan.seq

    def _made(self, m) -> bool:
        """Its new place's flows confirmed (stage 0 of the plan that carried them), or that
        confirmation overdue."""
        seq = self.landing.get((m.lport, m.since))
        if seq is not None and self.app.conv.dispatch.made >= seq:
            return True
        return time.time() - m.since > LANDING_TIMEOUT

    def _ready(self, m) -> bool:
        """A landed port's new place can take its frames: flows confirmed, link up."""
        hv = self.net.hypervisors.get(m.new)
        a = next((a for a in hv.attachments.values() if a.lport == m.lport), None) if hv else None
        settled = time.time() - m.since     # a port OVS calls live takes a moment more to deliver
        dpid = self.app.dpid_of.get(m.new)
        return a is not None and self._made(m) and settled > LINK_GRACE and (
            self.link_up.get((dpid, a.ofport), False) or settled > 2 * LINK_GRACE)

    def release_moved(self, anyway: bool = False) -> bool:
        """Frames held for ports that have landed: on from their old hypervisor, whose flows
        now forward to the new place (sent after those flows, on the same connection). True
        if some are still held for a landed port (their link not up yet)."""
        waiting = False
        for m in self.net.moves:
            if m.new and m.mac in self.held:
                if anyway or self._ready(m):
                    for _, dp, data in self.held.pop(m.mac):
                        self.app._out(dp, openflow.packet_out(dp, dp.ofproto.OFPP_CONTROLLER, data, [
                            openflow.SetField("tunnel_id", m.vni), openflow.SetField(REG_FROM_TUNNEL, 0),
                            openflow.Resubmit(Table.L2_LOOKUP)]))
                else:
                    waiting = True
        return waiting

    def tick(self, now: float) -> None:
        """Once a second: what never landed within the hold is dropped; landings forgotten."""
        moving = {(m.lport, m.since) for m in self.net.moves}
        self.landing = {k: s for k, s in self.landing.items() if k in moving}
        if self.held:
            self.release_moved(anyway=True)    # a link that never said it is up: try anyway
        for mac, held in list(self.held.items()):
            self.held[mac] = [h for h in held if now - h[0] <= HOLD]
            if not self.held[mac]:
                del self.held[mac]

    # --- port security's counters -----------------------------------------------------------
    def read_drop_counters(self):
        """Ask every owned hypervisor for PORT_SECURITY's flow stats: the drop flows' packet counts."""
        for hv in self.net.hypervisors.values():
            dp = self.app._dp(hv) if hv.name in self.app.owned else None
            if dp is None:
                continue
            req = openflow.table_stats_request(dp, Table.PORT_SECURITY)
            dp.set_xid(req)
            self._counter_xids.add(req.xid)
            self.app._out(dp, req)

    def is_counters(self, msg) -> bool:
        return msg.xid in self._counter_xids

    def drop_counters(self, hv, msg):
        if not msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE:
            self._counter_xids.discard(msg.xid)
        if hv is None:
            return
        flows = self.app.conv.engine.flows(hv.name)
        self.guard.record_drops(hv.name, [(flows[s.cookie].owner, s.priority, s.packet_count)
                                          for s in msg.body if s.cookie in flows], time.time())
        self.app._publish()

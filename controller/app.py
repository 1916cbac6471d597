"""The NSX-controller app: a thin os-ken shim over controller/model.py and the flow modules.

Intent lives in the controller's own database (controller/nbdb.py: an embedded
ovsdb-server, or a Raft cluster given with --nb); the app follows it through an IDL, so
any writer's change (the API, `packetwalk apply`, ovsdb-client, another controller)
reaches the data plane. Hypervisors connect over OpenFlow 1.3 (br-int); the app then
opens OVSDB to the address they connected from, learns who they are (system-id, VTEP IP)
and which logical ports their interfaces are (external_ids:iface-id), makes the tunnel
ports it wants, and keeps every hypervisor's flows at the wanted state by difference (its
flows are known by cookie; nothing is ever flushed). What it learns (bindings from ARP,
hypervisors, port status) it writes back to the database, off its own thread. The
northbound REST API (controller/api.py) runs in its own thread and reaches the model only
through EventCall: the app's thread runs the request and hands back the answer.
"""
from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import logging
import os
import threading
import time

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3
from ovsdbapp import exceptions as ovsdb_exceptions

from controller import api
from controller import arp as arp_logic
from controller import nbdb
from controller import icmp
from controller import openflow
from controller.flows import Flow, diff
from controller.guard import Guard
from controller import mobility, security
from controller.mobility import HELD_PER_PORT, HOLD, locations
from controller.l3 import LOGICAL_MTU
from controller.northbound import Conflict, NoAnswer
from controller.pipeline import hypervisor_flows
from controller.model import IFACE_ID, Hypervisor, Network
from controller.ovsdb import REMOTE_KEY, HypervisorDB, use_ssl
from controller.tables import REG_FROM_TUNNEL, REG_NEXT_HOP, Table

LOG = logging.getLogger("packetwalk.controller")
CONF = cfg.CONF
CONF.register_cli_opts([
    cfg.StrOpt("db-dir", default="/var/lib/packetwalk",
               help="the embedded database's directory (used when --nb is not given)"),
    cfg.StrOpt("nb", default=None,
               help="the controller's database: its server(s), e.g. tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,"
                    "tcp:10.0.0.3:6641 (a Raft cluster); default: an embedded server on --db-dir"),
    cfg.StrOpt("state-file", default=None, help="write the controller's tables here as JSON on every change"),
    cfg.StrOpt("api-listen-host", default="127.0.0.1", help="northbound REST API address (loopback by default)"),
    cfg.IntOpt("api-port", default=8181, help="northbound REST API port (0: no API)"),
    cfg.StrOpt("api-token-file", default=None,
               help="a file holding the API's bearer token; required to listen anywhere but loopback"),
])


class EventNbChanged(event.EventBase):
    pass


class EventTick(event.EventBase):
    pass


class EventOvsdbChanged(event.EventBase):
    def __init__(self, address):
        super().__init__()
        self.address = address


class EventSyncTimeout(event.EventBase):
    pass


class EventCall(event.EventBase):
    """Run `fn()` in the app's thread (the model's owner) and put the outcome in `future`."""
    def __init__(self, fn, future: concurrent.futures.Future):
        super().__init__()
        self.fn, self.future = fn, future


class EventReleaseHeld(event.EventBase):
    pass


class EventResolveTimeout(event.EventBase):
    def __init__(self, key):
        super().__init__()
        self.key = key


SYNC_TIMEOUT = 15.0   # s: how long a (re)started controller waits for hypervisors it has not seen
RESOLVE_TIMEOUT = 1.0  # s: how long the router waits for an ARP answer before host unreachable
API_TIMEOUT = 5.0      # s: how long a northbound API request waits for the app's thread
LINK_GRACE = 0.05      # s: a moved port's new link is taken as up this long after it landed, if OVS has not said


class PacketwalkController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.net = Network()
        self.server = None
        if not CONF.nb:
            self.server = nbdb.EmbeddedServer(CONF.db_dir)
            LOG.info("database: %s", self.server.prepare())
            self.server.start()
        self.nb = nbdb.NbClient(CONF.nb or self.server.remote, self._nb_changed)
        self.reporter = nbdb.Reporter(self.nb)
        self.generation = 0
        self.intent_read = False     # nothing is converged before intent and learned state are read
        self._nb_dirty = False
        self._nb_up = True
        self._reported = None
        self._unbound = {}           # (hypervisor, interface) -> iface-id naming no logical port: logged once
        self.ovsdb_scheme = "tcp"
        if CONF.ctl_privkey and CONF.ctl_cert and CONF.ca_certs:     # OpenFlow over SSL: OVSDB too
            use_ssl(CONF.ctl_privkey, CONF.ctl_cert, CONF.ca_certs)
            self.ovsdb_scheme = "ssl"
        self._api_token = api.read_token(CONF.api_token_file) if CONF.api_token_file else None
        self._api_socket = api.listen(CONF.api_listen_host, CONF.api_port, self._api_token) \
            if CONF.api_port else None
        self.datapaths = {}          # management address -> datapath
        self.dbs = {}                # management address -> HypervisorDB
        self.installed = {}          # management address -> set of our cookies on br-int
        self.flows = {}              # management address -> the flows those cookies are (as last sent)
        self.flow_mods = {}          # hypervisor name -> flow-mods sent
        self._dirty = set()
        self._flow_stats_buf = {}
        self.pending = {}            # (VNI, next hop) -> packets held while the router ARPs
        self.held = {}               # MAC of a port in transit -> [(since, datapath, frame)] until it lands
        self.landing = {}            # barrier xid -> when sent: a moved port's new place, not yet confirmed
        self.link_up = {}            # (hypervisor address, ofport) -> its link is up (OpenFlow port status)
        self.guard = Guard()         # packet-in limits, rate-limited logging, port-security counters, meters
        self._counter_xids = set()   # flow-stats requests that read PORT_SECURITY's drop counters
        self._ticks = 0
        self.synced = False          # until every hypervisor the data plane names has been read
        hub.spawn_after(SYNC_TIMEOUT, lambda: self.send_event(self.name, EventSyncTimeout()))
        self._lock = threading.Lock()

    def start(self):
        thread = super().start()
        hub.spawn(self._connect_nb)
        hub.spawn(self._ticker)
        if self._api_socket:
            api.serve(api.create_api(self, self._api_token), self._api_socket)
            LOG.info("northbound API on http://%s:%d/v1 (OpenAPI: /openapi.json)", CONF.api_listen_host, CONF.api_port)
        return thread

    # --- northbound API (its handlers run in uvicorn's threads) ---------------------------
    def call(self, fn):
        """Run fn(self) in the app's thread; its result, or its exception, here."""
        future = concurrent.futures.Future()
        self.send_event(self.name, EventCall(lambda: fn(self), future))
        try:
            return future.result(API_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise NoAnswer(f"the controller did not answer within {API_TIMEOUT:.0f} s") from None

    @set_ev_cls(EventCall)
    def _call(self, ev):
        if not ev.future.set_running_or_notify_cancel():
            return
        try:
            ev.future.set_result(ev.fn())
        except Exception as e:       # the API's refusals, and any bug: the caller reports it
            ev.future.set_exception(e)

    def installed_flows(self, hv: Hypervisor) -> list[Flow]:
        return list(self.flows.get(hv.address, {}).values())

    def stop(self):
        if self.server:
            self.server.stop()
        super().stop()

    # --- the controller's database ---------------------------------------------------------
    def _connect_nb(self):
        self.nb.connect()
        self.nb.ensure_global()
        LOG.info("database: connected to %s", self.nb.remote)
        self._nb_changed()

    def _nb_changed(self, table=None):
        """Called from the IDL's thread: coalesce into one event for the app's thread."""
        if table in nbdb.LEARNED_TABLES and self.intent_read:
            return                   # our own reports (a second controller's are issue 13's)
        with self._lock:
            if self._nb_dirty:
                return
            self._nb_dirty = True
        self.send_event(self.name, EventNbChanged())

    @set_ev_cls(EventNbChanged)
    def _on_nb(self, ev):
        with self._lock:
            self._nb_dirty = False
        self.sync_intent()

    def sync_intent(self) -> None:
        """Make the model follow the database's intent (and, on the first read, the learned
        bindings it holds), then converge. Cheap when nothing changed."""
        if not self.nb.connected.is_set():
            return
        snap = self.nb.read()
        intent = nbdb.checked_intent(snap["intent"])
        first = not self.intent_read
        self.generation = snap["generation"]
        if intent == self.net.intent and not first:
            return
        LOG.info("intent (generation %d): %d switches, %d ports, %d routers, %d static bindings",
                 self.generation, len(intent.switches), len(intent.ports), len(intent.routers),
                 len(intent.static_bindings))
        self.net.set_intent(intent)
        if first:
            self.net.restore_learned(snap["learned_bindings"])
            LOG.info("database: %d learned bindings restored", len(self.net.learned))
            self.intent_read = True
        self._converge()

    def write_intent(self, edit, exact: bool = False):
        """An API write (in the API's thread): one transaction, then the model follows."""
        if not self.nb.connected.is_set():
            raise NoAnswer(f"the controller's database {self.nb.remote} is unreachable")
        try:
            result = self.nb.change_intent(edit, exact)
        except ovsdb_exceptions.TimeoutException:
            raise NoAnswer(f"the controller's database {self.nb.remote} did not confirm the write in time "
                           "(a cluster electing its leader?): it may not have been made; try again") from None
        except RuntimeError as e:
            if "constraint violation" in str(e) or "referential" in str(e):
                raise Conflict(f"another writer got there first: {str(e).split(': ', 1)[-1]}") from None
            raise NoAnswer(f"the controller's database: {e}") from None
        self.call(lambda c: c.sync_intent())
        return result

    def forget_learned(self, vni: int, ip: str) -> bool:
        if not self.net.forget_learned(vni, ip):
            return False
        self._converge()
        return True

    def _ticker(self):
        while True:
            hub.sleep(1.0)
            self.send_event(self.name, EventTick())

    @set_ev_cls(EventTick)
    def _tick(self, ev):
        self._watch_nb()
        if self.landing and time.time() - min(self.landing.values()) > 1.0:
            LOG.warning("a moved port's new place did not confirm its flows within 1 s: converging the rest")
            self.landing.clear()
            self._converge()
        if self.held and not self.landing:
            self._release_moved(anyway=True)     # a link that never said it is up: try anyway
        expired = self.net.moves.expire(time.time())
        for mac, held in list(self.held.items()):     # never landed within the hold: dropped
            self.held[mac] = [h for h in held if time.time() - h[0] <= HOLD]
            if not self.held[mac]:
                del self.held[mac]
        if self.net.expire_learned(time.time()) or expired:
            self._converge()
        self._ticks += 1
        if self._ticks % 2 == 0:
            self._read_drop_counters()

    def _read_drop_counters(self):
        """Ask every hypervisor for PORT_SECURITY's flow stats: the drop flows' packet counts."""
        for dp in self.datapaths.values():
            req = openflow.table_stats_request(dp, Table.PORT_SECURITY)
            dp.set_xid(req)
            self._counter_xids.add(req.xid)
            dp.send_msg(req)

    def _watch_nb(self):
        """Say once that the database went away (the data plane keeps what it has, writes
        answer 504) and once that it is back (the IDL re-reads it; the model follows)."""
        up = self.nb.idl.is_connected()
        if self.nb.connected.is_set() and up != self._nb_up:
            if up:
                LOG.warning("database %s: reachable again", self.nb.remote)
                self._nb_changed()
            else:
                LOG.warning("database %s: lost; forwarding goes on as it is; retrying until it answers",
                            self.nb.remote)
            self._nb_up = up

    def _report(self):
        """Hand the database what this controller knows now (written off this thread)."""
        now = int(time.time() * 1000)
        view = {
            "Learned_Binding": {(self.net.switches[b.vni].name, b.ip): {
                "switch": self.net.switches[b.vni].name, "ip": b.ip, "mac": b.mac, "port": b.port,
                "learned_at": int(b.at * 1000)} for b in self.net.learned.values()},
            "Hypervisor": {h.name: {"name": h.name, "vtep_ip": h.vtep_ip or "", "address": h.address,
                                    "dpid": "" if h.dpid is None else f"{h.dpid:016x}", "openflow": h.of_connected,
                                    "ovsdb": h.ovsdb_connected} for h in self.net.hypervisors.values()},
            "Port_Status": {a.lport: {"port": a.lport, "up": True, "hypervisor": h.name, "interface": a.port}
                            for h in self.net.hypervisors.values() for a in h.attachments.values()},
        }
        if view != self._reported:
            self._reported = view
            stamped = {**view, "Hypervisor": {k: {**v, "last_seen": now} for k, v in view["Hypervisor"].items()}}
            self.reporter.report(stamped)

    # --- OpenFlow -------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, ev):
        dp = ev.msg.datapath
        address = dp.address[0]
        LOG.info("OpenFlow: datapath %016x connected from %s", dp.id, address)
        self.datapaths[address] = dp
        self.installed.pop(address, None)
        self.flows.pop(address, None)
        self.guard.forget(address)
        self._flow_stats_buf.pop(address, None)       # a half-read reply of a dropped connection
        hv = self._hv_at(address)
        if hv:
            hv.dpid = dp.id
        dp.send_msg(openflow.packet_ins_wanted(dp))
        dp.send_msg(openflow.our_flows_request(dp))
        if address not in self.dbs:
            self.dbs[address] = HypervisorDB(address, lambda a=address: self._ovsdb_changed(a),
                                             scheme=self.ovsdb_scheme)
            hub.spawn(self._connect_ovsdb, address)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev):
        address = ev.msg.datapath.address[0]
        if ev.msg.xid in self._counter_xids:
            self._drop_counters(address, ev.msg)
            return
        buf = self._flow_stats_buf.setdefault(address, set())
        buf.update(s.cookie for s in ev.msg.body)
        if not ev.msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE:
            self.installed[address] = self._flow_stats_buf.pop(address)
            LOG.info("OpenFlow: %s holds %d of our flows", address, len(self.installed[address]))
            self._converge()

    def _drop_counters(self, address, msg):
        if not msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE:
            self._counter_xids.discard(msg.xid)
        hv, flows = self._hv_at(address), self.flows.get(address, {})
        if hv:
            self.guard.record_drops(hv.name, [(flows[s.cookie].owner, s.priority, s.packet_count)
                                              for s in msg.body if s.cookie in flows], time.time())
            self._write_state()

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier(self, ev):
        """A moved port's new place confirmed its flows: now the rest of the network."""
        if self.landing.pop(ev.msg.xid, None) is not None and not self.landing:
            self._converge()

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        """A meter sent again to a switch that has it answers METER_EXISTS: expected. Others
        are logged, one line per kind per interval."""
        msg = ev.msg
        if (msg.type, msg.code) in ((ofproto_v1_3.OFPET_METER_MOD_FAILED, ofproto_v1_3.OFPMMFC_METER_EXISTS),
                                    (ofproto_v1_3.OFPET_GROUP_MOD_FAILED, ofproto_v1_3.OFPGMFC_GROUP_EXISTS)):
            return
        self.guard.warn(f"error:{msg.type}:{msg.code}", f"OpenFlow error from {msg.datapath.address[0]}: "
                                                        f"type {msg.type} code {msg.code}", time.time())

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _disconnected(self, ev):
        dp = ev.datapath
        if dp.address is None or self.datapaths.get(dp.address[0]) is not dp:
            return
        address = dp.address[0]
        LOG.warning("OpenFlow: %s disconnected", address)
        del self.datapaths[address]
        self.installed.pop(address, None)
        self.flows.pop(address, None)
        hv = self._hv_at(address)
        if hv:
            hv.dpid = None
        self._write_state()

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        hv = self._hv_at(dp.address[0])
        in_port = msg.match.get("in_port")
        if msg.table_id in (Table.L2_LOOKUP, Table.IN_TRANSIT):
            self._hold(dp, msg)
            return
        port = next((a for a in hv.attachments.values() if a.ofport == in_port), None) if hv else None
        if port is None:
            self.guard.warn("packet-in-unknown-port", f"packet-in from {dp.address[0]} port {in_port}: "
                                                      "not a known VM port, ignored", time.time(), logging.INFO)
            return
        if not self.guard.admit(hv.name, in_port, time.time()):
            return
        try:
            if msg.reason == ofproto_v1_3.OFPR_INVALID_TTL:
                self._icmp_error(dp, port, msg.data, icmp.TIME_EXCEEDED)
            elif msg.table_id == Table.L3_ROUTING:
                self._icmp_error(dp, port, msg.data, icmp.NET_UNREACHABLE)
            elif msg.table_id == Table.L3_MTU:
                self._too_big(dp, port, msg)
            elif msg.table_id == Table.L3_ARP_RESOLVE:
                self._resolve(dp, port, msg)
            else:
                self._arp(dp, hv, port, msg)
        except arp_logic.MalformedPacket as e:
            LOG.warning("packet-in from %s port %s: %s: ignored", hv.name, port.port, e)

    def _arp(self, dp, hv, port, msg):
        eth, req = arp_logic.parse_arp(msg.data)
        decision = arp_logic.decide(self.net, port, eth, req, time.time())
        LOG.debug("%s: ARP %s -> %s: %s", hv.name, req.src_ip, req.dst_ip, decision.why)
        if decision.refused:
            self.guard.warn(f"arp-refused:{port.lport}", decision.why, time.time())
        if decision.reply:
            dp.send_msg(openflow.packet_out(dp, port.ofport, decision.reply, [openflow.Output("in_port")]))
        elif decision.forward:
            table = Table.FLOOD if decision.forward == "flood" else Table.L2_LOOKUP
            dp.send_msg(openflow.packet_out(dp, port.ofport, msg.data, [
                openflow.SetField("tunnel_id", port.vni), openflow.Resubmit(table)]))
        if decision.learned:
            self._converge()

    def _hold(self, dp, msg):
        """A frame for a port in transit, at its old hypervisor: held until the port lands."""
        mac = ":".join(f"{b:02x}" for b in msg.data[:6])
        held = self.held.setdefault(mac, [])
        if len(held) < HELD_PER_PORT:      # (its port may have gone a moment before the controller heard)
            held.append((time.time(), dp, msg.data))
        if any(m.mac == mac and m.new for m in self.net.moves) and not self.landing:
            self._release_moved()          # it has landed already: on at once

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev):
        """A port's link came up or went down (a moved VM's new port is ready when it is up)."""
        desc, address = ev.msg.desc, ev.msg.datapath.address[0]
        self.link_up[(address, desc.port_no)] = ev.msg.reason != ev.msg.datapath.ofproto.OFPPR_DELETE \
            and not desc.state & ev.msg.datapath.ofproto.OFPPS_LINK_DOWN
        if self.link_up[(address, desc.port_no)] and self.held and not self.landing:
            self._release_moved()

    def _ready(self, m) -> bool:
        """A landed port's new place can take its frames: flows confirmed, link up."""
        hv = self.net.hypervisors.get(m.new)
        a = next((a for a in hv.attachments.values() if a.lport == m.lport), None) if hv else None
        settled = time.time() - m.since     # a port OVS calls live takes a moment more to deliver
        return a is not None and settled > LINK_GRACE and (self.link_up.get((hv.address, a.ofport), False)
                                                           or settled > 2 * LINK_GRACE)

    @set_ev_cls(EventReleaseHeld)
    def _release_held(self, ev):
        if not self.landing:
            self._release_moved()

    def _release_moved(self, anyway: bool = False):
        """Frames held for ports that have landed: on from their old hypervisor, whose flows
        now forward to the new place (sent after those flows, on the same connection)."""
        for m in self.net.moves:
            if m.new and m.mac in self.held and (anyway or self._ready(m)):
                for _, dp, data in self.held.pop(m.mac):
                    dp.send_msg(openflow.packet_out(dp, dp.ofproto.OFPP_CONTROLLER, data, [
                        openflow.SetField("tunnel_id", m.vni), openflow.SetField(REG_FROM_TUNNEL, 0),
                        openflow.Resubmit(Table.L2_LOOKUP)]))

    def _too_big(self, dp, port, msg):
        """A routed packet larger than the logical MTU: ICMP fragmentation needed if it says
        don't fragment; else its fragments go on where it was going (ARP resolve)."""
        if icmp.dont_fragment(msg.data):
            self._icmp_error(dp, port, msg.data, icmp.FRAG_NEEDED, mtu=LOGICAL_MTU)
            return
        vni, hop = msg.match.get("tunnel_id"), msg.match.get(REG_NEXT_HOP)
        for frame in icmp.fragment(msg.data, LOGICAL_MTU):
            dp.send_msg(openflow.packet_out(dp, port.ofport, frame, [
                openflow.SetField("tunnel_id", vni), openflow.SetField(REG_NEXT_HOP, hop),
                openflow.Resubmit(Table.L3_ARP_RESOLVE)]))

    def _icmp_error(self, dp, port, data, kind, mtu=0):
        gateway = self.net.lif_ip(port.vni)
        if gateway is None:
            return
        frame = icmp.icmp_error(data, kind, gateway, self.net.intent.vmac, port.mac, mtu)
        self.guard.warn(f"icmp:{kind}", f"{port.lport}: ICMP {kind[0]}/{kind[1]} to {port.lport} from router "
                                        f"{gateway}", time.time(), logging.INFO)
        dp.send_msg(openflow.packet_out(dp, port.ofport, frame, [openflow.Output("in_port")]))

    def _resolve(self, dp, port, msg):
        """A routed packet whose next hop has no binding: hold it, ARP from the router's LIF
        on that switch (on a hypervisor that hosts it), and route it once the answer is
        learned; host unreachable if nothing answers in time."""
        vni, hop = msg.match.get("tunnel_id"), msg.match.get(REG_NEXT_HOP)
        if vni is None or hop is None:
            return
        key = (vni, str(ipaddress.IPv4Address(hop)))
        held = self.pending.setdefault(key, [])
        held.append((dp, port, msg.data))
        if len(held) > 1:
            return
        host = next(iter(self.net.vtep_table(vni)), None)
        sender = self.datapaths.get(host.address) if host else None
        lif = self.net.lif_ip(vni)
        if sender and lif:
            self.guard.warn("router-who-has", f"router: who has {key[1]} on VNI {vni}? (asked from {host.name})",
                            time.time(), logging.INFO)
            request = arp_logic.arp_request(self.net.intent.vmac, lif, key[1])
            sender.send_msg(openflow.packet_out(sender, sender.ofproto.OFPP_CONTROLLER, request, [
                openflow.SetField("tunnel_id", vni), openflow.SetField(REG_FROM_TUNNEL, 0),
                openflow.Resubmit(Table.FLOOD)]))
        hub.spawn_after(RESOLVE_TIMEOUT, lambda: self.send_event(self.name, EventResolveTimeout(key)))

    @set_ev_cls(EventResolveTimeout)
    def _resolve_timeout(self, ev):
        held = self.pending.pop(ev.key, [])
        if held:
            self.guard.warn("router-no-answer", f"router: {ev.key[1]} on VNI {ev.key[0]} did not answer",
                            time.time(), logging.INFO)
        for dp, port, data in held:
            self._icmp_error(dp, port, data, icmp.HOST_UNREACHABLE)

    def _release_resolved(self):
        for key in [k for k in self.pending if k[1] in self.net.bindings.get(k[0], {})]:
            for dp, port, data in self.pending.pop(key):
                dp.send_msg(openflow.packet_out(dp, port.ofport, data, [
                    openflow.SetField("tunnel_id", key[0]),
                    openflow.SetField(REG_NEXT_HOP, int(ipaddress.IPv4Address(key[1]))),
                    openflow.Resubmit(Table.L3_ARP_RESOLVE)]))

    # --- OVSDB ------------------------------------------------------------------------------
    def _connect_ovsdb(self, address):
        try:
            self.dbs[address].connect()
        except ConnectionError as e:
            LOG.error("%s", e)
            self.dbs.pop(address, None)
            return
        LOG.info("OVSDB: connected to %s", self.dbs[address].target)
        self._ovsdb_changed(address)

    def _ovsdb_changed(self, address):
        """Called from ovsdbapp's thread: coalesce into one event for the app's thread."""
        with self._lock:
            if address in self._dirty:
                return
            self._dirty.add(address)
        self.send_event(self.name, EventOvsdbChanged(address))

    @set_ev_cls(EventOvsdbChanged)
    def _on_ovsdb(self, ev):
        with self._lock:
            self._dirty.discard(ev.address)
        db = self.dbs.get(ev.address)
        if db is None or db.api is None:
            return
        snap = db.snapshot()
        if not snap.system_id:
            LOG.warning("OVSDB %s: Open_vSwitch external_ids:system-id is not set: ignored", ev.address)
            return
        hv = self.net.hypervisors.get(snap.system_id)
        if hv is None:
            hv = self.net.hypervisors[snap.system_id] = Hypervisor(snap.system_id, ev.address)
            LOG.info("hypervisor %s: OVSDB at %s, VTEP %s", hv.name, ev.address, snap.vtep_ip)
        hv.address, hv.vtep_ip, hv.ovsdb_connected = ev.address, snap.vtep_ip, True
        dp = self.datapaths.get(ev.address)
        hv.dpid = dp.id if dp else None
        interfaces, tunnels, state = {}, {}, {}
        for iface in snap.interfaces:
            remote = iface.external_ids.get(REMOTE_KEY)
            if remote:
                state[remote] = iface.bfd_status.get("state", "unknown")
                if iface.ofport > 0:
                    tunnels[remote] = iface.ofport
            elif iface.external_ids.get(IFACE_ID):
                interfaces[iface.name] = (iface.ofport, iface.external_ids[IFACE_ID])
        before = locations(self.net)
        self.net.set_interfaces(hv, interfaces, time.time())
        if self.net.moves.observe(before, locations(self.net), time.time()):
            LOG.info("moves: %s", ", ".join(f"{m.lport} {m.old} -> {m.new or '(in transit)'}" for m in self.net.moves))
        hv.tunnels, hv.tunnel_state = tunnels, state
        self._log_unbound(hv)
        self._converge()

    def _log_unbound(self, hv):
        for name, iface_id in self.net.unbound(hv).items():
            if self._unbound.get((hv.name, name)) != iface_id:
                LOG.warning("%s: interface %s names logical port %r, which intent does not have: not attached "
                            "(until that port is created)", hv.name, name, iface_id)
                self._unbound[(hv.name, name)] = iface_id

    # --- wanted state -----------------------------------------------------------------------
    @set_ev_cls(EventSyncTimeout)
    def _sync_timeout(self, ev):
        if not self.synced:
            LOG.warning("sync: gave up waiting for %s", ", ".join(sorted(self._unsynced())) or "nothing")
            self.synced = True
            self._learned_ports_not_back()
            self._converge()

    def _learned_ports_not_back(self):
        """After a restart: a learn port that did not come back with its hypervisors starts
        its detach hold now (it may have left while the controller was down)."""
        self.net.note_detached({b.port for b in self.net.learned.values()}, time.time())

    def _unsynced(self) -> set[str]:
        """Hypervisors the data plane names (as tunnel ends) or that are half-read."""
        named = {r for h in self.net.hypervisors.values() for r in h.tunnel_state}
        named |= set(self.net.hypervisors)
        ready = {h.name for h in self.net.hypervisors.values()
                 if h.ovsdb_connected and h.address in self.installed}
        return named - ready

    def _converge(self):
        """Bring every hypervisor to the wanted state by difference: tunnel ports, then flows.

        A (re)started controller first waits until it has read every hypervisor the data
        plane names: deciding on half a picture would tear down tunnels and flows that are
        carrying traffic. Nothing at all is decided before intent is read from the database."""
        if not self.intent_read:
            return
        if not self.synced:
            if self._unsynced() or not self.net.hypervisors:
                self._write_state()
                return
            LOG.info("sync: every hypervisor read; converging")
            self.synced = True
            self._learned_ports_not_back()
        first = self.net.moves.arrived_at()       # a moved port's new place before everyone else
        for hv in sorted(self.net.hypervisors.values(), key=lambda h: h.name not in first):
            if self.landing and hv.name not in first:
                continue          # make before break: the others once the new place has confirmed
            try:
                self._converge_tunnels(hv)
            except Exception as e:     # one hypervisor's OVSDB trouble must not stop the others
                LOG.error("%s: tunnel ports not changed (retried on the next change): %s", hv.name, e)
            dp = self.datapaths.get(hv.address)
            if dp is None or hv.address not in self.installed:
                continue
            meters_add, meters_delete = self.guard.changes("meter", hv.address, security.meters(hv))
            groups_add, groups_delete = self.guard.changes("group", hv.address, mobility.groups(hv))
            for meter_id, (rate, burst) in sorted(meters_add.items()):      # before the flows that use them
                dp.send_msg(openflow.meter_add(dp, meter_id, rate, burst))
            for group_id, ofport in sorted(groups_add.items()):
                dp.send_msg(openflow.failover_group_add(dp, group_id, ofport, Table.IN_TRANSIT))
            self.guard.mark_sent("meter", hv.address, meters_add, ())
            self.guard.mark_sent("group", hv.address, groups_add, ())
            wanted = {f.cookie: f for f in hypervisor_flows(self.net, hv)}
            d = diff(list(wanted.values()), self.installed[hv.address])
            self.flows[hv.address] = wanted
            if not d:
                continue
            for flow in d.add:
                dp.send_msg(openflow.flow_add(dp, flow))
            for cookie in d.delete:
                dp.send_msg(openflow.flow_delete(dp, cookie))
            for group_id in sorted(groups_delete):                              # after the flows that used them
                dp.send_msg(openflow.group_delete(dp, group_id))
            for meter_id in sorted(meters_delete):
                dp.send_msg(openflow.meter_delete(dp, meter_id))
            self.guard.mark_sent("group", hv.address, (), groups_delete)
            self.guard.mark_sent("meter", hv.address, (), meters_delete)
            barrier = dp.ofproto_parser.OFPBarrierRequest(dp)
            dp.set_xid(barrier)
            dp.send_msg(barrier)
            if hv.name in first:
                self.landing[barrier.xid] = time.time()
            self.installed[hv.address] = (self.installed[hv.address] - set(d.delete)) | {f.cookie for f in d.add}
            self.flow_mods[hv.name] = self.flow_mods.get(hv.name, 0) + len(d.add) + len(d.delete)
            LOG.info("%s: +%d -%d flows", hv.name, len(d.add), len(d.delete))
        self._release_resolved()
        if not self.landing:
            self._release_moved()
            if self.held:          # a new port whose link has not said it is up: a moment later
                for wait in (LINK_GRACE, 2 * LINK_GRACE):
                    hub.spawn_after(wait + 0.005, lambda: self.send_event(self.name, EventReleaseHeld()))
        self._report()
        self._write_state()

    def _converge_tunnels(self, hv):
        db = self.dbs.get(hv.address)
        if not (db and db.api):
            return
        wanted = self.net.wanted_tunnels(hv)
        if set(wanted) != set(hv.tunnel_state):
            present = {i.name: i for i in db.snapshot().interfaces if i.external_ids.get(REMOTE_KEY)}
            LOG.info("%s: tunnels to %s", hv.name, ", ".join(sorted(wanted)) or "none")
            db.set_tunnels(wanted, present)

    def _hv_at(self, address) -> Hypervisor | None:
        return next((h for h in self.net.hypervisors.values() if h.address == address), None)

    def _write_state(self):
        if not CONF.state_file:
            return
        tmp = CONF.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({**state_dict(self.net, self.flow_mods, self.installed),
                       "port_security": self.guard.counters(),
                       "packet_ins_refused": self.guard.refused_packet_ins()}, f, indent=1, sort_keys=True)
        os.replace(tmp, CONF.state_file)


def state_dict(net: Network, flow_mods: dict, installed: dict) -> dict:
    """The controller's tables, as `packetwalk show` and the lab read them."""
    return {
        "hypervisors": {h.name: {
            "address": h.address, "vtep_ip": h.vtep_ip, "dpid": h.dpid,
            "openflow": h.of_connected, "ovsdb": h.ovsdb_connected,
            "attachments": {a.port: {"vm": a.lport, "mac": a.mac, "vni": a.vni, "ofport": a.ofport}
                            for a in h.attachments.values()},
            "tunnels": {r: {"ofport": h.tunnels.get(r), "bfd": s} for r, s in h.tunnel_state.items()},
            "flows": len(installed.get(h.address, ())), "flow_mods": flow_mods.get(h.name, 0),
        } for h in net.hypervisors.values()},
        "vteps": {str(vni): [h.name for h in net.vtep_table(vni)] for vni in net.switches},
        "arp_table": {str(vni): {ip: {"mac": b.mac, "source": b.source} for ip, b in t.items()}
                      for vni, t in net.bindings.items()},
        "conflicts": net.conflicts,
    }

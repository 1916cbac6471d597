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

The app is one class in four files: this one (start, the API's calls, OpenFlow, sending
what the convergence decides), controller/app_database.py (intent in, reports out),
controller/app_hypervisors.py (each hypervisor's OVSDB, liveness) and
controller/app_ownership.py (several controllers: leases and OpenFlow roles).
"""
from __future__ import annotations

import concurrent.futures
import logging
import socket
import threading
import time

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3

from controller import api
from controller.app_database import DatabaseSide
from controller.app_hypervisors import SYNC_TIMEOUT, HypervisorsSide
from controller.app_ownership import Ownership
from controller.events import (
    EventCall, EventLeases, EventReleaseHeld, EventResolveTimeout, EventSyncTimeout, EventTick)
from controller import liveness, mobility, nbdb, security, tls
from controller.membership import Membership
from controller import openflow
from controller.connection import Link
from controller.convergence import Actions, Convergence
from controller.flows import Flow
from controller.northbound import NoAnswer
from controller.model import Hypervisor, Network
from controller.punts import LINK_GRACE, Punts
from controller.tables import Table

LOG = logging.getLogger("packetwalk.controller")
CONF = cfg.CONF
CONF.register_cli_opts([
    cfg.StrOpt("db-dir", default="/var/lib/packetwalk",
               help="the embedded database's directory (used when --nb is not given)"),
    cfg.StrOpt("controller-name", default=socket.gethostname(),
               help="this controller's name among several on one database (default: the host name)"),
    cfg.StrOpt("nb", default=None,
               help="the controller's database: its server(s), e.g. tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,"
                    "tcp:10.0.0.3:6641 (a Raft cluster); default: an embedded server on --db-dir"),
    cfg.StrOpt("state-file", default=None, help="write the controller's tables here as JSON on every change"),
    cfg.StrOpt("api-listen-host", default="127.0.0.1", help="northbound REST API address (loopback by default)"),
    cfg.IntOpt("api-port", default=8181, help="northbound REST API port (0: no API)"),
    cfg.StrOpt("api-token-file", default=None,
               help="a file holding the API's bearer token; required to listen anywhere but loopback"),
])


COUNTERS_EVERY = 2    # s between reads of the drop counters; one more s per 25 hypervisors (each read is a
COUNTERS_PER_S = 25   # flow-stats reply per hypervisor that os-ken parses whole)
RESOLVE_TIMEOUT = 1.0  # s: how long the router waits for an ARP answer before host unreachable
API_TIMEOUT = 5.0      # s: how long a northbound API request waits for the app's thread
ECHO_INTERVAL = liveness.ECHO_INTERVAL   # OpenFlow echoes are ours (controller/liveness.py): os-ken's
EVENT_QUEUE = 100_000    # events the app's queue holds before a sender waits
MAX_UNREPLIED_ECHOS = 0                  # own echo loop is off (0), and its send timeout as long as
SOCKET_TIMEOUT = liveness.BUSY_DEAD_AFTER   # a busy switch may take to read what it was sent


class PacketwalkController(DatabaseSide, Ownership, HypervisorsSide, app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # os-ken's queue holds 128 events; a switch's receiving thread that finds it full waits,
        # and answers none of that switch's echo requests meanwhile (OVS drops it after 10 s)
        self.events, self._events_sem = hub.Queue(EVENT_QUEUE), hub.BoundedSemaphore(EVENT_QUEUE)
        self.net = Network()
        self.ovsdb_scheme = tls.configure(CONF)   # the hypervisors' OVSDB (and --nb ssl:) over TLS, or not
        self.server = None
        if not CONF.nb:
            self.server = nbdb.EmbeddedServer(CONF.db_dir)
            LOG.info("database: %s", self.server.prepare())
            self.server.start()
        self.nb = nbdb.NbClient(CONF.nb or self.server.remote, self._nb_changed)
        self.reporter = nbdb.Reporter(self.nb)
        api_url = f"http://{CONF.api_listen_host}:{CONF.api_port}" if CONF.api_port else ""
        self.members = Membership(CONF.controller_name, CONF.ofp_listen_host or "", api_url, self.nb,
                                  lambda leases: self.send_event(self.name, EventLeases(leases)))
        self.owned: set[str] = set()        # hypervisors this controller programs now (its leases)
        self._roles = {}                     # dpid -> (role, generation) last asked of that switch
        self._learned_dirty = False
        self.generation = 0
        self.intent_read = False     # nothing is converged before intent and learned state are read
        self._nb_dirty = False
        self._nb_up = True
        self._reported = None
        self._unbound = {}           # (hypervisor, interface) -> iface-id naming no logical port: logged once
        self._api_token = api.read_token(CONF.api_token_file) if CONF.api_token_file else None
        self._api_socket = api.listen(CONF.api_listen_host, CONF.api_port, self._api_token) \
            if CONF.api_port else None
        self.conv = Convergence(self.net)       # engine, reconciler, dispatch (pure)
        self.conv.owns = lambda hv: hv in self.owned
        self.datapaths = {}          # dpid -> datapath
        self.links = {}              # dpid -> Link (its send queue)
        self.dbs = {}                # management address -> HypervisorDB
        self.workers = {}            # management address -> OvsdbWorker (its OVSDB session's thread)
        self.hv_by_dpid = {}         # dpid -> hypervisor name
        self.dpid_of = {}            # hypervisor -> br-int's datapath ID, as its OVSDB says
        self.flow_mods = {}          # hypervisor name -> flow-mods sent
        self.port_gen = {}           # logical port -> the generation that attached it (port status)
        self._read = {}              # dpid -> our cookies read from br-int, until its hypervisor is known
        self._bundles = {}           # (dpid, bundle id) -> (hypervisor, first xid, last xid, sent at): errors name one
        self._published_at = 0.0     # when the state file and the database reports were last written
        self.realized_now = 0        # dispatch.realized as of the app thread's last step (for other threads)
        self.echoes, self._liveness_queued = liveness.Echoes(), False   # OpenFlow liveness (app_hypervisors.py)
        self._publish_due, self._publish_every = False, 0.0   # app_database.py: _publish
        self._tunnel_check = set()
        self._flow_stats_buf = {}
        self.punts = Punts(self)     # packet-ins: ARP, ICMP errors, next hops, held frames, counters
        self.guard = self.punts.guard
        self._ticks = 0
        self.synced = False          # until every hypervisor the data plane names has been read
        self._started_at = self._arrived_at = time.monotonic()   # a switch connected, or was read (sync, below)
        self._counters_at = 0
        hub.spawn_after(SYNC_TIMEOUT, lambda: self.send_event(self.name, EventSyncTimeout()))
        self._lock = threading.Lock()

    def start(self):
        thread = super().start()
        hub.spawn(self._connect_nb)
        hub.spawn(self._ticker)
        hub.spawn(self._round_ticker)
        self._start_rounds()
        hub.spawn(self._liveness_ticker)
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

    def owner_of(self, hv: str) -> str | None:
        return self.members.owner(hv)

    def installed_flows(self, hv: Hypervisor) -> list[Flow]:
        installed = self.conv.rec.installed(hv.name) or set()
        return [f for c, f in self.conv.engine.flows(hv.name).items() if c in installed]

    def installed_count(self, hv: Hypervisor) -> int:
        """len(installed_flows(hv)) without building it: `/v1/hypervisors` asks it of every
        hypervisor, in this thread (at 200 hypervisors, 330,000 flows each time)."""
        return self.conv.installed_count(hv.name)

    def realized(self) -> dict:
        """OVN's --wait=hv: `generation` counts the changes taken in; `realized` is the
        newest whose flows are confirmed on every hypervisor it touches."""
        return self.conv.realized

    def wait_realized(self, generation: int, timeout: float) -> bool:
        """(Any thread) True once `generation` is realized, False after `timeout` s. Reads
        only `self.realized_now`, which the app's thread replaces whole (one atomic store)."""
        deadline = time.monotonic() + timeout
        while self.realized_now < generation:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self):
        if self.server:
            self.server.stop()
        super().stop()

    # --- every second: timers, the database's reachability, counters ----------------------
    def _ticker(self):
        while True:
            hub.sleep(1.0)
            self.send_event(self.name, EventTick())

    @set_ev_cls(EventTick)
    def _tick(self, ev):
        self._watch_nb()
        now = time.time()
        self.punts.tick(now)
        expired = self.net.moves.expire(now)
        if self.net.expire_learned(now) or expired:
            self._converge()
        self._ticks += 1
        every = COUNTERS_EVERY + len(self.net.hypervisors) // COUNTERS_PER_S
        if self._ticks - self._counters_at >= every * (1 if self.conv.dispatch.idle else 5):
            self._counters_at = self._ticks          # (while a plan is in flight, 5 times less often)
            self.punts.read_drop_counters()

    # --- OpenFlow -------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _switch_features(self, ev):
        dp = ev.msg.datapath
        dp.id = ev.msg.datapath_id     # os-ken's own handler sets it too, in its thread: maybe not yet
        LOG.info("OpenFlow: datapath %016x connected from %s", dp.id, dp.address[0])
        self._arrived_at = time.monotonic()
        if dp.id in self.links:
            self.links[dp.id].close()
        self.datapaths[dp.id], self.links[dp.id] = dp, Link(dp)
        self.guard.forget(dp.id)
        self._flow_stats_buf.pop(dp.id, None)       # a half-read reply of a dropped connection
        self._read.pop(dp.id, None)
        hv = self._hv_of(dp.id)
        self._roles.pop(dp.id, None)
        if hv:
            hv.dpid = dp.id
            self._role(hv)
            if hv.name in self.owned:
                self._reread(hv, "reconnected")
        else:
            self.links[dp.id].send([openflow.our_flows_request(dp)])
        self.links[dp.id].send([openflow.packet_ins_wanted(dp)])
        self._open_ovsdb(dp.address[0])

    def _reread(self, hv: Hypervisor, why: str) -> None:
        """Read what hv's br-int holds again (reconnect, or an update it refused), then
        converge it by difference; meanwhile nothing waits for it."""
        LOG.info("%s: reading its flows again (%s)", hv.name, why)
        self._send(self.conv.reread(hv.name))
        dp = self._dp(hv)
        if dp is not None:
            self._read.pop(dp.id, None)
            self.links[dp.id].send([openflow.our_flows_request(dp)])

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev):
        dpid = ev.msg.datapath.id
        if self.punts.is_counters(ev.msg):
            self.punts.drop_counters(self._hv_of(dpid), ev.msg)
            return
        buf = self._flow_stats_buf.setdefault(dpid, set())
        buf.update(s.cookie for s in ev.msg.body)
        if not ev.msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE:
            cookies = self._flow_stats_buf.pop(dpid)
            LOG.info("OpenFlow: %016x holds %d of our flows", dpid, len(cookies))
            hv = self._hv_of(dpid)
            if hv is None:
                self._read[dpid] = cookies           # taken in once its OVSDB says whose it is
            elif hv.name in self.owned:
                self.conv.read(hv.name, cookies)
                self._arrived_at = time.monotonic()
            self._converge()

    @set_ev_cls(ofp_event.EventONFBundleCtrlMsg, MAIN_DISPATCHER)
    def _bundle_reply(self, ev):
        msg = ev.msg
        hv = self._hv_of(msg.datapath.id)
        if not openflow.is_commit_reply(msg) or hv is None:
            return
        self._bundles.pop((msg.datapath.id, msg.bundle_id), None)
        self._act(self.conv.confirmed(hv.name, msg.bundle_id))
        self._release_held()
        if self.conv.dispatch.idle:
            for h in self.net.hypervisors.values():
                self._tidy(h)
            self._publish()

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        """A bundle refused: its hypervisor is read again. A meter or group sent again to a
        switch that has it answers EXISTS: expected. Others: one line per kind per interval."""
        msg = ev.msg
        if (msg.type, msg.code) in ((ofproto_v1_3.OFPET_METER_MOD_FAILED, ofproto_v1_3.OFPMMFC_METER_EXISTS),
                                    (ofproto_v1_3.OFPET_GROUP_MOD_FAILED, ofproto_v1_3.OFPGMFC_GROUP_EXISTS)):
            return
        found = next(((b, v) for (d, b), v in self._bundles.items()
                      if d == msg.datapath.id and v[1] <= msg.xid <= v[2]), None)
        hv = self._hv_of(msg.datapath.id)
        code = msg.code if msg.code is not None else getattr(msg, "exp_type", None)   # an extension's (ONF bundles)
        self.guard.warn(f"error:{msg.type}:{code}", "OpenFlow {}: error type {} code {}{}".format(
            hv.name if hv else f"{msg.datapath.id:016x}", msg.type, code,
            f" in bundle {found[0]}" if found else ""), time.time(), logging.ERROR)
        if hv is not None and found:
            del self._bundles[(msg.datapath.id, found[0])]
            self._reread(hv, f"bundle {found[0]} refused")
            self._converge()

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _disconnected(self, ev):
        dp = ev.datapath
        if dp.id is None or self.datapaths.get(dp.id) is not dp:
            return
        LOG.warning("OpenFlow: %016x disconnected", dp.id)
        del self.datapaths[dp.id]
        self.links.pop(dp.id).close()
        self._read.pop(dp.id, None)
        hv = self._hv_of(dp.id)
        if hv:
            hv.dpid = None
            self._send(self.conv.forget(hv.name))
        self._converge()

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        hv = self._hv_of(dp.id)
        if hv is not None and hv.name not in self.owned:
            return                   # another controller's (a slave gets none; an equal might)
        self.punts.packet_in(hv, msg)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev):
        self.punts.port_status(ev.msg)

    def resolve_later(self, key):
        hub.spawn_after(RESOLVE_TIMEOUT, lambda: self.send_event(self.name, EventResolveTimeout(key)))

    @set_ev_cls(EventResolveTimeout)
    def _resolve_timeout(self, ev):
        self.punts.resolve_timeout(ev.key)

    @set_ev_cls(EventReleaseHeld)
    def _release_held(self, ev=None):
        """Frames held for a moved port: on once its new place is made (punts.py); a link
        that has not said it is up yet, a moment later (asked again twice, not more)."""
        if self.punts.release_moved() and ev is None:
            for wait in (LINK_GRACE, 2 * LINK_GRACE):
                hub.spawn_after(wait + 0.005, lambda: self.send_event(self.name, EventReleaseHeld()))

    # --- wanted state -----------------------------------------------------------------------
    def _converge(self):
        """Bring every hypervisor to the wanted state by difference: the engine recomputes
        what the changes touch, the reconciler turns that into plans, the dispatch sends
        them (tunnel ports go to each hypervisor's OVSDB worker).

        A (re)started controller first waits until it has read every hypervisor the data
        plane names and every switch that connected, and none came for ARRIVAL_QUIET s:
        deciding on half a picture would tear down tunnels and flows that are carrying
        traffic (and, at a cold start, redo every hypervisor's tunnels as each arrives).
        Nothing at all is decided before intent is read from the database."""
        if not self.intent_read:
            return
        for hv in self.net.hypervisors.values():
            if hv.restored:          # known from the database: not read is not down (model.restore)
                if not self._ready(hv):
                    continue
                hv.restored = False
                self.conv.engine.reset(hv.name)      # its own flows, from what was read
            alive = self._alive(hv)
            if alive == hv.up:
                continue
            LOG.warning("hypervisor %s: %s", hv.name, "up" if alive else "DOWN")
            self.net.set_up(hv, alive)
            if alive:                # back: what its br-int holds now is read, then the difference
                self._reread(hv, "up again")
            else:
                self._send(self.conv.forget(hv.name))
        if not self.synced:
            if self._unsynced() or not self.net.hypervisors or self._arriving():
                self._write_state()
                return
            LOG.info("sync: every hypervisor read; converging")
            self.synced = True
            self._learned_ports_not_back()
        self._act(self.conv.converge(self._tunnel_check))
        self._tunnel_check.clear()
        self.punts.release_resolved()
        self._release_held()
        self._publish()

    def _act(self, actions: Actions) -> None:
        """Do what the convergence says: tunnel ports to the OVSDB workers, bundles to the links."""
        self.punts.plans_started(actions.plans)
        for plan in actions.plans:
            LOG.info("plan %d: %s", plan.seq, "; ".join(
                ", ".join(f"{u.hypervisor} +{len(u.add)} -{len(u.delete)}" for u in stage) for stage in plan.stages))
        for update in actions.tunnels:
            LOG.info("%s: tunnels to %s", update.hypervisor, ", ".join(sorted(update.wanted)) or "none")
            self.workers[self.net.hypervisors[update.hypervisor].address].tunnels(update.hypervisor, update)
        self._send(actions.sends)

    def _send(self, sends):
        """Each send as one bundle on its hypervisor's link; a hypervisor that is gone is
        not waited for."""
        sends = list(sends)
        while sends:
            s = sends.pop(0)
            hv = self.net.hypervisors.get(s.hypervisor)
            dp = self._dp(hv) if hv else None
            if dp is None:
                sends += self.conv.dispatch.fail(s.hypervisor)
                continue
            self._meters_and_groups(hv, dp, add=True)
            wire, first, last = openflow.bundle_bytes(dp, s.bundle_id, s.update)   # each flow encoded once
            self._bundles[(dp.id, s.bundle_id)] = (hv.name, first, last, time.time())
            self.links[dp.id].send([wire])
            self.flow_mods[hv.name] = self.flow_mods.get(hv.name, 0) + len(s.update)

    def _meters_and_groups(self, hv, dp, add: bool) -> None:
        """Meters (security.py) and failover groups (mobility.py): those wanted go in before
        the bundles whose flows use them; those no longer wanted go once no plan is in
        flight (deleting one deletes the flows that use it)."""
        for kind, wanted, make, drop in (
                ("meter", security.meters(hv), lambda i, v: openflow.meter_set(dp, i, *v), openflow.meter_delete),
                ("group", mobility.groups(hv), lambda i, v: [openflow.failover_group_set(dp, i, v, Table.IN_TRANSIT)],
                 openflow.group_delete)):
            new, old = self.guard.changes(kind, dp.id, wanted)
            if add and new:
                self._out(dp, [m for i, v in sorted(new.items()) for m in make(i, v)])
                self.guard.mark_sent(kind, dp.id, new, ())
            elif not add and old:
                self._out(dp, [drop(dp, i) for i in sorted(old)])
                self.guard.mark_sent(kind, dp.id, {}, old)

    def _tidy(self, hv) -> None:
        """No plan in flight: meters and groups nothing uses any more, on hv."""
        dp = self._dp(hv)
        if dp is not None and hv.name in self.owned and not self.conv.rec.pending():
            self._meters_and_groups(hv, dp, add=False)

    def _out(self, dp, msg) -> None:
        """A packet-out, through the hypervisor's send queue (never blocking this thread)."""
        link = self.links.get(dp.id)
        if link is not None:
            link.send(msg if isinstance(msg, list) else [msg])

    def _dp(self, hv: Hypervisor):
        return self.datapaths.get(self.dpid_of.get(hv.name))

    def _hv_of(self, dpid) -> Hypervisor | None:
        """The hypervisor whose br-int has this datapath ID (known by system-id, not address)."""
        name = self.hv_by_dpid.get(dpid)
        return self.net.hypervisors.get(name) if name else None

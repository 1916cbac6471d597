"""The hypervisors' OVSDB as the controller app sees it (who each is, its ports and tunnels),
a (re)started controller's wait for them (sync), and their liveness (OVSDB probes; OpenFlow
echoes: controller/liveness.py).

A mixin of controller.app.PacketwalkController (os-ken finds the handlers on the app's class).
"""
from __future__ import annotations

import logging
import time

from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub

from controller import liveness, mobility, openflow, ovsdb
from controller.connection import OvsdbWorker
from controller.events import EventLiveness, EventOvsdbChanged, EventOvsdbFailed, EventSyncTimeout, EventTunnelsDone
from controller.model import IFACE_ID, Hypervisor
from controller.ovsdb import HypervisorDB

LOG = logging.getLogger("packetwalk.controller")
SYNC_TIMEOUT = 15.0   # s: how long a (re)started controller waits for hypervisors it has not seen
SYNC_LIMIT = 60.0     # s: and at most, however late the last one came (a switch flapping for ever)
ARRIVAL_QUIET = 0.5   # s: a starting controller decides once no switch connected or was read for this long
LIVENESS_TICK = 0.1    # s: how often the OVSDB sessions' state is looked at
OVSDB_RETRY = 2.0      # s: after an OVSDB session could not be opened, try again (its switch still connected)


class HypervisorsSide:
    """Each hypervisor's OVSDB session (controller/connection.py OvsdbWorker) and its state."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ovsdb_retry_at: dict[str, float] = {}    # address -> when to open its OVSDB again
        self._probe_ms = ovsdb.PROBE_INTERVAL

    def _open_ovsdb(self, address: str) -> None:
        """A switch connected from `address`: open its OVSDB (once), in a worker thread of
        its own; what it reads comes back as events."""
        if address in self.dbs:
            return
        worker = self.workers[address] = OvsdbWorker(
            HypervisorDB(address, scheme=self.ovsdb_scheme),
            lambda a, snap: self.send_event(self.name, EventOvsdbChanged(a, snap)), self._tunnels_done,
            lambda a, e: self.send_event(self.name, EventOvsdbFailed(a, e)))
        self.dbs[address] = worker.db
        worker.db.probe_ms = self._probe_ms
        worker.start()

    @set_ev_cls(EventOvsdbFailed)
    def _on_ovsdb_failed(self, ev):
        LOG.error("%s: trying again in %.0f s", ev.error, OVSDB_RETRY)
        self.dbs.pop(ev.address, None)          # again in a while, or at its next OpenFlow connection
        self.workers.pop(ev.address, None)
        self._ovsdb_retry_at[ev.address] = time.monotonic() + OVSDB_RETRY

    def _retry_ovsdb(self) -> None:
        """Open again the OVSDB sessions that failed, of switches still connected (a busy
        hypervisor may not answer in time while its OpenFlow connection stays up)."""
        now = time.monotonic()
        for address, at in list(self._ovsdb_retry_at.items()):
            if now >= at:
                del self._ovsdb_retry_at[address]
                if any(dp.address[0] == address for dp in self.datapaths.values()):
                    self._open_ovsdb(address)

    @set_ev_cls(EventOvsdbChanged)
    def _on_ovsdb(self, ev):
        db, snap = self.dbs.get(ev.address), ev.snap
        if db is None:
            return
        if not snap.system_id:
            LOG.warning("OVSDB %s: Open_vSwitch external_ids:system-id is not set: ignored", ev.address)
            return
        hv = self.net.hypervisors.get(snap.system_id)
        if hv is None:
            hv = self.net.hypervisors[snap.system_id] = Hypervisor(snap.system_id, ev.address, up=False)
            self._arrived_at = time.monotonic()
            self.members.nudge()             # owned at the next round: now, not at the next tick
            LOG.info("hypervisor %s: OVSDB at %s, VTEP %s", hv.name, ev.address, snap.vtep_ip)
        hv.address, hv.vtep_ip, hv.ovsdb_connected = ev.address, snap.vtep_ip, True
        if self.dpid_of.get(hv.name) != snap.dpid:
            self.hv_by_dpid.pop(self.dpid_of.get(hv.name), None)
            self.dpid_of[hv.name] = snap.dpid
            self.hv_by_dpid[snap.dpid] = hv.name
        if snap.dpid in self._read:
            cookies = self._read.pop(snap.dpid)
            if hv.name in self.owned:
                self.conv.read(hv.name, cookies)
                self._arrived_at = time.monotonic()
        self._role(hv)
        hv.dpid = snap.dpid if snap.dpid in self.datapaths else None
        self._tunnel_check.add(hv.name)
        interfaces, tunnels, state = snap.split(IFACE_ID)
        watched = mobility.watched_macs(self.net, hv, interfaces)    # not all 5,000 VMs: those that can move
        before = mobility.locations(self.net, watched)
        self.net.set_interfaces(hv, interfaces, time.time())
        if self.net.moves.observe(before, mobility.locations(self.net, watched), time.time()):
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

    def _tunnels_done(self, hv: str, error) -> None:
        """Called from a worker's thread: an event for the app's."""
        self.send_event(self.name, EventTunnelsDone(hv, error))

    @set_ev_cls(EventTunnelsDone)
    def _on_tunnels_done(self, ev):
        if ev.error is not None:
            why = str(ev.error)      # ovsdbapp's timeout names every command: its cause is at the end
            LOG.error("%s: tunnel ports not changed (retried on the next change): %s", ev.hypervisor,
                      why if len(why) < 300 else f"{why[:120]} ... {why[-120:]}")
            self.conv.tunnels_failed(ev.hypervisor)

    # --- a (re)started controller's sync: what it waits for before it decides (app._converge) ---
    @set_ev_cls(EventSyncTimeout)
    def _sync_timeout(self, ev):
        """The sync wait runs out SYNC_TIMEOUT s after the last switch connected or was read
        (reading 200 hypervisors takes longer than that, and is not to be cut short), and
        SYNC_LIMIT s after the start at the latest."""
        if self.synced:
            return
        left = min(self._arrived_at + SYNC_TIMEOUT, self._started_at + SYNC_LIMIT) - time.monotonic()
        if left > 0:
            hub.spawn_after(left, lambda: self.send_event(self.name, EventSyncTimeout()))
            return
        LOG.warning("sync: gave up waiting for %s", ", ".join(sorted(self._unsynced())) or "nothing")
        for hv in self.net.hypervisors.values():
            hv.restored = False      # known from the database, not back: judged by liveness from now on
        self.synced = True
        self._learned_ports_not_back()
        self._converge()

    def _learned_ports_not_back(self):
        """After a restart: a learn port that did not come back with its hypervisors starts
        its detach hold now (it may have left while the controller was down)."""
        self.net.note_detached({b.port for b in self.net.learned.values()}, time.time())

    def _unsynced(self) -> set[str]:
        """Hypervisors the data plane names (as tunnel ends) or that are half-read, and
        switches connected whose hypervisor is not known yet (by datapath ID)."""
        named = {r for h in self.net.hypervisors.values() for r in h.tunnel_state}
        named |= set(self.net.hypervisors)
        ready = {h.name for h in self.net.hypervisors.values() if self._ready(h)}
        unknown = {f"{dpid:016x}" for dpid in self.datapaths if dpid not in self.hv_by_dpid}
        return (named - ready) | unknown

    def _ready(self, hv: Hypervisor) -> bool:
        """Its OVSDB read, and its flows too if it is ours to program."""
        return hv.ovsdb_connected and (hv.name not in self.owned or hv.name in self.conv.rec.switches
                                       or hv.name in self.conv.reads)

    def _arriving(self) -> bool:
        """A (re)starting controller's switches are still coming: one connected or was read
        less than ARRIVAL_QUIET s ago. Deciding then would give each hypervisor a new tunnel
        set (and new flood lists) for every one that arrives after it: at 200 hypervisors,
        thousands of OVSDB transactions and plans, instead of one each."""
        return time.monotonic() - self._arrived_at < ARRIVAL_QUIET

    def _liveness_ticker(self):
        """A tick every LIVENESS_TICK s, stamped with when it was posted; one in the app's
        queue at a time (an app that is behind gets one, not a pile)."""
        while True:
            hub.sleep(LIVENESS_TICK)
            if not self._liveness_queued:
                self._liveness_queued = True
                self.send_event(self.name, EventLiveness(time.time()))

    @set_ev_cls(EventLiveness)
    def _liveness(self, ev):
        """OVSDB sessions probe their server (ovsdb.PROBE_INTERVAL); OpenFlow switches get
        echo requests and are closed when liveness.Echoes calls them dead: either way the
        hypervisor is down."""
        self._liveness_queued = False
        busy = {self.dpid_of.get(h) for h in self.conv.dispatch.waiting_on() | set(self.conv.rec.requested)}
        ask, dead = self.echoes.tick(ev.at, busy, time.time())
        for dpid in ask:
            if dpid in self.links:
                self.links[dpid].send([openflow.echo_request(self.datapaths[dpid])])
        for dpid in dead:
            LOG.warning("OpenFlow: %016x silent for %.1f s: closed", dpid, ev.at - self.echoes.heard[dpid])
            self.echoes.gone(dpid)
            if dpid in self.datapaths:
                hub.spawn(self.datapaths[dpid].close)     # its state change is an event for this very thread
        self._unconfirmed(ev.at)
        changed, self.realized_now = False, self.conv.dispatch.realized
        probe = ovsdb.probe_interval_ms(max(len(self.datapaths), len(self.net.hypervisors)))
        if probe != self._probe_ms:
            self._probe_ms = probe
            for db in list(self.dbs.values()):
                db.set_probe_interval(probe)
        if self._ovsdb_retry_at:
            self._retry_ovsdb()
        for hv in self.net.hypervisors.values():
            db = self.dbs.get(hv.address)
            connected = bool(db and db.connected)
            if connected != hv.ovsdb_connected:
                LOG.warning("OVSDB: %s %s", hv.name, "back" if connected else "lost")
                hv.ovsdb_connected, changed = connected, True
                if connected:
                    self.workers[hv.address].read()
        if not self.synced and self.intent_read and self.net.hypervisors and not self._arriving() \
                and not self._unsynced():
            changed = True           # a starting controller's switches stopped coming: decide (app.py)
        if changed:
            self._converge()
        elif self._publish_due:
            self._publish()

    def _unconfirmed(self, now: float) -> None:
        """A bundle neither confirmed nor refused after liveness.BUSY_DEAD_AFTER s (its reply
        lost, or the switch dropped it): its hypervisor is read again, so that the plan in
        flight, which waits for it, goes on."""
        for (dpid, bundle), (name, _, _, sent) in list(self._bundles.items()):
            hv = self.net.hypervisors.get(name)
            if now - sent > liveness.BUSY_DEAD_AFTER and hv is not None and (dpid, bundle) in self._bundles:
                del self._bundles[(dpid, bundle)]
                LOG.warning("%s: bundle %d unconfirmed after %.0f s", name, bundle, now - sent)
                self._reread(hv, f"bundle {bundle} unconfirmed")
                self._converge()

    # what the switches say, for liveness (the app's own handlers of these events are in app.py)
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _echoes_connected(self, ev):
        self.echoes.connected(ev.msg.datapath.id, time.time())

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _echoes_gone(self, ev):
        if self.datapaths.get(ev.datapath.id) in (None, ev.datapath):
            self.echoes.gone(ev.datapath.id)

    @set_ev_cls([ofp_event.EventOFPEchoReply, ofp_event.EventONFBundleCtrlMsg, ofp_event.EventOFPFlowStatsReply,
                 ofp_event.EventOFPBarrierReply], MAIN_DISPATCHER)
    def _heard(self, ev):
        self.echoes.heard_from(ev.msg.datapath.id, ev.timestamp)

    def _alive(self, hv: Hypervisor) -> bool:
        return hv.ovsdb_connected and self.dpid_of.get(hv.name) in self.datapaths

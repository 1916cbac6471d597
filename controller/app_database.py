"""The controller app's side of its own database (controller/nbdb.py): it follows intent
through the IDL, writes the API's changes, and reports what it learned.

A mixin of controller.app.PacketwalkController (os-ken finds the handlers on the app's class).
"""
from __future__ import annotations

import logging
import time

from os_ken import cfg
from os_ken.controller.handler import set_ev_cls
from ovsdbapp import exceptions as ovsdb_exceptions

from controller import nbdb, report
from controller.events import EventLearnedChanged, EventNbChanged
from controller.northbound import Conflict, NoAnswer

LOG = logging.getLogger("packetwalk.controller")
CONF = cfg.CONF
PUBLISH_INTERVAL = 0.1  # s: the state file and the database's reports, at most this often


class DatabaseSide:
    """Intent in, learned state out; every method runs in the app's thread unless it says so."""

    def _connect_nb(self):
        self.nb.connect()
        self.nb.ensure_global()
        LOG.info("database: connected to %s", self.nb.remote)
        self._nb_changed()

    def _nb_changed(self, table=None):
        """Called from the IDL's thread: coalesce into one event for the app's thread."""
        if table == "Learned_Binding" and self.intent_read:
            with self._lock:
                if self._learned_dirty:
                    return
                self._learned_dirty = True
            self.send_event(self.name, EventLearnedChanged())
            return
        if table in nbdb.LEARNED_TABLES and self.intent_read:
            return                   # reports and leases: read where they are used
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
            restored = self.net.restore(snap["hypervisors"], snap["port_status"])
            if restored:
                LOG.info("database: %d hypervisors known, kept as they were until read", len(restored))
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

    @set_ev_cls(EventLearnedChanged)
    def _learned_changed(self, ev):
        """Another controller learned (or forgot) a binding: the database says so."""
        with self._lock:
            self._learned_dirty = False
        others = {a.lport for h in self.net.hypervisors.values() if h.name not in self.owned
                  and self.members.owner(h.name) for a in h.attachments.values()}
        if others and self.net.merge_learned(self.nb.read()["learned_bindings"], others):
            self._converge()

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

    def _port_realized(self, lport: str) -> bool:
        """A port is up once the change that attached it is confirmed everywhere it touches."""
        d = self.conv.dispatch
        return self.port_gen.setdefault(lport, d.generation) <= d.realized

    def _report(self):
        """Hand the database what this controller knows of the hypervisors it owns (written
        off this thread): their rows, their ports' status, and the bindings it learned (of
        ports on its hypervisors, or on none). Other controllers report the rest."""
        attached = self.net.attached_ports()
        for lport in [p for p in self.port_gen if p not in attached]:
            del self.port_gen[lport]
        view = report.database_view(self.net, self.owned, self.members.owner, self._port_realized)
        if view != self._reported:
            self._reported = view
            self.reporter.report(report.stamped(view, int(time.time() * 1000)))

    def _publish(self, force: bool = False) -> None:
        """The state file and the database's reports (both O(network)): at once if the last
        were written long enough ago (PUBLISH_INTERVAL, or 20 times what the last cost), else
        on a liveness tick after that."""
        self.realized_now = self.conv.dispatch.realized
        started = time.monotonic()
        if force or started - self._published_at >= max(PUBLISH_INTERVAL, self._publish_every):
            self._published_at, self._publish_due = started, False
            self._report()
            self._write_state()
            # at most ~5% of the app's time: a network that makes publishing cost 20 ms is published
            # every 0.4 s while it changes (each change is still reported, batched with the next)
            self._publish_every = max(PUBLISH_INTERVAL, 20 * (time.monotonic() - started))
        else:
            self._publish_due = True

    def _write_state(self):
        if not CONF.state_file:
            return
        installed = {h: len(self.conv.rec.installed(h) or ()) for h in self.net.hypervisors}
        report.write_json(CONF.state_file, {
            **report.state_dict(self.net, self.flow_mods, installed), "realized": self.realized(),
            "controller": CONF.controller_name, "owned": sorted(self.owned),
            "owners": {h: self.members.owner(h) for h in self.net.hypervisors},
            "port_security": self.guard.counters(), "packet_ins_refused": self.guard.refused_packet_ins()})

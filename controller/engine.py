"""Incremental convergence, pure: the wanted flows per (hypervisor, scope), kept up to date
by recomputing only what a change touches.

The model (model.py) notes every change it takes in `Network.changes`; `Engine.update()`
reads those notes, works out which (hypervisor, scope) pairs they touch (pipeline.py names
the scopes), recomputes those and returns, per hypervisor, the flows to add and the cookies
to delete. What a change touches:

- a port attached, detached or moved on H: its port scope on H; its switch on H; its MAC
  on every hypervisor whose VMs reach that switch (switched or routed); if H gained or lost
  a switch, all of H (and that switch's flood lists elsewhere, and tunnels);
- a binding learned, changed or removed on VNI V: that binding on every hypervisor that
  reaches V; the ports with its MAC (their ARP snooping);
- a tunnel port appearing, going or renumbered on H: that VTEP, H's flood lists and the
  MACs behind that VTEP, on H only; a BFD state change touches nothing;
- a hypervisor going down or coming back: its switches' flood lists and its MACs on the
  others; itself, recomputed in full when it is back;
- a port's move beginning, landing or ending (mobility.py): that move on every hypervisor,
  and the tunnel ports of its old and new places; a tunnel port changing on H: the moves on
  H too;
- a switch, router, LIF or route changed: every hypervisor whose VMs reach it, in full;
  the vMAC or ARP suppression changed: everything.

The full recompute (pipeline.hypervisor_scopes) is the fallback after a reconnect and the
oracle of tests/unit/test_engine.py: after any sequence of changes, incremental == full.
Nothing here sends, sleeps or reads a clock.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict

from controller.flows import Flow
from controller.model import Network
from controller.pipeline import Scope, View, hypervisor_scopes, scope_flows


@dataclasses.dataclass
class Delta:
    """One hypervisor's wanted flows, before -> after."""
    add: dict[int, Flow] = dataclasses.field(default_factory=dict)
    delete: set[int] = dataclasses.field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.add or self.delete)


@dataclasses.dataclass
class Changes:
    """What one Engine.update() found."""
    flows: dict[str, Delta]      # hypervisor -> its wanted flows' change
    full: set[str]               # hypervisors recomputed from scratch
    tunnels: set[str]            # hypervisors whose wanted tunnel ports may have changed
    local: set[str]              # hypervisors that gained a VM port (programmed first: make before break)
    gone: set[str]               # hypervisors no longer computed (down, or forgotten)
    recomputed: int              # flows computed


class Engine:
    def __init__(self, net: Network):
        self.net = net
        self.wanted: dict[str, dict[Scope, dict[int, Flow]]] = {}   # up hypervisors only
        self._tunnels: dict[str, dict[str, int]] = {}
        self._vtep_ip: dict[str, str | None] = {}
        self._moves: dict = {}             # logical port -> its Move, as last computed

    # --- reading ------------------------------------------------------------------------
    def flows(self, hv: str) -> dict[int, Flow]:
        """cookie -> flow: everything `hv` should hold, as last computed."""
        return {c: f for scope in self.wanted.get(hv, {}).values() for c, f in scope.items()}

    def reset(self, hv: str) -> None:
        """Forget `hv`'s flows: the next update recomputes it in full (a reconnect)."""
        self.wanted.pop(hv, None)

    # --- the change -----------------------------------------------------------------------
    def update(self) -> Changes:
        net = self.net
        notes, net.changes = net.changes, []
        up = {n for n, h in net.hypervisors.items() if h.up}
        gone = set(self.wanted) - up
        for name in gone:
            del self.wanted[name]
        full = up - set(self.wanted)
        dirty: dict[str, set[Scope]] = defaultdict(set)
        tunnels, local = set(full), set()

        def touch_mac(vni: int, mac: str):
            for name in net.routed_hosts(vni):
                dirty[name].add(("mac", vni, mac))

        for note in notes:
            kind = note[0]
            if kind == "ports":
                self._ports(note[1], note[2], note[3], dirty, full, tunnels, local, touch_mac)
            elif kind == "binding":
                _, vni, ip, old = note
                for name in net.routed_hosts(vni):
                    dirty[name].add(("binding", vni, ip))
                now = net.bindings.get(vni, {}).get(ip)
                for mac in {b.mac for b in (old, now) if b}:
                    for name, a in net.attachments_of_mac(vni, mac):
                        dirty[name].add(("port", a.port))
            elif kind == "up":
                hv = net.hypervisors.get(note[1])
                for a in hv.attachments.values() if hv else ():
                    touch_mac(a.vni, a.mac)
                    for name in net.hosts(a.vni):
                        dirty[name].add(("switch", a.vni))
            elif kind == "intent":
                self._intent(note[1], full, tunnels)
        moves = dict(net.moves.by_port)
        for lport in moves.keys() | self._moves.keys():
            if moves.get(lport) != self._moves.get(lport):
                for name in up:
                    dirty[name].add(("move", lport))
                for m in filter(None, (moves.get(lport), self._moves.get(lport))):    # the tunnels of its places
                    tunnels.update(n for n in (m.old, m.new) if n in net.hypervisors)
        self._moves = moves
        for name, hv in net.hypervisors.items():
            if self._vtep_ip.get(name, "?") != hv.vtep_ip:      # a VTEP renumbered: everyone's tunnels
                self._vtep_ip[name] = hv.vtep_ip
                tunnels |= set(net.hypervisors)
            if name in up and name not in full and self._tunnels.get(name) != hv.tunnels:
                self._tunnel_ports(name, dirty)
        return self._recompute(full & up, dirty, up, Changes({}, full & up, tunnels, local & up, gone, 0))

    def _ports(self, name, old, new, dirty, full, tunnels, local, touch_mac):
        net = self.net
        changed = [p for p in old.keys() | new.keys() if old.get(p) != new.get(p)]
        if not changed:
            return
        before, after = {a.vni for a in old.values()}, {a.vni for a in new.values()}
        if before != after:
            full.add(name)
            tunnels.add(name)
            for vni in before ^ after:
                tunnels.update(n for v in net.joined(vni) for n in net.hosts(v, up_only=False))
                for other in net.hosts(vni):
                    dirty[other].add(("switch", vni))
        for port in changed:
            dirty[name].add(("port", port))
            if new.get(port) and (port not in old or old[port].mac != new[port].mac):
                local.add(name)
            for a in (old.get(port), new.get(port)):
                if a is not None:
                    dirty[name].add(("switch", a.vni))
                    touch_mac(a.vni, a.mac)

    def _intent(self, old, full, tunnels):
        """Switches, routers, LIFs, routes: every hypervisor that reaches one that changed,
        in full. Ports and bindings come as their own notes."""
        net, new = self.net, self.net.intent
        if old is None or (old.vmac, old.arp_suppression) != (new.vmac, new.arp_suppression):
            full |= set(net.hypervisors)
            tunnels |= set(net.hypervisors)
            return
        vnis = set(dict(_switches(old)).items() ^ dict(_switches(new)).items())
        vnis = {v for v, _ in vnis}
        old_r, new_r = {r.name: r for r in old.routers}, {r.name: r for r in new.routers}
        for topo, routers in ((old, old_r), (new, new_r)):
            for name, r in routers.items():
                if old_r.get(name) != new_r.get(name):
                    vnis |= {topo.switch(i.switch).vni for i in r.interfaces}
        for topo, routers in ((old, old_r), (new, new_r)):    # and what those routers join
            for r in routers.values():
                joined = {topo.switch(i.switch).vni for i in r.interfaces}
                if joined & vnis:
                    vnis |= joined
        touched = {n for v in vnis for n in net.hosts(v, up_only=False)}
        full |= touched
        tunnels |= touched

    def _tunnel_ports(self, name, dirty):
        net, hv = self.net, self.net.hypervisors[name]
        old = self._tunnels.get(name, {})
        self._tunnels[name] = dict(hv.tunnels)
        routed = net.routed_vnis(hv.vnis())
        for remote in old.keys() | hv.tunnels.keys():
            if old.get(remote) == hv.tunnels.get(remote):
                continue
            dirty[name].add(("vtep", remote))
            dirty[name].update(("switch", v) for v in hv.vnis())
            dirty[name].update(("move", m.lport) for m in net.moves)
            there = net.hypervisors.get(remote)
            for a in there.attachments.values() if there else ():
                if a.vni in routed:
                    dirty[name].add(("mac", a.vni, a.mac))

    def _recompute(self, full, dirty, up, out: Changes) -> Changes:
        net = self.net
        for name in full:
            hv = net.hypervisors[name]
            old = self.flows(name)
            self.wanted[name] = hypervisor_scopes(net, hv)
            self._tunnels[name] = dict(hv.tunnels)
            new = self.flows(name)
            out.recomputed += len(new)
            delta = Delta({c: f for c, f in new.items() if c not in old}, old.keys() - new.keys())
            if delta:
                out.flows[name] = delta
        for name, touched in dirty.items():
            if name in full or name not in up or name not in self.wanted:
                continue
            view, wanted, delta = View(net, net.hypervisors[name]), self.wanted[name], Delta()
            for scope in touched:
                flows = {f.cookie: f for f in scope_flows(view, scope)}
                out.recomputed += len(flows)
                old = wanted.pop(scope, {})
                if flows:
                    wanted[scope] = flows
                delta.delete |= old.keys() - flows.keys()
                delta.add.update((c, f) for c, f in flows.items() if c not in old)
            delta.delete -= delta.add.keys()
            if delta:
                out.flows[name] = delta
        return out


def _switches(topology) -> list[tuple[int, object]]:
    return [(s.vni, s) for s in topology.switches]

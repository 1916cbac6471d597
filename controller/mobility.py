"""A VM that moves loses nothing: make-before-break around a port changing hypervisors.

A live migration, as a hypervisor does it: the port appears on the new hypervisor with the
same iface-id while the VM still runs on the old one, the VM switches over, then the old
port goes. While the port is attached in both places (`both`), every frame for its MAC goes
to both (OVN's multi-chassis binding): whichever place the VM runs in takes it, so the
switchover itself needs nothing from the controller. Once the old port goes, the move has
landed: the old hypervisor forwards what still arrives for the MAC to the new VTEP for HOLD
seconds (and sends straight back what the new place itself sent it).

A port can also leave before it appears elsewhere (in transit): its old hypervisor then
hands every frame for its MAC to the controller, which holds them (HELD_PER_PORT at most),
and the other hypervisors keep sending to the old place until it lands.

Every hypervisor's flows for one move keep the same match from stage to stage (from a VM,
from a tunnel): each step replaces them in place, so no hypervisor is ever between two of
them. Pure: moves are data, flows are computed from them; time comes in as `now`.

Between the moment a port leaves br-int and the moment the controller hears of it, its
hypervisor's flows still point at it: local delivery goes through a fast-failover group
per port (out of the port while it exists, else to the controller), so even those frames
are held, not dropped.
"""
from __future__ import annotations

import dataclasses

from controller.flows import Flow, Group, Output
from controller.tables import REG_FROM_TUNNEL, Table

HOLD = 5.0            # s: how long the old place buffers (in transit) or forwards (moved)
PORT_GROUP_BASE = 0x100   # + ofport: a VM port's fast-failover group
HELD_PER_PORT = 500   # frames the controller holds for one port in transit
PRIORITY = 110        # above known unicast (100)


@dataclasses.dataclass(frozen=True)
class Move:
    lport: str
    mac: str
    vni: int
    old: str               # the hypervisor it left
    new: str | None        # the hypervisor it reached; None while in transit
    since: float
    attachment: object = None   # its attachment where it was (it may still send there until unplugged)
    both: bool = False          # still attached where it was too (a live migration): frames go to both


def locations(net, macs=None) -> dict[str, tuple[str, object, frozenset]]:
    """Logical port -> (hypervisor, attachment, the other hypervisors it is attached to):
    where it is now (the newest attachment, if it shows up twice) and where it still is.
    With `macs` ((VNI, MAC) pairs: watched_macs), only the ports with those."""
    out = {}
    if macs is None:
        found = [f for vni in net.switches for f in net.mac_table(vni).values()]
    else:
        found = [f for vni, mac in macs if (f := net.attachment_of(vni, mac))]
    for where, a in found:
        others = frozenset(n for n, b in net.attachments_of_mac(a.vni, a.mac)
                           if n != where.name and b.lport == a.lport and net.hypervisors[n].up)
        out[a.lport] = (where.name, a, others)
    return out


def watched_macs(net, hv, interfaces: dict) -> set[tuple[int, str]]:
    """What locations() must look at when `hv`'s interfaces become `interfaces`: the ports
    attached there before or after, and every port on the move (Moves.observe sees all
    that can change: nothing else moves when one hypervisor's ports change)."""
    macs = {(a.vni, a.mac) for a in hv.attachments.values()} | {(m.vni, m.mac) for m in net.moves}
    for _, iface_id in interfaces.values():
        port = net.intent.port(iface_id) if iface_id else None
        if port is not None and (sw := net.switch_by_name(port.switch)) is not None:
            macs.add((sw.vni, port.mac))
    return macs


class Moves:
    def __init__(self):
        self.by_port: dict[str, Move] = {}

    def __iter__(self):
        return iter(self.by_port.values())

    def observe(self, before: dict, after: dict, now: float) -> bool:
        """Attachments changed from `before` to `after` (both from locations()). True if a
        move began or ended."""
        changed = False
        for lport, (hv, a, _) in before.items():
            there = after.get(lport)
            if there is None or there[0] != hv:
                self.by_port[lport] = Move(lport, a.mac, a.vni, hv, there[0] if there else None, now, a,
                                           there is not None and hv in there[2])
                changed = True
        for lport, m in list(self.by_port.items()):
            there = after.get(lport)
            if m.new is None and there is not None:
                if there[0] == m.old:
                    del self.by_port[lport]          # back where it was: nothing moved
                else:
                    self.by_port[lport] = dataclasses.replace(m, new=there[0], since=now, both=m.old in there[2])
                changed = True
            elif m.both and there is not None and there[0] == m.new and m.old not in there[2]:
                self.by_port[lport] = dataclasses.replace(m, both=False, since=now)   # the old port went: landed
                changed = True
        return changed

    def expire(self, now: float) -> list[Move]:
        """Moves landed (or in transit) HOLD seconds ago; a migration lasts as long as the
        port is attached in both places."""
        gone = [m for m in self.by_port.values() if not m.both and now - m.since >= HOLD]
        for m in gone:
            del self.by_port[m.lport]
        return gone

    def arrived_at(self) -> set[str]:
        """Hypervisors that just became a port's new place: they are programmed first."""
        return {m.new for m in self.by_port.values() if m.new}

    def in_transit(self, mac: str) -> Move | None:
        return next((m for m in self.by_port.values() if m.mac == mac and m.new is None), None)


def mobility_flows(net, hv) -> list[Flow]:
    """What `hv` holds for every port on the move (and the in-transit default)."""
    return [in_transit_default()] + [f for m in net.moves for f in move_flows(net, hv, m)]


def move_flows(net, hv, m: Move | None) -> list[Flow]:
    """What `hv` holds for one port on the move, always under the same two matches (frames
    from a local VM, frames from a tunnel), so each step replaces the last in place:

    - in transit: the old place holds them (to the controller), and keeps the ingress and
      port-security flows of the port, which may still send until it is unplugged; the
      others send to the old place;
    - migrating (attached in both places): both places deliver locally and copy what their
      own VMs send to the other place; the others send to both;
    - landed: the new place delivers locally, the others send there, the old place forwards
      there (and sends back what the new place itself sent it)."""
    if m is None:
        return []
    owner = f"move:{m.lport}"
    dst = {"tunnel_id": m.vni, "eth_dst": m.mac}
    from_vm, from_tunnel = {REG_FROM_TUNNEL: 0, **dst}, {REG_FROM_TUNNEL: 1, **dst}

    def flows(vm_actions, tunnel_actions=None) -> list[Flow]:
        out = [Flow.of(Table.L2_LOOKUP, PRIORITY, from_vm, vm_actions, owner)] if vm_actions else []
        if tunnel_actions:
            out.append(Flow.of(Table.L2_LOOKUP, PRIORITY, from_tunnel, tunnel_actions, owner))
        return out
    here = next((a for a in hv.attachments.values() if a.lport == m.lport), None)
    # local delivery: through the port's failover group (held if it just went); while it is
    # attached in both places, straight out of the port (the other place has a copy)
    local = [] if here is None else [Output(here.ofport)] if m.both else [Group(port_group(here))]
    to_old = [Output(hv.tunnels[m.old])] if m.old in hv.tunnels else []
    to_new = [Output(hv.tunnels[m.new])] if m.new in hv.tunnels else []
    if m.new is None:
        if hv.name == m.old:
            held = [Output("controller")]
            return flows(held, held) + _still_sending(net, m)
        return flows(to_old)
    if hv.name == m.old:
        if m.both:
            return flows(local + to_new, local)
        if not to_new:
            return []
        back = Flow.of(Table.L2_LOOKUP, PRIORITY + 1, {"in_port": to_new[0].port, **dst}, [Output("in_port")], owner)
        return flows(to_new, to_new) + [back]
    if hv.name == m.new:
        return flows(local + (to_old if m.both else []), local)
    return flows((to_old if m.both else []) + to_new)


def in_transit_default() -> Flow:
    """Where a failover group sends a frame whose port is gone: the controller holds it."""
    return Flow.of(Table.IN_TRANSIT, 0, {}, [Output("controller")], "pipeline")


def port_group(a) -> int:
    return PORT_GROUP_BASE + a.ofport


def groups(hv) -> dict[int, int]:
    """The failover groups `hv` should have: group id -> the VM port it delivers to."""
    return {port_group(a): a.ofport for a in hv.attachments.values()}


def deliver_by_group(flows: list[Flow], hv) -> list[Flow]:
    """Known unicast to a local VM port goes through that port's failover group."""
    ports = {a.ofport: a for a in hv.attachments.values()}
    out = []
    for f in flows:
        if f.table == Table.L2_LOOKUP and len(f.actions) == 1 and isinstance(f.actions[0], Output) \
                and f.actions[0].port in ports:
            f = Flow.of(f.table, f.priority, dict(f.match), [Group(port_group(ports[f.actions[0].port]))], f.owner)
        out.append(f)
    return out


def _still_sending(net, m: Move) -> list[Flow]:
    """A port unbound but not yet unplugged: what it sends still goes (it answers what it
    got a moment ago). The same flows as before, so nothing is sent to the switch for them."""
    from controller.l2 import vm_port_ingress
    from controller.security import port_flows
    lp = net.intent.port(m.lport)
    if m.attachment is None or lp is None:
        return []
    ips = sorted(net.ips_of(m.vni, m.lport))
    return [vm_port_ingress(m.attachment)] + port_flows(m.attachment, ips, lp.learn, lp.trusted)

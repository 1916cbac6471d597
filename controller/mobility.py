"""A VM that moves loses nothing: make-before-break around a port changing hypervisors.

While a logical port is in transit (it left one hypervisor and has not appeared on
another), its old hypervisor hands every frame for its MAC to the controller, which holds
them (HELD_PER_PORT at most), and the other hypervisors keep sending to the old place. Once
it appears somewhere, the new place is programmed first (`first`), then the others; for
HOLD seconds more the old hypervisor forwards what still arrives for the MAC to the new
VTEP, and the controller sends the held frames on from there. Pure: moves are data, flows
are computed from them; time comes in as `now`.

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


def locations(net) -> dict[str, tuple[str, object]]:
    """Logical port -> (hypervisor, attachment) where traffic for it goes now (the newest
    attachment, if it shows up twice)."""
    out = {}
    for vni in net.switches:
        for where, a in net.mac_table(vni).values():
            out[a.lport] = (where.name, a)
    return out


class Moves:
    def __init__(self):
        self.by_port: dict[str, Move] = {}

    def __iter__(self):
        return iter(self.by_port.values())

    def observe(self, before: dict, after: dict, now: float) -> bool:
        """Attachments changed from `before` to `after` (both from locations()). True if a
        move began or ended."""
        changed = False
        for lport, (hv, a) in before.items():
            there = after.get(lport)
            if there is None or there[0] != hv:
                self.by_port[lport] = Move(lport, a.mac, a.vni, hv, there[0] if there else None, now, a)
                changed = True
        for lport, m in list(self.by_port.items()):
            there = after.get(lport)
            if m.new is None and there is not None:
                if there[0] == m.old:
                    del self.by_port[lport]          # back where it was: nothing moved
                else:
                    self.by_port[lport] = dataclasses.replace(m, new=there[0], since=now)
                changed = True
        return changed

    def expire(self, now: float) -> list[Move]:
        gone = [m for m in self.by_port.values() if now - m.since >= HOLD]
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
    """What `hv` holds for one port on the move: buffer at (or send to) the old place while
    in transit, where the port may still send (its ingress and port-security flows stay until
    it lands); forward from the old place to the new one after."""
    if m is None:
        return []
    owner = f"move:{m.lport}"
    dst = {"tunnel_id": m.vni, "eth_dst": m.mac}
    if m.new is None and hv.name == m.old:
        return [Flow.of(Table.L2_LOOKUP, PRIORITY, dst, [Output("controller")], owner)] + _still_sending(net, m)
    if m.new is None and m.old in hv.tunnels:
        return [Flow.of(Table.L2_LOOKUP, PRIORITY, {REG_FROM_TUNNEL: 0, **dst}, [Output(hv.tunnels[m.old])], owner)]
    if m.new and hv.name == m.old and m.new in hv.tunnels:
        return [Flow.of(Table.L2_LOOKUP, PRIORITY, dst, [Output(hv.tunnels[m.new])], owner)]
    return []


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
